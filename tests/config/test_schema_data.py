"""The [data] section of the preset schema: num_workers and cache, their defaults and the checks at load."""

from __future__ import annotations

import pytest

from segcli.config.load import load_preset
from segcli.errors import PresetError


def test_num_workers_is_auto_by_default_and_checked_at_load() -> None:
    assert load_preset("quickstart", []).preset.data.num_workers == "auto"
    assert load_preset("quickstart", ["data.num_workers=3"]).preset.data.num_workers == 3
    assert load_preset("quickstart", ["data.cache=ram"]).preset.data.cache == "ram"
    with pytest.raises(PresetError, match="num_workers"):
        load_preset("quickstart", ["data.num_workers=many"])
    with pytest.raises(PresetError, match="out of range"):
        load_preset("quickstart", ["data.num_workers=-1"])
    with pytest.raises(PresetError, match="cache"):
        load_preset("quickstart", ["data.cache=disk"])
