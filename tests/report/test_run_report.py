"""report.html: written at the end of training and by `seg report`; self-contained; survives missing pieces."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from html import unescape
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from report_helpers import decode_data_uri, parse, train_tiny_run

from segcli.core.callbacks import RunStart
from segcli.core.rundir import RunDir
from segcli.errors import UserError
from segcli.infer.evaluator import WEIGHT_CHOICES as WEIGHTS
from segcli.report.run_report import RunReport, build_report, read_environment, record_environment


@pytest.fixture(scope="module")
def trained(shapes_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One finished 2-epoch run, shared by this module's tests (they copy it before changing anything)."""
    return train_tiny_run(shapes_root, tmp_path_factory)


def test_report_written_at_the_end_of_training(trained: Path) -> None:
    run = RunDir(trained)
    text, page = parse(run.report)
    assert "report: " in run.log_file.read_text()
    assert not page.links, f"external references: {page.links}"
    # curves, confusion matrix, samples, class pixels, the worst images and the reliability diagram, all embedded
    assert len(page.images) == 6
    shapes = [decode_data_uri(src).shape for src in page.images]
    assert (600, 1160, 3) in shapes  # the curves, as wide as the page
    assert page.rows["per-class"] == 5  # one row per class of the shapes dataset
    assert page.rows["epochs"] == 2 and page.rows["summary"] == 2  # last and best
    assert page.rows["overall"] == 1 and 1 <= page.rows["worst"] <= 8  # 8 val images, all labelled
    for name in ("background", "circle", "square", "triangle", "cross"):
        assert f"{name}</td>" in text
    assert "not available" not in text
    assert "expected calibration error (ECE) " in text and "15 equal-width bins" in text
    env = json.loads(run.environment.read_text())
    assert len(env) == 1 and env[0]["event"] == "start" and env[0]["device"] == "cpu"
    import torch

    assert env[0]["torch"] == torch.__version__ and env[0]["torch_threads"] >= 1
    assert f"<td>{torch.__version__}</td>" in text


def test_report_of_an_interrupted_run_says_what_is_missing(trained: Path, tmp_path: Path) -> None:
    """A run stopped in its first epoch: preset.toml and log.txt only; the dataset moved away too."""
    run_dir = tmp_path / "stopped"
    run_dir.mkdir()
    preset = (trained / "preset.toml").read_text()
    root = tomllib.loads(preset)["data"]["root"]
    (run_dir / "preset.toml").write_text(preset.replace(f'"{root}"', f'"{tmp_path / "gone"}"'))
    (run_dir / "log.txt").write_text("2026-01-01 00:00:00 start: device=cpu\n")
    from segcli.report.run_report import build_report

    res = build_report(run_dir)
    text, page = parse(res.path)
    assert res.path == run_dir / "report.html" and not page.images
    assert "metrics.csv has no rows" in text and "no weights/best.safetensors" in text
    assert "dataset cannot be read" in text and "no environment.json" in text
    assert set(res.missing) >= {"metrics", "environment", "Training curves", "Pixels per class"}
    assert "start: device=cpu" in text  # the log tail is still shown


