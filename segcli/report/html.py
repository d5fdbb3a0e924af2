"""``report.html`` from a :class:`~segcli.report.run_report.ReportData`: one file, no server, no network.

Pictures are embedded as base64 ``data:`` URIs; the style sheet and the few lines of JavaScript that
sort tables by a click on a header are inline. Every section that has nothing to show says why.
"""

from __future__ import annotations

import base64
import math
from html import escape
from typing import TYPE_CHECKING, Any

from segcli.config.schema import METRIC_KEYS
from segcli.io_utils import printable

if TYPE_CHECKING:
    from segcli.report.run_report import ReportData

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1200px;padding:0 18px 40px;
color:#1d232a;background:#fff}
h1{font-size:22px;margin:22px 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
h3{font-size:15px;margin:16px 0 6px}.sub{color:#5b6670}nav a{margin-right:12px}
table{border-collapse:collapse;margin:6px 0}th,td{border:1px solid #d5d9dd;padding:3px 8px;text-align:right}
th{background:#f1f3f5}td:not([data-v]),th:first-child,th.text{text-align:left}
table.sortable th{cursor:pointer;user-select:none}table.sortable th:after{content:" \\2195";color:#9aa3ab}
table.sortable th.asc:after{content:" \\2191";color:#1d232a}
table.sortable th.desc:after{content:" \\2193";color:#1d232a}
.na{color:#8a5a00;background:#fff6e0;border:1px solid #f1d9a0;padding:6px 10px;border-radius:4px;display:inline-block}
figure{margin:10px 0 18px}figcaption{color:#5b6670;margin-bottom:4px}img{max-width:100%;border:1px solid #e2e5e8}
pre{background:#f6f8fa;border:1px solid #e2e5e8;padding:8px 10px;overflow:auto;font-size:12px;max-height:480px}
.swatch{display:inline-block;width:12px;height:12px;border:1px solid #555;margin-right:6px;vertical-align:-1px}
.best{font-weight:600}
"""

SORT_JS = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, col) {
    th.addEventListener("click", function () {
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      var asc = !th.classList.contains("asc");
      table.querySelectorAll("th").forEach(function (h) { h.classList.remove("asc", "desc"); });
      th.classList.add(asc ? "asc" : "desc");
      function key(row) {
        var cell = row.cells[col], v = cell.getAttribute("data-v");
        return v === null ? cell.textContent.trim().toLowerCase() : parseFloat(v);
      }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (typeof x === "number" && isNaN(x)) return 1;  /* n/a stays last */
        if (typeof y === "number" && isNaN(y)) return -1;
        return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""


def _na(reason: str) -> str:
    return f'<p class="na">not available: {escape(reason)}</p>'


def _num(v: Any, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return escape(str(v))


def _cell(v: Any, digits: int = 4) -> str:
    """A table cell that sorts by its number (``data-v``; NaN for n/a)."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        key = v if math.isfinite(float(v)) else float("nan")
        return f'<td data-v="{key}">{_num(v, digits)}</td>'
    if v is None:
        return '<td data-v="NaN">n/a</td>'
    return f"<td>{escape(str(v))}</td>"


def _table(head: list[str], rows: list[list[Any]], cls: str = "", table_id: str = "", row_attr: str = "") -> str:
    ident = f' id="{table_id}"' if table_id else ""
    klass = f' class="{cls}"' if cls else ""
    body = "".join(f"<tr{row_attr}>" + "".join(_cell(v) for v in r) + "</tr>" for r in rows)
    head_html = "".join(f"<th>{escape(h)}</th>" for h in head)
    return f"<table{ident}{klass}><thead><tr>{head_html}</tr></thead><tbody>{body}</tbody></table>"


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def _duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "n/a"
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def _summary(d: ReportData) -> tuple[str, str]:
    """(status line, best/last table) from metrics.csv."""
    rows = d.rows
    if not rows:
        return "no epoch finished yet", _na("metrics.csv has no rows (the run stopped during its first epoch)")
    last = rows[-1]
    done = int(last.get("epoch") or 0)
    plan = f" of {d.epochs_planned}" if d.epochs_planned else ""
    status = f"{done}{plan} epochs, {last.get('iterations')} iterations"
    if d.epochs_planned and done < d.epochs_planned:
        status += " (stopped before the planned end: interrupted, early stop or time budget)"
    validated = [r for r in rows if r.get(d.monitor) is not None]
    best = max(validated, key=lambda r: r[d.monitor]) if validated else None
    keys = [k for k in (*METRIC_KEYS, "ema_mIoU", "train_loss", "val_loss") if any(r.get(k) is not None for r in rows)]
    head = ["", "epoch", "iterations", *keys]
    table_rows = [["last", last.get("epoch"), last.get("iterations"), *(last.get(k) for k in keys)]]
    if best is not None:
        label = f"best ({d.monitor})"
        table_rows.append([label, best.get("epoch"), best.get("iterations"), *(best.get(k) for k in keys)])
    return status, _table(head, table_rows, table_id="summary")


def _per_class(d: ReportData) -> str:
    if not d.evaluation.ok:
        return _na(d.evaluation.missing)
    ev = d.evaluation.value
    m = ev["metrics"]
    palette = ev["palette"]
    overall = _table(
        ["pixel accuracy", "mean accuracy", "mIoU", "fwIoU", "mean Dice"],
        [[m["pixel_accuracy"], m["mean_accuracy"], m["mIoU"], m["fwIoU"], m["mean_dice"]]],
        table_id="overall",
    )
    rows = []
    for k, c in enumerate(m["per_class"]):
        colour = palette[k] if k < len(palette) else (200, 200, 200)
        swatch = f'<span class="swatch" style="background:rgb({colour[0]},{colour[1]},{colour[2]})"></span>'
        cells = [_cell(k, 0), f"<td>{swatch}{escape(str(c['class']))}</td>"]
        cells += [_cell(c[x]) for x in ("iou", "precision", "recall", "dice")] + [_cell(c["pixels"])]
        rows.append('<tr class="class-row">' + "".join(cells) + "</tr>")
    head = '<th>id</th><th class="text">class</th>' + "".join(
        f"<th>{h}</th>" for h in ("IoU", "precision", "recall", "Dice", "GT pixels")
    )
    body = "".join(rows)
    table = f'<table id="per-class" class="sortable"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
    return (
        f'<p class="sub">{escape(ev["weights"])} over the {escape(ev["split"])} split ({ev["images"]} images, '
        f"{m['pixels']:,} labelled pixels) on {escape(ev['device'])}; {escape(str(m.get('conventions', '')))}. "
        "Click a header to sort.</p>" + overall + table
    )


def _worst(d: ReportData) -> str:
    if not d.evaluation.ok:
        return _na(d.evaluation.missing)
    ev = d.evaluation.value
    if not ev["worst"]:
        return _na("no image with labelled pixels, or --worst 0")
    rows = [[i + 1, w["image"], w["mIoU"]] for i, w in enumerate(ev["worst"])]
    table = _table(["rank", "image", "mIoU"], rows, table_id="worst")
    return table + f"<figure>{_img(ev['worst_png'], 'worst validation images')}</figure>"


def _calibration(d: ReportData) -> str:
    if not d.evaluation.ok:
        return _na(d.evaluation.missing)
    ev = d.evaluation.value
    c = ev["calibration"]
    text = (
        f"<p>expected calibration error (ECE) {c['ece']:.4f}: {c['bins']} equal-width bins of the top-class "
        f"probability over {c['pixels']:,} labelled pixels; seg calibrate fits a temperature that lowers it.</p>"
    )
    return text + f"<figure>{_img(ev['reliability_png'], 'reliability diagram')}</figure>"


def _plots(d: ReportData, missing: dict[str, str]) -> str:
    parts = []
    for title, piece in d.plots.items():
        if piece.ok:
            parts.append(f"<figure><figcaption>{escape(title)}</figcaption>{_img(piece.value, title)}</figure>")
        else:
            missing[title] = piece.missing
            parts.append(f"<h3>{escape(title)}</h3>{_na(piece.missing)}")
    return "".join(parts)


def _timings(d: ReportData) -> str:
    if not d.rows:
        return _na("metrics.csv has no rows yet")
    total = sum(r.get("seconds") or 0.0 for r in d.rows)
    iters = d.rows[-1].get("iterations") or 0
    per_iter = f", {total / iters * 1000:.0f} ms per iteration (validation included)" if iters else ""
    columns = [("train loss", "train_loss"), ("val loss", "val_loss"), ("lr", "lr"), ("val mIoU", "mIoU")]
    columns.append(("EMA mIoU", "ema_mIoU"))
    columns = [(h, k) for h, k in columns if any(r.get(k) is not None for r in d.rows)]  # no column of n/a
    head = ["epoch", "iterations", "seconds", "data wait", *(h for h, _ in columns)]
    rows = [
        [
            r.get("epoch"),
            r.get("iterations"),
            r.get("seconds"),
            d.epoch_waits.get(int(r.get("epoch") or 0), "n/a"),
            *(r.get(k) for _, k in columns),
        ]
        for r in d.rows
    ]
    return f"<p>training time {_duration(total)} over {len(d.rows)} epoch rows{per_iter}</p>" + _table(
        head, rows, cls="sortable", table_id="epochs"
    )


def _data(d: ReportData) -> str:
    """The labels' statistics and the recipe decisions the run logged, one line each."""
    if not d.data_lines:
        return _na("log.txt has no data statistics line (a run started by an older segcli, or no log)")
    return "<ul>" + "".join(f"<li>{escape(line)}</li>" for line in d.data_lines) + "</ul>"


def _environment(d: ReportData) -> str:
    if not d.environment:
        return _na("no environment.json (the run was started by an older segcli)")
    keys = list(dict.fromkeys(k for r in d.environment for k in r))
    head = ["", *(f"{r.get('event', 'start')} {r.get('time', '')}" for r in d.environment)]
    body = "".join(
        f"<tr><th>{escape(k)}</th>" + "".join(f"<td>{escape(str(r.get(k, '')))}</td>" for r in d.environment) + "</tr>"
        for k in keys
        if k not in ("event", "time")
    )
    head_html = "".join(f"<th>{escape(h)}</th>" for h in head)
    return f'<table id="environment"><thead><tr>{head_html}</tr></thead><tbody>{body}</tbody></table>'


def render(d: ReportData) -> tuple[str, dict[str, str]]:
    """The HTML text, and {section: reason} for each section that was not available."""
    missing: dict[str, str] = {}
    status, summary = _summary(d)
    if not d.rows:
        missing["metrics"] = "metrics.csv has no rows"
    if not d.evaluation.ok:
        missing["per-class metrics and worst images"] = d.evaluation.missing
    if not d.environment:
        missing["environment"] = "no environment.json"
    sections = [
        ("summary", "Final and best metrics", summary),
        ("data", "Data and recipe", _data(d)),
        ("classes", "Per-class metrics", _per_class(d)),
        ("worst", "Worst validation images", _worst(d)),
        ("calibration", "Calibration (reliability diagram)", _calibration(d)),
        ("plots", "Plots", _plots(d, missing)),
        ("timings", "Timings", _timings(d)),
        ("environment", "Environment", _environment(d)),
        ("preset", "Resolved preset", f"<pre>{escape(d.preset_text)}</pre>"),
        ("log", f"log.txt (last {len(d.log_tail)} lines)", f"<pre>{escape(chr(10).join(d.log_tail))}</pre>")
        if d.log_tail
        else ("log", "log.txt", _na("no log.txt")),
    ]
    nav = "".join(f'<a href="#{sid}">{escape(title.split(" (")[0])}</a>' for sid, title, _ in sections)
    body = "".join(f'<h2 id="{sid}">{escape(title)}</h2>{html}' for sid, title, html in sections)
    text = (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>segcli report: {escape(d.name)}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head><body>'
        f"<h1>segcli run report: {escape(d.name)}</h1>"
        f'<p class="sub">{escape(str(d.run.path))} · {escape(status)} · generated {escape(d.generated)}</p>'
        f"<nav>{nav}</nav>{body}<script>{SORT_JS}</script></body></html>\n"
    )
    return printable(text), missing  # a file name that is not UTF-8 is shown as \\xff, not a failed write
