"""`seg report` (segcli/cli/report.py): --worst, --no-eval and --json, and a folder that is not a run as one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from report_helpers import parse, train_tiny_run

from segcli.cli.app import run


@pytest.fixture(scope="module")
def trained(shapes_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One finished 2-epoch run, shared by this module's tests (they copy it before changing anything)."""
    return train_tiny_run(shapes_root, tmp_path_factory)


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


def test_seg_report_on_a_folder_that_is_not_a_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    capsys.readouterr()
    assert run(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not a run directory" in err
    assert not (tmp_path / "report.html").exists()
    assert run(["report", str(tmp_path), "--worst", "-1"]) == 2


def test_seg_report_passes_its_options_and_names_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from segcli.report.run_report import ReportResult

    seen: dict[str, Any] = {}

    def build(run_dir: Path, **kwargs: Any) -> ReportResult:
        seen.update(run_dir=run_dir, **kwargs)
        return ReportResult(run_dir / "report.html", {"plots": "no plots/ folder [yet]"}, 1.25)

    monkeypatch.setattr("segcli.report.build_report", build)
    assert run(["report", str(tmp_path), "--worst", "3", "--no-eval", "--device", "cpu"]) == 0
    assert seen == {"run_dir": tmp_path, "worst": 3, "evaluate": False, "device": "cpu"}
    captured = capsys.readouterr()
    assert captured.out.strip() == f"report: {tmp_path / 'report.html'}"
    assert captured.err.strip() == "not available plots: no plots/ folder [yet]"  # brackets shown as written
    assert run(["report", str(tmp_path), "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["not_available"] == {"plots": "no plots/ folder [yet]"} and captured.err == ""
