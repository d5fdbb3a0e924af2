"""`seg eval`: the options handed to the engine, the tables printed, and a bad dataset as one red line whether
the samples are read in this process or in a DataLoader worker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from cli_helpers import DATA_CASES, user_error

from segcli.cli.app import run

pytestmark = pytest.mark.filterwarnings("ignore")


def test_eval_passes_options(calls: list) -> None:
    argv = [
        "eval",
        "runs/x",
        "--data",
        "d",
        "--split",
        "test",
        "--amp",
        "auto",
        "--absent",
        "zero",
        "--batch-size",
        "2",
    ]
    assert run([*argv, "--json"]) == 0
    ((name, args, kwargs),) = calls
    assert name == "evaluate" and args == (Path("runs/x"), Path("d"), "test")
    protocol, options = kwargs["protocol"], kwargs["options"]  # the protocol's choices and the other options
    assert protocol.amp == "auto" and options.absent == "zero" and protocol.batch_size == 2
    assert kwargs["device"] == "auto" and options.workers == "auto"


def test_eval_defaults_leave_every_choice_to_the_checkpoint(calls: list) -> None:
    assert run(["eval", "runs/x", "--weights", "ema", "--worst", "3", "--out", "r.json", "--json"]) == 0
    ((_, args, kwargs),) = calls
    assert args == (Path("runs/x"), None, "val")
    options, protocol = kwargs["options"], kwargs["protocol"]
    assert options.weights == "ema" and options.worst == 3 and options.out == Path("r.json")
    assert options.absent is None and protocol.amp is None and protocol.batch_size is None and protocol.tta is None


def _fake_evaluate(monkeypatch: pytest.MonkeyPatch, rank: int = 0) -> None:
    import segcli.infer.evaluator as evaluator
    from segcli.metrics import metrics_from_confusion

    metrics: dict[str, Any] = metrics_from_confusion(torch.tensor([[6, 2], [1, 3]]), class_names=["bg", "road"])
    metrics.update(images=3, protocol="whole image", worst=[{"image": "val/a.png", "mIoU": 0.25, "overlay": "a.jpg"}])

    def fake(*args: Any, **kwargs: Any) -> evaluator.EvalResult:
        return evaluator.EvalResult(metrics, Path("w"), Path("d"), "val", Path("runs/x/eval/val.json"), 0.1, rank)

    monkeypatch.setattr(evaluator, "evaluate", fake)


def test_eval_prints_the_metrics_per_class_and_the_worst_images(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    _fake_evaluate(monkeypatch)
    assert run(["eval", "runs/x"]) == 0
    out = capsys.readouterr().out
    assert "val: 3 images, 12 labelled pixels" in out
    assert "pixel accuracy" in out and "0.7500" in out  # 9 of 12 pixels right
    assert "road" in out and "worst 1 images" in out and "val/a.png" in out
    assert "protocol: whole image" in out and "conventions: pooled over the split" in out
    assert "report: runs/x/eval/val.json" in out


def test_eval_off_rank_0_prints_nothing(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    _fake_evaluate(monkeypatch, rank=1)
    assert run(["eval", "runs/x"]) == 0
    assert run(["eval", "runs/x", "--json"]) == 0
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("workers", [0, 1])
@pytest.mark.parametrize("case", list(DATA_CASES))
def test_eval_bad_dataset(
    case: str, workers: int, data: Path, weights: Path, tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    """Evaluation reads every sample, in the main process or in a DataLoader worker: one line either way."""
    needle = DATA_CASES[case](data)
    report = tmp_path / "report"
    args = ["eval", weights, "--data", data, "--device", "cpu", "--workers", workers, "--out", report]
    user_error(capfd, args, needle, progress=True)
    assert not report.exists()
