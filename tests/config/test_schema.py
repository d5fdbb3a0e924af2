"""The typed preset (segcli/config/schema.py): durations, defaults, the per-term loss tables."""

from __future__ import annotations

import pytest

from segcli.config.load import load_preset
from segcli.config.schema import Preset, parse_duration
from segcli.errors import PresetError


def test_time_budget_seconds() -> None:
    assert load_preset(None, ["train.time_budget=1h30m"]).preset.train.time_budget_seconds == 5400.0
    assert load_preset(None, ["train.time_budget=90s"]).preset.train.time_budget_seconds == 90.0
    assert Preset().train.time_budget_seconds is None
    with pytest.raises(PresetError, match="must be positive"):
        load_preset(None, ["train.time_budget=0s"])


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("15m", 900), ("1h30m", 5400), ("1.5h", 5400)])
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["15", "abc", "10x", "0s"])
def test_parse_duration_errors(text: str) -> None:
    with pytest.raises(PresetError, match="train.time_budget"):
        parse_duration(text)
