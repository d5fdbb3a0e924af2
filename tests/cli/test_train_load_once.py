"""`seg train` reads its preset files and validates the preset exactly once before the first step."""

from __future__ import annotations

from pathlib import Path

import pytest

import segcli.config.load as load
import segcli.train.trainer as trainer
from segcli.cli.app import run


def test_seg_train_loads_and_validates_its_preset_once(
    tiny_overrides: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    counts = {"read": 0, "validate": 0}
    at_start: dict[str, int] = {}
    real_read, real_validate = load._read_with_extends, load.validate_preset

    def read(path: Path, origin: dict, stack: tuple = ()):  # noqa: ANN202
        if not stack:  # the top-level file (the files it extends are read within the same load)
            counts["read"] += 1
        return real_read(path, origin, stack)

    def validate(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        counts["validate"] += 1
        return real_validate(*args, **kwargs)

    real_estimate = trainer.Trainer.estimate_reserve

    def estimate(self):  # noqa: ANN001, ANN202 - the last thing before the first step
        at_start.update(counts)
        return real_estimate(self)

    monkeypatch.setattr(load, "_read_with_extends", read)
    monkeypatch.setattr(load, "validate_preset", validate)
    monkeypatch.setattr(trainer.Trainer, "estimate_reserve", estimate)
    assert run(["train", "quickstart", *tiny_overrides, "train.epochs=1", "--json"]) == 0
    assert at_start == {"read": 1, "validate": 1}
