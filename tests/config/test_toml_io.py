"""Reading TOML with file and line in the error, and writing the subset segcli produces
(segcli/config/toml_io.py)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

from segcli.config.toml_io import dumps_toml, load_toml, parse_toml_value
from segcli.errors import DataError, PresetError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def test_load_toml_reads_a_file(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text('name = "x"\n[train]\nepochs = 3\n', encoding="utf-8")
    assert load_toml(tmp_path / "a.toml") == {"name": "x", "train": {"epochs": 3}}


def test_load_toml_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(PresetError, match=r"nope.toml: file not found"):
        load_toml(tmp_path / "nope.toml")
    (tmp_path / "bad.toml").write_text("a = 1\nb = \n")
    with pytest.raises(PresetError, match=r"bad.toml: invalid TOML: .*line 2"):
        load_toml(tmp_path / "bad.toml")
    (tmp_path / "latin1.toml").write_bytes('name = "caf\xe9"\n'.encode("latin-1"))
    with pytest.raises(PresetError, match=r"latin1.toml: not UTF-8 text \(byte 11\); save it as UTF-8"):
        load_toml(tmp_path / "latin1.toml")
    with pytest.raises(PresetError, match=r": cannot read"):
        load_toml(tmp_path)  # a folder
    with pytest.raises(DataError, match=r"nope.toml: file not found"):  # the caller picks the error type
        load_toml(tmp_path / "nope.toml", error=DataError)


@pytest.mark.parametrize(
    ("text", "value"),
    [("3", 3), ("0.1", 0.1), ("true", True), ("[1, 2]", [1, 2]), ('"x y"', "x y"), ("adamw", "adamw"), ("", "")],
)
def test_parse_toml_value_leaves_bare_words_as_strings(text: str, value: object) -> None:
    assert parse_toml_value(text) == value


def test_dumps_toml_writes_scalars_first_then_one_table_per_dict() -> None:
    data = {
        "train": {"epochs": 3, "lr": 0.001, "amp": "none", "sizes": [64, 32], "skip": None},
        "name": "run",
        "on": True,
        "loss": {"terms": ["ce"], "ce": {"label_smoothing": 0.0}},
    }
    text = dumps_toml(data, comments={"loss": "what is minimised"})
    assert text == (
        'name = "run"\n'
        "on = true\n"
        "\n"
        "[train]\n"
        "epochs = 3\n"
        "lr = 0.001\n"
        'amp = "none"\n'
        "sizes = [64, 32]\n"
        "\n"
        "# what is minimised\n"
        "[loss]\n"
        'terms = ["ce"]\n'
        "\n"
        "[loss.ce]\n"
        "label_smoothing = 0.0\n"
    )
    back = tomllib.loads(text)
    assert back["train"] == {"epochs": 3, "lr": 0.001, "amp": "none", "sizes": [64, 32]}  # None left out


def test_dumps_toml_round_trips_awkward_values() -> None:
    data = {"a b": 'quote " and ünïcode', "inf": math.inf, "ninf": -math.inf, "inline": [{"x": 1}], "t": (1, 2)}
    back = tomllib.loads(dumps_toml(data))
    assert back["a b"] == data["a b"] and back["inline"] == [{"x": 1}] and back["t"] == [1, 2]
    assert back["inf"] == math.inf and back["ninf"] == -math.inf
    assert math.isnan(tomllib.loads(dumps_toml({"v": math.nan}))["v"])


def test_dumps_toml_refuses_what_toml_cannot_hold() -> None:
    with pytest.raises(TypeError, match="TOML has no null"):
        dumps_toml({"v": [None]})
    with pytest.raises(TypeError, match="cannot write object to TOML"):
        dumps_toml({"v": object()})
