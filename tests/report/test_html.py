"""report.html rendered from gathered ReportData (segcli/report/html.py): one self-contained file, every section
present, each missing one saying why, text escaped, numbers sortable."""

from __future__ import annotations

import base64
import math
import os
from pathlib import Path

from report_helpers import parse

from segcli.core.rundir import RunDir
from segcli.report.html import render
from segcli.report.run_report import Piece, ReportData

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
SECTIONS = ("summary", "classes", "worst", "calibration", "plots", "timings", "environment", "preset", "log")


def rows() -> list[dict]:
    return [
        {"epoch": 1, "iterations": 4, "train_loss": 1.5, "lr": 0.01, "seconds": 2.0, "mIoU": 0.25, "ema_mIoU": None},
        {"epoch": 2, "iterations": 8, "train_loss": 0.5, "lr": 0.001, "seconds": 3.0, "mIoU": 0.5, "ema_mIoU": None},
        {"epoch": 3, "iterations": 12, "train_loss": 0.4, "lr": 0.0, "seconds": 2.5, "mIoU": math.nan},
    ]


def evaluation() -> Piece:
    per_class = [
        {"class": "background", "iou": 0.9, "precision": 0.95, "recall": 0.94, "dice": 0.947, "pixels": 1000},
        {"class": "<cat>", "iou": math.nan, "precision": math.nan, "recall": math.nan, "dice": math.nan, "pixels": 0},
    ]
    metrics = {"pixel_accuracy": 0.9, "mean_accuracy": 0.8, "mIoU": 0.9, "fwIoU": 0.85, "mean_dice": 0.947}
    metrics |= {"per_class": per_class, "pixels": 1000, "conventions": "absent classes left out"}
    worst = [{"image": "val/a.png", "mIoU": 0.1}, {"image": "val/b.png", "mIoU": 0.2}]
    value = {"weights": "best.safetensors", "split": "val", "images": 2, "device": "cpu", "metrics": metrics}
    value |= {"palette": [(0, 0, 0), (255, 0, 0)], "worst": worst, "worst_png": PNG}
    value |= {"calibration": {"ece": 0.0123, "bins": 15, "pixels": 1000}, "reliability_png": PNG}
    return Piece(value)


def full(tmp_path: Path) -> ReportData:
    return ReportData(
        run=RunDir(tmp_path / "run"),
        preset_text='[train]\nname = "a<b>"\n',
        name="quickstart",
        epochs_planned=4,
        rows=rows(),
        environment=[{"event": "start", "time": "t0", "device": "cpu"}, {"event": "resume", "time": "t1"}],
        evaluation=evaluation(),
        plots={"Training curves": Piece(PNG), "Confusion matrix": Piece(missing="no plots/confusion_matrix.png")},
        log_tail=["start: device=cpu", "epoch=1 <ok>"],
        epoch_waits={1: "12.0% of 2.0s"},
        generated="2026-01-01 00:00",
    )


def test_a_full_report_has_every_section_and_no_external_reference(tmp_path: Path) -> None:
    text, missing = render(full(tmp_path))
    (tmp_path / "r.html").write_text(text, encoding="utf-8")
    _, page = parse(tmp_path / "r.html")
    assert text.startswith("<!DOCTYPE html>") and not page.links
    assert all(f'<h2 id="{s}">' in text for s in SECTIONS)
    assert len(page.images) == 3  # the curves, the worst images, the reliability diagram; not the confusion matrix
    assert missing == {"Confusion matrix": "no plots/confusion_matrix.png"}
    assert page.rows["summary"] == 2 and page.rows["epochs"] == 3 and page.rows["worst"] == 2
    assert page.rows["per-class"] == 2 and page.rows["overall"] == 1
    assert page.rows["environment"] == 1 and "<th>start t0</th><th>resume t1</th>" in text  # a column per start
    assert "3 of 4 epochs, 12 iterations (stopped before the planned end" in text
    assert "expected calibration error (ECE) 0.0123: 15 equal-width bins" in text


