"""Each command is a thin wrapper: patch the engine function and check what it received."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from segcli.cli.app import run
from segcli.train.trainer import TrainResult


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[tuple[str, tuple, dict]]:
    """Replace train/evaluate/predict with recorders returning minimal results."""
    import segcli.infer.evaluator as evaluator
    import segcli.infer.predictor as predictor
    import segcli.train.trainer as trainer

    seen: list[tuple[str, tuple, dict]] = []

    def fake_train(*args: Any, **kwargs: Any) -> TrainResult:
        seen.append(("train", args, kwargs))
        return TrainResult(tmp_path / "runs" / "x" / "1", 1, {"epoch": 1, "mIoU": 0.5}, {"epoch": 1, "mIoU": 0.5})

    def fake_evaluate(*args: Any, **kwargs: Any) -> evaluator.EvalResult:
        seen.append(("evaluate", args, kwargs))
        return evaluator.EvalResult({"mIoU": 0.5}, Path("w"), Path("d"), "val", Path("r.json"), 0.1)

    def fake_predict(*args: Any, **kwargs: Any) -> predictor.PredictResult:
        seen.append(("predict", args, kwargs))
        return predictor.PredictResult(Path(args[2]), Path("w"))

    monkeypatch.setattr(trainer, "train", fake_train)
    monkeypatch.setattr(evaluator, "evaluate", fake_evaluate)
    monkeypatch.setattr(predictor, "predict", fake_predict)
    return seen


def test_train_passes_preset_and_overrides(calls: list, capsys: pytest.CaptureFixture) -> None:
    assert run(["train", "quickstart", "train.epochs=3", "optim.lr=0.1", "--json"]) == 0
    ((name, args, kwargs),) = calls
    (loaded,) = args  # the preset, loaded and validated once by the command, with its overrides applied
    assert name == "train" and loaded.stem == "quickstart"
    assert loaded.preset.train.epochs == 3 and loaded.preset.optim.lr == 0.1
    assert kwargs.get("resume") is None and len(kwargs["callbacks"]) == 1


def test_train_resume_takes_no_preset(calls: list, tmp_path: Path) -> None:
    assert run(["train", "--resume", str(tmp_path), "--json"]) == 0
    ((_, args, kwargs),) = calls
    assert args == (None, []) and kwargs["resume"] == tmp_path and kwargs["extend"] == []


def test_train_resume_extend_is_repeatable(calls: list, tmp_path: Path) -> None:
    argv = ["train", "--resume", str(tmp_path), "--extend", "train.epochs=5", "--extend", "train.iters=9", "--json"]
    assert run(argv) == 0
    ((_, _, kwargs),) = calls
    assert kwargs["extend"] == ["train.epochs=5", "train.iters=9"]


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


def test_infer_passes_options(calls: list, tmp_path: Path) -> None:
    assert (
        run(["infer", "runs/x", "a.jpg", "b/", "--out", str(tmp_path), "--amp", "bf16", "--overwrite", "--json"]) == 0
    )
    ((name, args, kwargs),) = calls
    assert name == "predict" and args == (Path("runs/x"), ["a.jpg", "b/"], tmp_path)
    assert kwargs["protocol"].amp == "bf16" and kwargs["output"].overwrite is True and kwargs["device"] == "auto"


def test_engine_options_are_named_as_the_user_gave_them() -> None:
    """Errors from eval/infer options name --amp/--device, not the preset keys."""
    import torch

    from segcli.core.runtime import resolve_amp, select_device
    from segcli.errors import UserError

    with pytest.raises(UserError, match=r"^--amp fp32 is not one of auto, none, bf16, fp16$"):
        resolve_amp("fp32", torch.device("cpu"), option="--amp")
    with pytest.raises(UserError, match=r"^--amp fp16 needs CUDA; on CPU use --amp bf16"):
        resolve_amp("fp16", torch.device("cpu"), option="--amp")
    with pytest.raises(UserError, match=r"^--device tpu is not one of"):
        select_device("tpu", option="--device")
    with pytest.raises(UserError, match=r"^train.amp = 'fp32' is not one of"):
        resolve_amp("fp32", torch.device("cpu"))


def test_train_devices_option_hands_the_same_arguments_to_the_launcher(monkeypatch) -> None:  # noqa: ANN001
    from typer.testing import CliRunner

    from segcli.cli.app import app
    from segcli.core import distributed

    seen = {}
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setattr(distributed, "launch", lambda n, args: seen.update(n=n, args=args) or 0)
    res = CliRunner().invoke(app, ["train", "quickstart", "train.epochs=1", "--devices", "3", "--json"])
    assert res.exit_code == 0, res.output
    assert seen == {"n": 3, "args": ["train", "quickstart", "train.epochs=1", "--json"]}
