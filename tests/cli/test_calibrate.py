"""`seg calibrate` on the command line: the temperature fitted and stored (JSON and tables), a dry run and a reset,
the options handed to the engine, and what it cannot calibrate as one red line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import user_error
from infer_helpers import _json

from segcli.cli.app import run
from segcli.core.checkpoint import read_metadata


@pytest.fixture
def run_copy(trained: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny trained run (calibrate rewrites its weights)."""
    return Path(shutil.copytree(trained, tmp_path / "run"))


def test_calibrate_stores_the_temperature_and_reports_ece(run_copy: Path, shapes_root: Path, capsys) -> None:
    best = run_copy / "weights" / "best.safetensors"
    got = _json(capsys, ["calibrate", str(run_copy), "--data", str(shapes_root), "--device", "cpu"])
    assert got["written"] and got["weights"] == str(best) and len(got["temperature"]) == 1
    assert got["after"]["nll"] <= got["before"]["nll"] and got["split"] == "val" and got["images"] == 8
    assert json.loads(read_metadata(best)["temperature"]) == got["temperature"]
    assert run(["calibrate", str(run_copy), "--data", str(shapes_root), "--reset"]) == 0
    assert "temperature removed" in capsys.readouterr().out and "temperature" not in read_metadata(best)
    assert run(["calibrate", str(run_copy), "--data", str(shapes_root), "--per-class", "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "ECE" in text and "dry run" in text and "temperature" not in read_metadata(best)


def test_options_reach_the_engine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys) -> None:
    import segcli.infer.calibration as calibration

    seen: list[tuple[tuple, dict]] = []

    def fake(*args: Any, **kwargs: Any) -> calibration.CalibrationResult:
        seen.append((args, kwargs))
        return calibration.CalibrationResult(Path("w"), [1.5], "val", 1, 10, {"ece": 0.1, "nll": 1.0}, {}, False, 0.1)

    monkeypatch.setattr(calibration, "calibrate", fake)
    argv = ["calibrate", "runs/x", "--per-class", "--max-pixels", "500", "--split", "test", "--weights", "ema"]
    assert run([*argv, "--dry-run", "--json", "--tile", "64,64"]) == 0
    ((args, _),) = seen
    opts = args[4]
    assert opts.per_class and opts.max_pixels == 500 and opts.split == "test" and opts.weights == "ema"
    assert opts.dry_run and not opts.reset and args[3].tile == (64, 64)
    assert json.loads(capsys.readouterr().out)["temperature"] == [1.5]


def test_an_exported_model_is_one_red_line(tmp_path: Path, capfd) -> None:
    model = tmp_path / "m.onnx"
    model.write_bytes(b"")
    user_error(capfd, ["calibrate", model], "safetensors")
    user_error(capfd, ["calibrate", tmp_path / "missing"], "missing")
