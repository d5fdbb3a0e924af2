"""`seg train --budget 15m` (segcli/cli/train.py): the option is the preset keys of a budgeted auto recipe, and is
refused with --resume."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


def test_cli_budget_option(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import segcli.train.trainer as trainer
    from segcli.cli.app import run

    seen: list[Any] = []

    def fake_train(*args: Any, **kwargs: Any) -> trainer.TrainResult:
        seen.append(args)
        return trainer.TrainResult(tmp_path, 1, {"epoch": 1}, {"epoch": 1})

    monkeypatch.setattr(trainer, "train", fake_train)
    assert run(["train", "--budget", "15m", "budget_scratch", "data.root=x", "--json"]) == 0
    (loaded,) = seen[0]  # the preset, loaded once by the command with the budget's keys appended
    assert (loaded.stem, loaded.overrides) == (
        "budget_scratch",
        ("data.root=x", "train.time_budget=15m", "train.auto=true"),
    )
    assert run(["train", "--resume", str(tmp_path), "--budget", "5m"]) == 2
