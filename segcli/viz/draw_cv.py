"""Plots drawn with OpenCV alone: the fallback when matplotlib (the ``plots`` extra) is not installed.

Every function returns an RGB uint8 image; :mod:`segcli.report.plots` encodes and writes it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from segcli.viz import CURVES_WIDTH, PANEL_HEIGHT, NamedCurves, Palette, Panel, SampleRows, display_rgb

FONT = cv2.FONT_HERSHEY_SIMPLEX
WHITE, BLACK, GREY, GRID = (255, 255, 255), (0, 0, 0), (200, 200, 200), (228, 228, 228)
COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (255, 127, 14), (148, 103, 189)]


def drawable(text: str) -> str:
    """``text`` as printable ASCII: the Hershey fonts draw nothing else, and ``cv2.putText`` crashes the
    process on the lone surrogates of a file name that is not UTF-8. Undecodable bytes show as ``\\xff``,
    other characters outside printable ASCII as ``?``."""
    if text.isascii() and text.isprintable():
        return text
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return "".join(c if c.isascii() and c.isprintable() else "?" for c in text)


def _text(img: np.ndarray, text: str, xy: tuple[int, int], scale: float = 0.4, colour=BLACK) -> None:  # noqa: ANN001
    cv2.putText(img, drawable(text), xy, FONT, scale, colour, 1, cv2.LINE_AA)


def _canvas(h: int, w: int) -> np.ndarray:
    return np.full((h, w, 3), 255, np.uint8)


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About ``count`` round values (1, 2 or 5 times a power of ten apart) covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    return [round(first + k * step, 12) for k in range(int((hi - first) / step + 1e-9) + 1)]


def _panel(
    img: np.ndarray,
    box: tuple[int, int, int, int],
    title: str,
    series: NamedCurves,
    log_y: bool = False,
    xlabel: str = "",
) -> None:
    """One line chart inside ``box`` (x0, y0, x1, y1): a grid at round values with their labels on both axes,
    the axis name below, a legend at the top right."""
    x0, y0, x1, y1 = box
    _text(img, title, (x0, y0 - 8), 0.45)
    pts = [(x, y) for _, xs, ys in series for x, y in zip(xs, ys) if y is not None and math.isfinite(y)]
    if log_y:
        pts = [(x, y) for x, y in pts if y > 0]
    if not pts:
        cv2.rectangle(img, (x0, y0), (x1, y1), BLACK, 1)
        _text(img, "no data yet", (x0 + 10, (y0 + y1) // 2))
        return
    f = (lambda v: math.log10(v)) if log_y else (lambda v: v)
    xmin, xmax = min(min(p[0] for p in pts), 0.0), max(p[0] for p in pts)
    ymin, ymax = min(f(p[1]) for p in pts), max(f(p[1]) for p in pts)
    pad = (ymax - ymin) * 0.05 or (abs(ymax) * 0.05 if not log_y else 0.05) or 0.05
    xmax = xmax if xmax > xmin else xmin + 1
    xmax, ymin, ymax = xmax + (xmax - xmin) * 0.02, ymin - pad, ymax + pad  # the last points clear of the frame
    sx, sy = (x1 - x0) / (xmax - xmin), (y1 - y0) / (ymax - ymin)

    def at(x: float, y: float) -> tuple[int, int]:
        return int(round(x0 + (x - xmin) * sx)), int(round(y1 - (y - ymin) * sy))

    for t in nice_ticks(xmin, xmax, 8):
        px = at(t, ymin)[0]
        cv2.line(img, (px, y0), (px, y1), GRID, 1)
        _text(img, f"{t:g}", (px - 4 * len(f"{t:g}"), y1 + 15), 0.38)
    yticks = nice_ticks(ymin, ymax, 5)
    yticks = yticks if len(yticks) >= 4 else nice_ticks(ymin, ymax, 9)
    for t in yticks:
        py = at(xmin, t)[1]
        cv2.line(img, (x0, py), (x1, py), GRID, 1)
        label = f"{10**t:.2g}" if log_y else f"{t:.3g}"
        _text(img, label, (x0 - 8 - 7 * len(label), py + 4), 0.38)
    cv2.rectangle(img, (x0, y0), (x1, y1), BLACK, 1)
    for k, (_, xs, ys) in enumerate(series):
        colour = COLOURS[k % len(COLOURS)]
        line = [at(x, f(y)) for x, y in zip(xs, ys) if y is not None and math.isfinite(y) and (y > 0 or not log_y)]
        if len(line) > 1:
            cv2.polylines(img, [np.array(line, np.int32)], False, colour, 2, cv2.LINE_AA)
        for p in line if len(line) <= 50 else line[-1:]:
            cv2.circle(img, p, 3, colour, -1, cv2.LINE_AA)
    width = 24 + 8 * max(len(name[:24]) for name, _, _ in series)  # the legend on white, over the lines
    cv2.rectangle(img, (x1 - width - 6, y0 + 4), (x1 - 4, y0 + 10 + 16 * len(series)), WHITE, -1)
    cv2.rectangle(img, (x1 - width - 6, y0 + 4), (x1 - 4, y0 + 10 + 16 * len(series)), GREY, 1)
    for k, (name, _, _) in enumerate(series):
        colour = COLOURS[k % len(COLOURS)]
        cv2.line(img, (x1 - width, y0 + 13 + 16 * k), (x1 - width + 14, y0 + 13 + 16 * k), colour, 2, cv2.LINE_AA)
        _text(img, name[:24], (x1 - width + 20, y0 + 17 + 16 * k), 0.4, colour)
    if xlabel:
        _text(img, xlabel, ((x0 + x1) // 2 - 4 * len(xlabel), y1 + 34), 0.42)


def curves(panels: Sequence[Panel], xlabel: str = "epoch") -> np.ndarray:
    """The charts of ``panels`` two a row, :data:`CURVES_WIDTH` wide, against ``xlabel``."""
    rows = max(1, -(-len(panels) // 2))
    img = _canvas(rows * PANEL_HEIGHT, CURVES_WIDTH)
    half = CURVES_WIDTH // 2
    for k, (title, series, log_y) in enumerate(panels):
        left, top = (k % 2) * half, (k // 2) * PANEL_HEIGHT
        _panel(img, (left + 75, top + 30, left + half - 20, top + PANEL_HEIGHT - 50), title, series, log_y, xlabel)
    return img


def confusion(norm: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """Row-normalised confusion matrix; names on both axes, cell values only when they fit."""
    n = len(names)
    cell = max(6, min(48, 900 // max(n, 1)))
    font = min(0.4, cell / 30)
    label_w = 12 + int(18 * font * min(max((len(s) for s in names), default=1), 18))
    top = 28
    side = label_w + cell * n + 10
    title = "rows: ground truth, columns: prediction (row-normalised)"
    img = _canvas(top + side, max(side, cv2.getTextSize(title, FONT, 0.45, 1)[0][0] + 12))  # the title whole
    heat = cv2.applyColorMap((np.nan_to_num(norm) * 255).astype(np.uint8), cv2.COLORMAP_VIRIDIS)[..., ::-1]
    y0 = top + label_w
    img[y0 : y0 + cell * n, label_w : label_w + cell * n] = cv2.resize(
        heat, (cell * n, cell * n), interpolation=cv2.INTER_NEAREST
    )
    _text(img, title, (6, 18), 0.45)
    if cell >= 6:
        strip = _canvas(cell * n, label_w)  # column labels written along rows, then turned upright
        for i, name in enumerate(names):
            _text(img, name[:18], (4, y0 + i * cell + cell // 2 + 4), font)
            _text(strip, name[:18], (4, i * cell + cell // 2 + 4), font)
        img[top : top + label_w, label_w : label_w + cell * n] = cv2.rotate(strip, cv2.ROTATE_90_COUNTERCLOCKWISE)
    if cell >= 34:  # values only where they fit
        for i in range(n):
            for j in range(n):
                v = norm[i, j]
                if math.isfinite(v):
                    c = BLACK if v > 0.6 else WHITE
                    _text(img, f"{v:.2f}", (label_w + j * cell + 4, y0 + i * cell + cell // 2 + 4), 0.35, c)
    return img


def legend(names: Sequence[str], palette: Sequence[Sequence[int]], width: int) -> np.ndarray:
    """Colour swatches with class names, wrapped to ``width``."""
    item = 16 + 8 * min(max((len(s) for s in names), default=1), 18)
    per_row = max(1, width // item)
    rows = -(-len(names) // per_row)
    img = _canvas(rows * 20 + 6, width)
    for k, (name, colour) in enumerate(zip(names, palette)):
        x, y = (k % per_row) * item + 4, (k // per_row) * 20 + 4
        cv2.rectangle(img, (x, y), (x + 12, y + 12), tuple(int(c) for c in colour), -1)
        cv2.rectangle(img, (x, y), (x + 12, y + 12), BLACK, 1)
        _text(img, name[:18], (x + 16, y + 11), 0.38)
    return img


def draw_legend_strip(
    image: np.ndarray,
    class_ids: Sequence[int] | np.ndarray,
    names: Sequence[str],
    palette: Sequence[Sequence[int]],
) -> np.ndarray:
    """``image`` (RGB) with a white strip appended below: a colour swatch and the name of each class in
    ``class_ids`` (e.g. the classes present in a predicted mask), wrapped to the image's width.

    The strip grows with the image (text readable on a 4000-pixel photo as on a 500-pixel one); the image
    above it is left untouched, so its pixels stay aligned with the mask's.
    """
    h, w = image.shape[:2]
    ids = [int(c) for c in class_ids if 0 <= int(c) < min(len(names), len(palette))]
    if not ids:
        return image
    s = max(1.0, w / 800)  # scale of swatches and text
    font, box, pad, line = 0.4 * s, round(12 * s), round(4 * s), round(20 * s)
    thick = max(1, round(s))
    labels = [drawable(names[c][:24]) for c in ids]
    widths = [box + pad + cv2.getTextSize(t, FONT, font, thick)[0][0] + 3 * pad for t in labels]
    rows: list[list[int]] = [[]]
    x = pad
    for k, wk in enumerate(widths):
        if rows[-1] and x + wk > w:
            rows.append([])
            x = pad
        rows[-1].append(k)
        x += wk
    strip = _canvas(len(rows) * line + pad, w)
    for r, row in enumerate(rows):
        x, y = pad, r * line + pad
        for k in row:
            colour = tuple(int(v) for v in palette[ids[k]])
            cv2.rectangle(strip, (x, y), (x + box, y + box), colour, -1)
            cv2.rectangle(strip, (x, y), (x + box, y + box), BLACK, thick)
            cv2.putText(strip, labels[k], (x + box + pad, y + box - 1), FONT, font, BLACK, thick, cv2.LINE_AA)
            x += widths[k]
    return np.concatenate([image, strip], 0)


def samples(rows: SampleRows, names: Sequence[str], palette: Palette, ignore_index: int, title: str) -> np.ndarray:
    """Rows of image | ground truth | prediction (masks coloured by the palette), a legend below; an N-channel
    image shows its first three channels (:func:`segcli.viz.display_rgb`)."""
    h = 160
    lut = np.zeros((max(256, ignore_index + 1), 3), np.uint8)
    lut[: len(palette)] = np.asarray(palette, np.uint8)
    tiles = []
    for image, gt, pred in rows:
        w = max(1, round(image.shape[1] * h / image.shape[0]))
        parts = [cv2.resize(display_rgb(image), (w, h), interpolation=cv2.INTER_AREA)]
        for m in (gt, pred):
            parts.append(cv2.resize(lut[m.astype(np.int64)], (w, h), interpolation=cv2.INTER_NEAREST))
        tiles.append(np.concatenate([np.pad(p, ((2, 2), (2, 2), (0, 0)), constant_values=255) for p in parts], 1))
    width = max(t.shape[1] for t in tiles)
    tiles = [np.pad(t, ((0, 0), (0, width - t.shape[1]), (0, 0)), constant_values=255) for t in tiles]
    head = _canvas(24, width)
    _text(head, title + "   (image | ground truth | prediction)", (4, 16), 0.42)
    return np.concatenate([head, *tiles, legend(names, palette, width)], 0)


def bars(values: np.ndarray, names: Sequence[str], title: str) -> np.ndarray:
    """Horizontal bars on a log scale (one per class), value labels at the right."""
    n = len(names)
    row = 14 if n > 40 else 20
    label_w = 12 + 7 * min(max((len(s) for s in names), default=1), 18)
    w, plot_w = label_w + 560, 460
    img = _canvas(40 + n * row + 10, w)
    _text(img, title, (6, 20), 0.45)
    logs = np.log10(np.maximum(values.astype(np.float64), 1.0))
    top = max(float(logs.max()), 1.0) if n else 1.0
    for i, (name, v, lv) in enumerate(zip(names, values, logs)):
        y = 36 + i * row
        _text(img, name[:18], (4, y + row - 5), 0.36)
        cv2.rectangle(img, (label_w, y + 2), (label_w + int(plot_w * lv / top), y + row - 2), COLOURS[0], -1)
        _text(img, f"{int(v):,}", (label_w + int(plot_w * lv / top) + 4, y + row - 5), 0.34)
    return img


IGNORE_COLOUR = (255, 255, 255)  # pixels labelled ignore_index (or outside the classes) in overlays


def colour_overlay(
    image: np.ndarray, mask: np.ndarray, palette: Sequence[Sequence[int]], ignore_index: int, alpha: float = 0.5
) -> np.ndarray:
    """``image`` with each class's colour blended in at ``alpha``; ignored pixels (and values outside the
    classes) whitened, so the void band of a padded crop is visible. An N-channel image shows its first three
    channels (:func:`segcli.viz.display_rgb`)."""
    image = display_rgb(image)
    lut = np.tile(np.asarray(IGNORE_COLOUR, np.uint8), (max(65536 if mask.dtype == np.uint16 else 256, 1), 1))
    lut[: len(palette)] = np.asarray(palette, np.uint8)
    colours = lut[np.clip(mask.astype(np.int64), 0, len(lut) - 1)].astype(np.float32)
    return (image.astype(np.float32) * (1 - alpha) + colours * alpha + 0.5).astype(np.uint8)


def legend_entries(
    masks: Sequence[np.ndarray], names: Sequence[str], palette: Sequence[Sequence[int]], ignore_index: int
) -> tuple[list[str], list[tuple[int, int, int]]]:
    """(names, colours) of the classes present in ``masks`` (plus "ignore" when void pixels are), for :func:`legend`."""
    present: set[int] = set()
    for m in masks:
        present.update(int(v) for v in np.unique(m))
    ids = sorted(v for v in present if v < len(names))
    out_names = [names[i] for i in ids]
    out_colours = [tuple(int(c) for c in palette[i]) for i in ids]
    if any(v >= len(names) for v in present):
        out_names.append(f"ignore ({ignore_index})")
        out_colours.append(IGNORE_COLOUR)
    return out_names, out_colours


def grid(tiles: Sequence[np.ndarray], captions: Sequence[str], cols: int, size: int, title: str) -> np.ndarray:
    """Tiles fitted into ``size`` x ``size`` cells (aspect kept), ``cols`` per row, a caption under each."""
    gap, cap = 4, 16
    rows = max(1, -(-len(tiles) // cols))
    width = cols * (size + gap) + gap
    img = _canvas(24 + rows * (size + cap + gap) + gap, width)
    _text(img, title, (gap, 16), 0.42)
    for k, (tile, caption) in enumerate(zip(tiles, captions)):
        h, w = tile.shape[:2]
        s = size / max(h, w)
        th, tw = max(1, round(h * s)), max(1, round(w * s))
        fitted = cv2.resize(tile, (tw, th), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_NEAREST)
        x = gap + (k % cols) * (size + gap)
        y = 24 + (k // cols) * (size + cap + gap)
        img[y : y + size, x : x + size] = GREY
        img[y + (size - th) // 2 : y + (size - th) // 2 + th, x + (size - tw) // 2 : x + (size - tw) // 2 + tw] = fitted
        _text(img, caption[: max(4, size // 7)], (x, y + size + cap - 4), 0.36)
    return img


ReliabilityRows = Sequence[dict]  # per bin: {"bin": [lo, hi], "pixels", "confidence", "accuracy"} (ReliabilityBins)


def reliability(rows: ReliabilityRows, title: str) -> np.ndarray:
    """The reliability diagram of a calibration summary's bins: accuracy (bars) against confidence, the diagonal
    of perfect calibration, the gap to each bin's mean confidence in red; below, the pixels per bin (log scale)."""
    w, h, left, top = 520, 612, 60, 48
    plot, hist_h = 420, 80
    img = _canvas(h, w)
    _text(img, title, (6, 20), 0.45)
    x0, y0, x1, y1 = left, top, left + plot, top + plot

    def at(x: float, y: float) -> tuple[int, int]:
        return int(round(x0 + x * plot)), int(round(y1 - y * plot))

    for t in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0):
        cv2.line(img, at(t, 0), at(t, 1), GRID, 1)
        cv2.line(img, at(0, t), at(1, t), GRID, 1)
        _text(img, f"{t:.1f}", (at(0, t)[0] - 30, at(0, t)[1] + 4), 0.38)
    for r in rows:
        lo, hi = r["bin"]
        if r.get("accuracy") is None:
            continue
        acc, conf = float(r["accuracy"]), float(r["confidence"])
        cv2.rectangle(img, at(lo, 0), at(hi, acc), COLOURS[0], -1)
        cv2.rectangle(img, at(lo, 0), at(hi, acc), WHITE, 1)
        gap_top, gap_bottom = at(lo, max(acc, conf)), at(hi, min(acc, conf))
        cv2.rectangle(img, gap_top, gap_bottom, (214, 39, 40), 1)
    cv2.line(img, at(0, 0), at(1, 1), (90, 90, 90), 1, cv2.LINE_AA)
    cv2.rectangle(img, (x0, y0), (x1, y1), BLACK, 1)
    _text(img, "accuracy", (x0 - 56, y0 - 6), 0.4)
    _text(img, "bars: accuracy, red: gap to confidence, line: perfect calibration", (x0 + 6, y0 + 16), 0.36)
    hy0, hy1 = y1 + 24, y1 + 24 + hist_h
    counts = [int(r["pixels"]) for r in rows]
    top_log = max(math.log10(max(max(counts, default=1), 1)) + 0.1, 1.0)
    for r, n in zip(rows, counts):
        lo, hi = r["bin"]
        bar = int(hist_h * math.log10(n) / top_log) if n > 0 else 0
        cv2.rectangle(img, (at(lo, 0)[0], hy1 - bar), (at(hi, 0)[0], hy1), GREY, -1)
        cv2.rectangle(img, (at(lo, 0)[0], hy1 - bar), (at(hi, 0)[0], hy1), BLACK, 1)
    cv2.rectangle(img, (x0, hy0), (x1, hy1), BLACK, 1)
    _text(img, f"pixels per bin (log scale, most {max(counts, default=0):,})", (x0 + 4, hy0 + 14), 0.36)
    for t in (0.0, 0.5, 1.0):
        _text(img, f"{t:.1f}", (at(t, 0)[0] - 10, hy1 + 16), 0.38)
    _text(img, "confidence (top-class probability)", (x0 + plot // 2 - 130, hy1 + 34), 0.42)
    return img
