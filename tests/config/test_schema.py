"""The typed preset (segcli/config/schema.py): durations, defaults, the per-term loss tables."""

from __future__ import annotations

import dataclasses

import pytest

from segcli.config.load import load_preset
from segcli.config.schema import LossConfig, Preset, TrainConfig, format_duration, parse_duration
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


def test_durations_read_loosely_and_format_back() -> None:
    assert parse_duration(" 1H 30M ") == 5400.0 and parse_duration("2m30s") == 150.0
    assert format_duration(90) == "90.000s"
    for seconds in (0.5, 61.25, 5400.0, 123.4567):
        assert parse_duration(format_duration(seconds)) == pytest.approx(seconds, abs=5e-4)


def test_time_budget_seconds_is_parsed_on_read() -> None:
    assert TrainConfig(time_budget="15m").time_budget_seconds == 900.0
    assert TrainConfig().time_budget_seconds is None
    with pytest.raises(PresetError, match=r"train.time_budget = 'soon': use a duration such as 90s"):
        _ = TrainConfig(time_budget="soon").time_budget_seconds


def test_a_preset_is_frozen_and_hashable() -> None:
    p = Preset()
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.train = TrainConfig()  # type: ignore[misc]
    assert hash(p) == hash(Preset()) and p == Preset()
    assert dataclasses.replace(p, train=TrainConfig(epochs=3)) != p


def test_every_option_has_a_one_line_doc() -> None:
    """docs/config.md and `seg presets show` print each key's doc: none may be missing or run over a line."""
    for section in dataclasses.fields(Preset):
        cls = section.default_factory
        assert cls.__doc__ and section.metadata["doc"] == cls.__doc__
        for f in dataclasses.fields(cls):
            doc = f.metadata.get("doc", "")
            assert doc.strip() and "\n" not in doc, f"{section.name}.{f.name}"


def test_loss_options_come_from_the_terms_tables() -> None:
    assert LossConfig().options_for("ce") is None  # a config made in code has no tables
    loss = load_preset(None, ["loss.terms=['ce', 'dice']", "loss.ce.label_smoothing=0.2"]).preset.loss
    assert loss.options_for("ce").label_smoothing == 0.2
    assert loss.options_for("dice") is not None  # defaults filled in for every term
    assert loss.options_for("focal") is None


def test_backbone_help_names_every_model_with_its_own_backbone() -> None:
    """model.backbone's help lists the models that reject it; a new model with its own backbone must be added."""
    from segcli.config.schema import ModelConfig
    from segcli.models import MODELS

    doc = {f.name: f.metadata["doc"] for f in dataclasses.fields(ModelConfig)}["backbone"]
    own = [name for name in MODELS.names() if not MODELS.info(name).timm_encoder]
    assert own and all(name in doc for name in own), (own, doc)
