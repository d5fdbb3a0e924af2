"""--extend (segcli/train/extend.py): only the key that sets a run's length grows, and only larger; each refusal
names the key and leaves the run as it was."""

from __future__ import annotations

import pytest

from segcli.config.schema import Preset, TrainConfig
from segcli.errors import PresetError, UserError
from segcli.train.extend import Extension, extend_preset, length_key
from segcli.train.trainer import train


@pytest.mark.parametrize(
    ("extend", "needle"),
    [
        (["optim.lr=0.1"], "--extend optim.lr: only train.epochs"),
        (["train.epochs=2"], "must be larger than the run's train.epochs = 2"),
        (["train.epochs=two"], "not a whole number"),
        (["train.iters=50"], "sets the run's length with train.epochs"),
        (["train.epochs"], "is not KEY=VALUE"),
    ],
)
def test_extend_errors_name_the_key(tiny_overrides: list[str], extend: list[str], needle: str) -> None:
    from segcli.errors import UserError

    res = train("quickstart", [*tiny_overrides, "train.epochs=2"])
    before = (res.run_dir / "preset.toml").read_text()
    with pytest.raises(UserError, match=needle):
        train(resume=res.run_dir, extend=extend)
    assert (res.run_dir / "preset.toml").read_text() == before


def test_length_key_is_the_budget_then_iters_then_epochs() -> None:
    assert length_key(TrainConfig()) == "train.epochs"
    assert length_key(TrainConfig(iters=50)) == "train.iters"
    assert length_key(TrainConfig(iters=50, time_budget="10m")) == "train.time_budget"


def test_extend_epochs_iters_and_a_budget() -> None:
    p, changes = extend_preset(Preset(train=TrainConfig(epochs=2)), ["train.epochs=5"], "the run")
    assert p.train.epochs == 5 and isinstance(p.train.epochs, int)
    assert (
        changes == [Extension("train.epochs", "2", "5")]
        and changes[0].describe() == "extended train.epochs from 2 to 5"
    )
    p, _ = extend_preset(Preset(train=TrainConfig(iters=100)), [" train.iters = 150 "], "the run")
    assert p.train.iters == 150
    budget = Preset(train=TrainConfig(time_budget="15m"))
    p, changes = extend_preset(budget, ["train.time_budget=1h"], "the run")
    assert p.train.time_budget == "1h" and changes[0].describe() == "extended train.time_budget from 15m to 1h"
    assert extend_preset(budget, [], "the run") == (budget, [])


def test_bare_keys_extend_like_full_ones() -> None:
    p, changes = extend_preset(Preset(train=TrainConfig(epochs=2)), ["epochs=4"], "the run")
    assert p.train.epochs == 4 and changes[0].key == "train.epochs"
    p, changes = extend_preset(Preset(train=TrainConfig(iters=10)), ["iters=20"], "the run")
    assert p.train.iters == 20 and changes[0].describe() == "extended train.iters from 10 to 20"
    with pytest.raises(UserError, match="only train.epochs"):
        extend_preset(Preset(), ["lr=0.1"], "the run")


@pytest.mark.parametrize(
    ("start", "item", "needle"),
    [
        (TrainConfig(), "train.epochs", r"--extend 'train.epochs' is not KEY=VALUE"),
        (TrainConfig(), "=3", r"is not KEY=VALUE"),
        (TrainConfig(), "data.batch_size=8", r"--extend data.batch_size: only train.epochs, train.iters"),
        (TrainConfig(), "train.iters=500", r"--extend train.iters: run.toml sets the run's length with train.epochs"),
        (TrainConfig(epochs=10), "train.epochs=10", r"must be larger than the run's train.epochs = 10"),
        (TrainConfig(time_budget="15m"), "train.time_budget=900s", r"must be larger than the run's train.time_budget"),
    ],
)
def test_what_cannot_be_extended_names_the_key(start: TrainConfig, item: str, needle: str) -> None:
    with pytest.raises(UserError, match=needle):
        extend_preset(Preset(train=start), [item], "run.toml")


def test_values_that_are_not_lengths_are_preset_errors() -> None:
    with pytest.raises(PresetError, match=r"--extend train.epochs=2.5: not a whole number"):
        extend_preset(Preset(), ["train.epochs=2.5"], "the run")
    with pytest.raises(PresetError, match="train.time_budget"):
        extend_preset(Preset(train=TrainConfig(time_budget="15m")), ["train.time_budget=later"], "the run")
