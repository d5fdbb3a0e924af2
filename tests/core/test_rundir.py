"""RunDir: the run layout, numbering, metrics.csv and the weights resolver (segcli/core/rundir.py)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from segcli.core.rundir import RunDir, resolve_weights, run_of_weights
from segcli.errors import CheckpointError, UserError


def make_run(parent: Path, *weights: str) -> RunDir:
    run = RunDir.create(parent, "exp")
    run.write_preset("# resolved\n")
    for name in weights:
        run.weights(name).parent.mkdir(parents=True, exist_ok=True)
        run.weights(name).write_bytes(b"w")
    return run


def test_layout_and_numbering(tmp_path: Path) -> None:
    a, b = RunDir.create(tmp_path, "exp"), RunDir.create(tmp_path, "exp")
    assert (a.path.name, b.path.name) == ("1", "2") and a.path.parent == tmp_path / "exp"
    assert a.preset == a.path / "preset.toml" and a.metrics == a.path / "metrics.csv"
    assert a.state == a.path / "state.pt" and a.log_file == a.path / "log.txt"
    assert a.weights("best") == a.path / "weights" / "best.safetensors"
    assert (a.eval_dir, a.plots_dir, a.report) == (a.path / "eval", a.path / "plots", a.path / "report.html")
    (tmp_path / "exp" / "notes").mkdir()  # non-numbered folders are not runs
    assert [r.path.name for r in RunDir.numbered(tmp_path / "exp")] == ["1", "2"]
    assert RunDir.numbered(tmp_path / "missing") == []


def test_open_needs_a_preset(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not a run directory"):
        RunDir.open(tmp_path)
    run = make_run(tmp_path)
    assert RunDir.open(run.path) == run and RunDir.is_run(run.path)


def test_metrics_round_trip(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    assert run.read_metrics() == []
    rows = [
        {"epoch": 1, "iterations": 4, "train_loss": 1.25, "lr": 0.001, "seconds": 2.0, "mIoU": 0.5},
        {"epoch": 2, "iterations": 8, "train_loss": 0.75, "lr": 0.0005, "seconds": 2.0, "mIoU": float("nan")},
    ]
    run.write_metrics(rows)
    back = run.read_metrics()
    assert [r["epoch"] for r in back] == [1, 2] and back[0]["iterations"] == 4
    assert back[0]["mIoU"] == 0.5 and math.isnan(back[1]["mIoU"]) and back[0]["ema_mIoU"] is None


def test_eval_reports_never_overwrite(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    first = run.eval_report("val")
    first.parent.mkdir(parents=True)
    first.write_text("{}")
    assert first.name == "val.json" and run.eval_report("val").name == "val-2.json"


def test_log_appends_timestamped_lines(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    run.log("one")
    run.log("two")
    lines = run.log_file.read_text().splitlines()
    assert [ln.split(" ", 2)[2] for ln in lines] == ["one", "two"]


def test_resolve_weights(tmp_path: Path) -> None:
    only_last = make_run(tmp_path, "last")
    both = make_run(tmp_path, "last", "best")
    make_run(tmp_path)  # newest run, no weights yet
    assert resolve_weights(only_last.path) == only_last.weights("last")
    assert resolve_weights(both.path) == both.weights("best")  # best before last
    assert resolve_weights(tmp_path / "exp") == both.weights("best")  # the latest run that has weights
    assert resolve_weights(both.weights("last")) == both.weights("last")  # a file as it is
    assert run_of_weights(both.weights("last")) == both and run_of_weights(tmp_path / "x.safetensors") is None
    with pytest.raises(CheckpointError, match="no such weights file or run directory"):
        resolve_weights(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="no weights/best.safetensors"):
        resolve_weights(make_run(tmp_path).path)


def test_a_run_killed_while_starting_is_explained(tmp_path: Path) -> None:
    """Killed at the first rename (preset.toml), a run folder holds only a temp file: --resume says what
    happened and what to do; any other folder without preset.toml is simply not a run directory."""
    from segcli.io_utils import write_temp

    run = RunDir.create(tmp_path, "exp")
    write_temp(run.preset, lambda p: p.write_text("# half"))
    with pytest.raises(
        UserError,
        match=r"1: not a run directory: it has no preset.toml \(a run killed while "
        r"starting\?\); delete it or start a new run",
    ):
        RunDir.open(run.path)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "a.txt").write_text("x")
    with pytest.raises(UserError, match=r"other: not a run directory \(no preset.toml\)"):
        RunDir.open(tmp_path / "other")