def test_the_best_row_is_the_best_validated_epoch(tmp_path: Path) -> None:
    text, _ = render(full(tmp_path))
    summary = text[text.index('<table id="summary">') : text.index("</table>", text.index('<table id="summary">'))]
    assert '<td>best (mIoU)</td><td data-v="2">2</td>' in summary  # NaN is not a validation
    assert "ema_mIoU" not in summary  # a column with no value in any row is left out


def test_text_is_escaped_and_numbers_sort(tmp_path: Path) -> None:
    text, _ = render(full(tmp_path))
    assert "&lt;cat&gt;" in text and "<cat>" not in text
    assert "name = &quot;a&lt;b&gt;&quot;" in text and "epoch=1 &lt;ok&gt;" in text
    assert '<td data-v="0.9">0.9000</td>' in text and '<td data-v="nan">n/a</td>' in text
    assert "<td>12.0% of 2.0s</td>" in text and "training time 0:00:08 over 3 epoch rows" in text


def test_an_empty_run_says_what_is_missing(tmp_path: Path) -> None:
    d = ReportData(run=RunDir(tmp_path), preset_text="", name="x", evaluation=Piece(missing="no weights yet"))
    text, missing = render(d)
    assert set(missing) == {"metrics", "per-class metrics and worst images", "environment"}
    assert "no epoch finished yet" in text
    assert "not available: metrics.csv has no rows (the run stopped during its first epoch)" in text
    assert text.count("not available: no weights yet") == 3  # per-class, worst and calibration
    assert "not available: no environment.json" in text and "not available: no log.txt" in text
    assert "<img" not in text


def test_no_worst_images_is_said(tmp_path: Path) -> None:
    d = full(tmp_path)
    d.evaluation.value["worst"] = []
    text, _ = render(d)
    assert "not available: no image with labelled pixels, or --worst 0" in text and 'id="worst"><' not in text


def test_a_file_name_that_is_not_utf8_is_shown_escaped_and_the_report_writes(tmp_path: Path) -> None:
    d = full(tmp_path)
    bad = os.fsdecode(b"val/bad\xff.png")  # what listing a folder gives for a name that is not UTF-8
    d.evaluation.value["worst"][0]["image"] = bad
    d.log_tail.append(f"skipped {bad}")
    text, _ = render(d)
    (tmp_path / "r.html").write_text(text, encoding="utf-8")  # a lone surrogate here raised UnicodeEncodeError
    assert text.count("val/bad\\xff.png") == 2


def _epochs_head(text: str) -> str:
    table = text[text.index('<table id="epochs"') :]
    return table[: table.index("</tr>")]


def test_the_epochs_table_has_ema_and_val_loss_columns_only_when_they_have_values(tmp_path: Path) -> None:
    """Reported: an "EMA mIoU" column of n/a when EMA is off."""
    d = full(tmp_path)
    head = _epochs_head(render(d)[0])
    assert "EMA mIoU" not in head and "val loss" not in head and "val mIoU" in head and "train loss" in head
    d.rows[1] |= {"ema_mIoU": 0.45, "val_loss": 0.7}
    text = render(d)[0]
    assert "EMA mIoU" in _epochs_head(text) and "val loss" in _epochs_head(text)
    assert '<td data-v="NaN">n/a</td>' in text  # the epochs without an EMA validation


def test_the_data_section_lists_the_logged_statistics_and_recipe_escaped(tmp_path: Path) -> None:
    d = full(tmp_path)
    d.data_lines = ["data statistics (3 of 3 training masks): foreground (all but 'bg') 7.5%", "recipe: a -> <b>"]
    text, missing = render(d)
    assert '<h2 id="data">Data and recipe</h2><ul><li>data statistics (3 of 3 training masks)' in text
    assert "<li>recipe: a -&gt; &lt;b&gt;</li>" in text and "data" not in missing
    d.data_lines = []
    text, missing = render(d)
    assert "not available: log.txt has no data statistics line" in text and "data" not in missing