def test_report_of_a_run_without_plots_draws_the_class_histogram(trained: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "noplots"
    shutil.copytree(trained, run_dir)
    shutil.rmtree(run_dir / "plots")
    from segcli.report.run_report import build_report

    res = build_report(run_dir, worst=0)
    _, page = parse(res.path)
    assert "Pixels per class" not in res.missing and "Training curves" in res.missing
    # the histogram and the reliability diagram of the report's own evaluation (no worst images with --worst 0)
    assert len(page.images) == 2
    assert page.rows["per-class"] == 5


# ---------------------------------------------------------------------- the report in a real browser
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

# Injected into a copy of the report: after the load event, what the browser made of the page goes into
# <pre id="browser-check"> as JSON (images decoded, per-class rows, the IoU column after header clicks).
PROBE = """<script>
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var iou = function () {
    return Array.prototype.map.call(document.querySelectorAll("#per-class tbody tr"), function (r) {
      return parseFloat(r.cells[2].getAttribute("data-v"));
    });
  };
  var result = {
    images: images.length,
    widths: images.map(function (i) { return i.complete ? i.naturalWidth : -1; }),
    classRows: document.querySelectorAll("#per-class tbody tr").length,
    classNames: Array.prototype.map.call(document.querySelectorAll("#per-class tbody tr"), function (r) {
      return r.cells[1].textContent.trim();
    })
  };
  var header = document.querySelectorAll("#per-class thead th")[2];
  header.click();
  result.ascending = iou();
  header.click();
  result.descending = iou();
  var pre = document.createElement("pre");
  pre.id = "browser-check";
  pre.textContent = JSON.stringify(result);
  document.body.appendChild(pre);
});
</script>"""


def find_browser() -> str | None:
    return next((found for name in BROWSERS if (found := shutil.which(name))), None)


@pytest.mark.slow
def test_report_renders_in_a_headless_browser(trained: Path, tmp_path: Path) -> None:
    """Every <img> of report.html decodes in Chromium (natural width > 0) and the per-class table has one
    row per class and sorts by a click on its header. The noxfile `tests` session installs Chromium."""
    browser = find_browser()
    if browser is None:
        pytest.skip(f"no headless browser found ({', '.join(BROWSERS)}); `apt-get install chromium` as root")
    page = tmp_path / "report.html"
    page.write_text((trained / "report.html").read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"))
    cmd = [
        browser,
        "--headless",
        "--disable-gpu",
        "--no-sandbox",  # tests run as root in CI containers
        "--disable-dev-shm-usage",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=10000",
        "--dump-dom",
        page.as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    _, sep, rest = proc.stdout.partition('<pre id="browser-check">')
    assert sep, f"the page's load event did not run: {proc.stdout[:500]} {proc.stderr[-1000:]}"
    result = json.loads(unescape(rest.partition("</pre>")[0]))
    assert result["images"] == 6 and all(w > 0 for w in result["widths"]), result["widths"]
    assert result["classRows"] == 5
    assert result["classNames"] == ["background", "circle", "square", "triangle", "cross"]
    finite = [v for v in result["ascending"] if v is not None]
    assert finite == sorted(finite) and result["descending"][: len(finite)] == sorted(finite, reverse=True)


def test_docs_list_every_file_a_run_writes(trained: Path) -> None:
    """docs/run-directory.md names each path RunDir knows and each file a real run wrote."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "run-directory.md").read_text(encoding="utf-8")
    run = RunDir(Path("R"))
    layout = [getattr(run, n) for n in dir(RunDir) if isinstance(getattr(RunDir, n), property)]
    named = [p.relative_to("R").as_posix() for p in layout] + [f"weights/{w}.safetensors" for w in WEIGHTS]
    written = [re.sub(r"epoch\d{3}", "epochNNN", f.relative_to(trained).as_posix()) for f in trained.rglob("*")]
    assert len(named) >= 9 and "report.html" in written and "environment.json" in written
    for rel in named + [w for w in written if (trained / w).is_file() or "NNN" in w]:
        assert f"`{rel}" in doc, f"docs/run-directory.md does not list {rel}"


def test_environment_records_append_and_a_damaged_file_reads_as_none(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    assert read_environment(run) == []
    record_environment(run, "cpu")
    record_environment(run, "cpu", event="resume")
    records = read_environment(run)
    assert [r["event"] for r in records] == ["start", "resume"] and records[0]["device"] == "cpu"
    assert {"segcli", "python", "torch", "numpy", "opencv", "torch_threads"} <= set(records[0])
    run.environment.write_text("{not json")
    assert read_environment(run) == []
    run.environment.write_text('[{"event": "start"}, 3, "x"]')
    assert read_environment(run) == [{"event": "start"}]  # only the records


def test_a_negative_worst_is_refused_before_anything_is_read(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"--worst -1: give a number of images >= 0"):
        build_report(tmp_path / "not-even-there", worst=-1)


def test_the_callback_logs_instead_of_failing_when_the_report_cannot_be_written(tmp_path: Path) -> None:
    run = RunDir(tmp_path)  # no preset.toml: not a run, so build_report refuses
    cb = RunReport()
    cb.on_train_start(RunStart(run, epochs=1, iters_per_epoch=1, first_epoch=0))
    assert [r["event"] for r in read_environment(run)] == ["start"]
    cb.on_train_end(None)
    assert "report not written: " in run.log_file.read_text() and not run.report.exists()
    RunReport().on_train_end(None)  # never started: nothing to do


def test_data_lines_are_read_from_the_log_without_time_stamps_and_repeats() -> None:
    from segcli.report.run_report import _data_lines

    log = [
        "2026-01-01 10:00:00 start: device=cpu",
        "2026-01-01 10:00:01 data statistics (4 of 4 training masks, median size 8x8): 2 classes",
        "2026-01-01 10:00:01 recipe: thin structures (median object width 3.0 px <= 8 px) -> augment.scale=[1,1.5]",
        "2026-01-01 10:00:02 auto recipe: augment.crop_size=[128,128] data.batch_size=4",
        "2026-01-01 10:05:00 weight averaging: swa: ... the final evaluation uses the averaged weights",
        "2026-01-01 11:00:01 data statistics (4 of 4 training masks, median size 8x8): 2 classes",  # a resume
    ]
    lines = _data_lines(log)
    assert [x.split(" ")[0] for x in lines] == ["data", "recipe:", "auto", "weight"]
    assert lines[0] == "data statistics (4 of 4 training masks, median size 8x8): 2 classes"
