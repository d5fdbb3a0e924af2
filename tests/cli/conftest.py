"""Fixtures of the command tests: the engine functions replaced by recorders, to check what a command hands them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

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
