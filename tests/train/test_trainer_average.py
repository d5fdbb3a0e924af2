"""The trainer with train.average: the label statistics logged at the start, the averaged weights kept for the
final evaluation only when they score higher."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import segcli.train.trainer as trainer_module
from segcli.core.checkpoint import build_from_weights
from segcli.metrics import ConfusionMatrix
from segcli.train.trainer import train


class Scored:
    """A stand-in for the confusion matrix of one model: its metrics say ``value`` for every key."""

    def __init__(self, value: float) -> None:
        self.value = value

    def compute(self, *args: Any, **kwargs: Any) -> dict[str, float]:
        return {"mIoU": self.value}


def fake_scores(monkeypatch: pytest.MonkeyPatch, trained: float, averaged: float) -> dict[str, torch.Tensor]:
    """The end's comparison scores the trained weights ``trained`` and the averaged ones ``averaged``; returns
    (filled at the end) the averaged weights it was given."""
    seen: dict[str, torch.Tensor] = {}
    calls = iter([trained, averaged])

    def fake(module: torch.nn.Module, *args: Any) -> Scored | ConfusionMatrix:
        value = next(calls)
        if value == averaged:
            seen.update({k: v.detach().clone() for k, v in module.state_dict().items()})
        return Scored(value)

    monkeypatch.setattr(trainer_module, "confusion_over_loader", fake)
    return seen


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    model, _ = build_from_weights(run_dir / "weights" / "last.safetensors")
    return model.state_dict()


@pytest.mark.parametrize(("trained", "averaged", "used"), [(0.2, 0.6, "averaged"), (0.6, 0.2, "trained")])
def test_the_higher_scoring_weights_are_evaluated_and_saved(
    tiny_overrides: list[str], monkeypatch: pytest.MonkeyPatch, trained: float, averaged: float, used: str
) -> None:
    seen = fake_scores(monkeypatch, trained, averaged)
    over = [*tiny_overrides, "train.epochs=1", "train.average=swa", "train.average_from=0.5", "train.plots=false"]
    over += ["model.backbone=test_resnet", "model.decoder_channels=8"]  # a smaller network: the choice is tested
    result = train("quickstart", over)
    log = (result.run_dir / "log.txt").read_text()
    assert "data statistics (16 of 16 training masks, median size 48x48): 5 classes" in log
    line = next(x for x in log.splitlines() if "weight averaging:" in x)
    assert "swa: the mean of the weights over the last 50% of the run (2 steps)" in line
    assert f"mIoU {averaged:.4f} on the val split (8 images), the trained weights {trained:.4f}" in line
    assert f"the final evaluation uses the {used} weights" in line
    final = final_weights(result.run_dir)
    same = all(torch.allclose(final[k].float(), v.float()) for k, v in seen.items() if v.is_floating_point())
    assert same == (used == "averaged")
