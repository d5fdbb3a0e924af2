"""Plots drawn with matplotlib (the ``plots`` extra), the same four pictures as :mod:`segcli.viz.draw_cv`.

Every function returns an RGB uint8 image; :mod:`segcli.report.plots` encodes and writes it. Figures
are made with ``matplotlib.figure.Figure`` on an Agg canvas, never through pyplot: no display, no
global figure state, nothing left open between validations.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter

from segcli.viz import CURVES_WIDTH, PANEL_HEIGHT, Palette, Panel, SampleRows, display_rgb

DPI = 100
IGNORED = (220, 220, 220)  # pixels whose ground truth is ignore_index
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd"]


def _figure(width_in: float, height_in: float) -> Figure:
    fig = Figure(figsize=(width_in, height_in), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _rgb(fig: Figure) -> np.ndarray:
    """The figure rendered at its own size (no tight bounding box: the size is what was asked for)."""
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def _finite(xs: Sequence[float], ys: Sequence[float], positive: bool = False) -> tuple[list[float], list[float]]:
    keep = [(x, y) for x, y in zip(xs, ys) if y is not None and math.isfinite(y) and (y > 0 or not positive)]
    return [x for x, _ in keep], [y for _, y in keep]


def curves(panels: Sequence[Panel], xlabel: str = "epoch") -> np.ndarray:
    """The charts of ``panels`` two a row, :data:`CURVES_WIDTH` wide, against ``xlabel`` (whole-number ticks),
    each with a grid and labelled ticks on both axes; a chart without data says so."""
    rows = max(1, math.ceil(len(panels) / 2))
    fig = _figure(CURVES_WIDTH / DPI, rows * PANEL_HEIGHT / DPI)
    axes = fig.subplots(rows, 2, squeeze=False).ravel()
    for ax, (title, series, log_y) in zip(axes, panels):
        ax.set_title(title, fontsize=10, loc="left")
        ax.grid(alpha=0.3)
        ax.set_xlabel(xlabel, fontsize=9)
        ax.tick_params(which="both", labelsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        drawn = False
        for k, (name, xs, ys) in enumerate(series):
            x, y = _finite(xs, ys, positive=log_y)
            if x:
                marker = "o" if len(x) <= 50 else None
                ax.plot(x, y, color=COLOURS[k % len(COLOURS)], label=name, marker=marker, ms=3, lw=1.5)
                drawn = True
        if drawn:
            if log_y:  # plain numbers on the ticks; the minor ones labelled too within one decade
                ax.set_yscale("log")
                low, high = ax.get_ylim()
                plain = FuncFormatter(lambda v, _: f"{v:.3g}")
                ax.yaxis.set_major_formatter(plain)
                ax.yaxis.set_minor_formatter(plain if high < 10 * low else NullFormatter())
            ax.set_xlim(left=0)
            ax.legend(fontsize=7, loc="best", ncol=2 if len(series) > 4 else 1)
        else:
            ax.text(0.5, 0.5, "no data yet", ha="center", va="center", transform=ax.transAxes, color="grey")
    for ax in axes[len(panels) :]:
        ax.set_axis_off()
    bottom = 0.55 / (rows * PANEL_HEIGHT / DPI)
    fig.subplots_adjust(left=0.06, right=0.985, top=1 - 0.35 / (rows * PANEL_HEIGHT / DPI), bottom=bottom)
    fig.subplots_adjust(hspace=0.5, wspace=0.15)
    return _rgb(fig)


def confusion(norm: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """Row-normalised confusion matrix; class names on both axes, cell values only when they fit.

    The cell shrinks with the number of classes (0.5 in down to 0.11 in, so 150 classes make a
    ~1800 px picture whose names are still legible) and the name font with it; values are written in
    cells of 0.3 in or more.
    """
    n = max(len(names), 1)
    cell = min(0.5, max(0.11, 9.0 / n))
    font = max(5.0, min(9.0, cell * 72 * 0.8))
    labels = [s if len(s) <= 18 else s[:17] + "…" for s in names]
    margin = 0.3 + font / 72 * 0.7 * max((len(s) for s in labels), default=1)
    side = n * cell
    title = "row-normalised confusion matrix (grey: no ground truth)"
    w, h = max(margin + side + 1.1, 0.4 + len(title) * 9 / 72 * 0.55), margin + side + 0.55  # the title whole
    fig = _figure(w, h)
    ax = fig.add_axes((margin / w, margin / h, side / w, side / h))
    cmap = colormaps["viridis"].with_extremes(bad="#d0d0d0")
    im = ax.imshow(np.ma.masked_invalid(norm), cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=font)
    ax.set_yticks(range(len(labels)), labels, fontsize=font)
    ax.tick_params(length=2 if n > 40 else 3, pad=1)
    ax.set_xlabel("prediction", fontsize=9)
    ax.set_ylabel("ground truth", fontsize=9)
    fig.suptitle(title, fontsize=9, x=0.2 / w, y=1 - 0.12 / h, ha="left", va="top")
    if cell >= 0.3:
        for i in range(norm.shape[0]):
            for j in range(norm.shape[1]):
                v = norm[i, j]
                if math.isfinite(v):
                    colour = "black" if v > 0.6 else "white"
                    ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=min(8.0, font), color=colour)
    cax = fig.add_axes(((margin + side + 0.2) / w, margin / h, 0.18 / w, side / h))
    fig.colorbar(im, cax=cax).ax.tick_params(labelsize=7)
    return _rgb(fig)


def samples(rows: SampleRows, names: Sequence[str], palette: Palette, ignore_index: int, title: str) -> np.ndarray:
    """Rows of image | ground truth | prediction (masks in the palette, ignored pixels light grey), a
    legend of the classes present below."""
    lut = np.full((max(256, ignore_index + 1, len(palette)), 3), IGNORED, np.uint8)
    lut[: len(palette)] = np.asarray(palette, np.uint8)
    aspect = max(r[0].shape[0] / max(r[0].shape[1], 1) for r in rows) if rows else 1.0
    panel = 2.2
    present = sorted({int(c) for _, gt, pred in rows for m in (gt, pred) for c in np.unique(m) if c < len(names)})
    per_row = 4
    legend_h = 0.3 + 0.25 * math.ceil(len(present) / per_row)
    w, h = 3 * panel + 0.2, 0.65 + len(rows) * panel * aspect + legend_h
    fig = _figure(w, h)
    fig.suptitle(title, fontsize=10, y=1 - 0.08 / h)
    grid = fig.add_gridspec(
        max(len(rows), 1),
        3,
        left=0.1 / w,
        right=1 - 0.1 / w,
        top=1 - 0.65 / h,
        bottom=legend_h / h,
        hspace=0.08,
        wspace=0.04,
    )
    for i, (image, gt, pred) in enumerate(rows):
        for j, (picture, heading) in enumerate(
            (
                (display_rgb(image), "image"),
                (lut[gt.astype(np.int64)], "ground truth"),
                (lut[pred.astype(np.int64)], "prediction"),
            )
        ):
            ax = fig.add_subplot(grid[i, j])
            ax.imshow(picture, interpolation="nearest" if j else "antialiased")
            ax.set_axis_off()
            if i == 0:
                ax.set_title(heading, fontsize=9)
    handles = [
        Patch(facecolor=np.asarray(palette[c]) / 255.0, edgecolor="black", linewidth=0.5, label=names[c][:18])
        for c in present
    ]
    if any((gt >= len(names)).any() for _, gt, _ in rows):
        handles.append(Patch(facecolor=np.asarray(IGNORED) / 255.0, edgecolor="black", linewidth=0.5, label="ignored"))
    if handles:
        fig.legend(
            handles=handles, loc="lower center", ncol=per_row, fontsize=8, frameon=False, bbox_to_anchor=(0.5, 0)
        )
    return _rgb(fig)


def bars(values: np.ndarray, names: Sequence[str], title: str) -> np.ndarray:
    """Horizontal bars on a log scale (one per class, first at the top), value labels at the right."""
    n = max(len(names), 1)
    row = 0.25 if n <= 40 else 0.16
    font = 8 if n <= 40 else 5.5
    label_w = 0.3 + font / 72 * 0.7 * min(max((len(s) for s in names), default=1), 18)
    w, h = label_w + 6.0, 0.9 + n * row
    fig = _figure(w, h)
    ax = fig.add_axes((label_w / w, 0.45 / h, 5.0 / w, (n * row) / h))
    v = np.maximum(np.asarray(values, np.float64), 0)
    y = np.arange(len(names))
    ax.barh(y, np.maximum(v, 1.0), color=COLOURS[0], height=0.8)
    ax.set_xscale("log")
    ax.set_ylim(len(names) - 0.5, -0.5)
    ax.set_yticks(y, [s[:18] for s in names], fontsize=font)
    ax.tick_params(axis="x", labelsize=7)
    ax.grid(axis="x", alpha=0.3)
    for k, value in enumerate(v):
        ax.text(max(value, 1.0) * 1.15, k, f"{int(value):,}", va="center", fontsize=font - 1)
    top = max(float(v.max()) if len(v) else 1.0, 10.0)
    ax.set_xlim(0.8, top * 30)
    ax.set_title(title, fontsize=9, loc="left")
    return _rgb(fig)


def reliability(rows: Sequence[dict], title: str) -> np.ndarray:
    """The reliability diagram of a calibration summary's bins: accuracy (bars) against confidence, the diagonal
    of perfect calibration, the gap to each bin's mean confidence in red; below, the pixels per bin (log scale)."""
    fig = _figure(5.2, 5.6)
    ax = fig.add_axes((0.12, 0.33, 0.84, 0.6))
    hist = fig.add_axes((0.12, 0.08, 0.84, 0.17), sharex=ax)
    lo = np.array([r["bin"][0] for r in rows], np.float64)
    width = np.array([r["bin"][1] - r["bin"][0] for r in rows], np.float64)
    filled = [i for i, r in enumerate(rows) if r.get("accuracy") is not None]
    acc = np.array([rows[i]["accuracy"] for i in filled], np.float64)
    conf = np.array([rows[i]["confidence"] for i in filled], np.float64)
    ax.bar(lo[filled], acc, width[filled], align="edge", color=COLOURS[0], edgecolor="white", label="accuracy")
    ax.bar(
        lo[filled], conf - acc, width[filled], bottom=acc, align="edge", fill=False, edgecolor=COLOURS[1], label="gap"
    )
    ax.plot([0, 1], [0, 1], color="0.35", lw=1, label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy", fontsize=8)
    ax.tick_params(labelsize=7, labelbottom=False)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title(title, fontsize=9, loc="left")
    counts = np.array([r["pixels"] for r in rows], np.float64)
    hist.bar(lo, np.maximum(counts, 0), width, align="edge", color="0.75", edgecolor="black", lw=0.5)
    if counts.max(initial=0) > 0:
        hist.set_yscale("log")
        hist.yaxis.set_minor_formatter(NullFormatter())
    hist.set_ylabel("pixels", fontsize=8)
    hist.set_xlabel("confidence (top-class probability)", fontsize=8)
    hist.tick_params(labelsize=7)
    return _rgb(fig)
