"""report.html: written at the end of training and by `seg report`; self-contained; survives missing pieces."""

from __future__ import annotations

import base64
import json
import shutil
import sys
from html.parser import HTMLParser
from pathlib import Path

import cv2
import numpy as np
import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from segcli.cli.app import run
from segcli.engine.rundir import RunDir
from segcli.engine.trainer import train
from tests.conftest import TINY


class Page(HTMLParser):
    """The parts of the report the tests look at: every img src, every external reference, table rows."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.links: list[str] = []  # src/href values that are not data: URIs or #anchors
        self.rows: dict[str, int] = {}  # table id → body rows
        self.classes: list[str] = []
        self._table: str | None = None
        self._in_body = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "img":
            self.images.append(a.get("src") or "")
        for key in ("src", "href"):
            v = a.get(key)
            if v and not v.startswith(("data:", "#")):
                self.links.append(v)
        if tag == "table":
            self._table = a.get("id") or ""
            self.rows.setdefault(self._table, 0)
        if tag == "tbody":
            self._in_body = True
        if tag == "tr" and self._in_body and self._table is not None:
            self.rows[self._table] += 1
        if tag == "link" or (tag == "script" and a.get("src")):
            self.links.append(a.get("href") or a.get("src") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "tbody":
            self._in_body = False
        if tag == "table":
            self._table = None


def parse(path: Path) -> tuple[str, Page]:
    text = path.read_text(encoding="utf-8")
    page = Page()
    page.feed(text)
    return text, page


def decode_data_uri(src: str) -> np.ndarray:
    head, _, data = src.partition(",")
    assert head == "data:image/png;base64"
    img = cv2.imdecode(np.frombuffer(base64.b64decode(data), np.uint8), cv2.IMREAD_COLOR)
    assert img is not None and img.size
    return img


@pytest.fixture(scope="module")
def trained(shapes_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One finished 2-epoch run, shared by this module's tests (they copy it before changing anything)."""
    out = tmp_path_factory.mktemp("report_runs")
    return train("quickstart", [f"data.root={shapes_root}", f"train.out_dir={out}", *TINY]).run_dir


def test_report_written_at_the_end_of_training(trained: Path) -> None:
    run = RunDir(trained)
    text, page = parse(run.report)
    assert "report: " in run.log_file.read_text()
    assert not page.links, f"external references: {page.links}"
    # curves, confusion matrix, samples, class pixels and the worst images, all embedded and decodable
    assert len(page.images) == 5
    shapes = [decode_data_uri(src).shape for src in page.images]
    assert (720, 800, 3) in shapes
    assert page.rows["per-class"] == 5  # one row per class of the shapes dataset
    assert page.rows["epochs"] == 2 and page.rows["summary"] == 2  # last and best
    assert page.rows["overall"] == 1 and 1 <= page.rows["worst"] <= 8  # 8 val images, all labelled
    for name in ("background", "circle", "square", "triangle", "cross"):
        assert f"{name}</td>" in text
    assert "not available" not in text
    env = json.loads(run.environment.read_text())
    assert len(env) == 1 and env[0]["event"] == "start" and env[0]["device"] == "cpu"
    import torch

    assert env[0]["torch"] == torch.__version__ and env[0]["torch_threads"] >= 1
    assert f"<td>{torch.__version__}</td>" in text


def test_seg_report_cli_options(trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(trained, run_dir)
    (run_dir / "report.html").unlink()
    capsys.readouterr()
    assert run(["report", str(run_dir), "--worst", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["report"] == str(run_dir / "report.html") and out["not_available"] == {}
    _, page = parse(run_dir / "report.html")
    assert page.rows["worst"] == 3
    assert run(["report", str(run_dir), "--no-eval"]) == 0
    captured = capsys.readouterr()
    assert "evaluation skipped" in captured.err and "report.html" in captured.out
    text, page = parse(run_dir / "report.html")
    assert "per-class" not in page.rows and "not available: evaluation skipped" in text
    assert len(page.images) == 4  # the plots are still there


def test_report_of_an_interrupted_run_says_what_is_missing(trained: Path, tmp_path: Path) -> None:
    """A run stopped in its first epoch: preset.toml and log.txt only; the dataset moved away too."""
    run_dir = tmp_path / "stopped"
    run_dir.mkdir()
    preset = (trained / "preset.toml").read_text()
    root = tomllib.loads(preset)["data"]["root"]
    (run_dir / "preset.toml").write_text(preset.replace(f'"{root}"', f'"{tmp_path / "gone"}"'))
    (run_dir / "log.txt").write_text("2026-01-01 00:00:00 start: device=cpu\n")
    from segcli.engine.report import build_report

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
    from segcli.engine.report import build_report

    res = build_report(run_dir, worst=0)
    _, page = parse(res.path)
    assert "Pixels per class" not in res.missing and "Training curves" in res.missing
    assert len(page.images) == 1  # only the histogram (no worst images with --worst 0)
    assert page.rows["per-class"] == 5


def test_seg_report_on_a_folder_that_is_not_a_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    capsys.readouterr()
    assert run(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not a run directory" in err
    assert not (tmp_path / "report.html").exists()
    assert run(["report", str(tmp_path), "--worst", "-1"]) == 2
