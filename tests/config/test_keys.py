"""Short override keys (``epochs=3``, ``imgsz=256``) and the suggestions for unknown keys."""

from __future__ import annotations

import pytest

from segcli.config.keys import expand_short_keys, preset_keys, short_key, suggest_key
from segcli.config.load import load_preset
from segcli.errors import PresetError


def test_preset_keys_are_dotted_leaves() -> None:
    keys = preset_keys()
    assert "train.epochs" in keys and "data.batch_size" in keys and "augment.crop_size" in keys
    assert all(k.count(".") == 1 for k in keys if not k.startswith(("train.distill.", "eval.crf.")))
    assert "train.distill.teacher" in keys and "eval.crf.bi_w" in keys  # a nested table's keys are followed into
    assert not any(k.startswith("loss.tables") for k in keys)


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("epochs", "train.epochs"),
        ("device", "train.device"),
        ("lr", "optim.lr"),
        ("batch_size", "data.batch_size"),  # ambiguous leaf (eval.batch_size too): the training batch
        ("batch", "data.batch_size"),
        ("imgsz", "augment.crop_size"),
        ("name", "train.name"),
        ("teacher", "train.distill.teacher"),
        ("train", None),  # a section
        ("nonsense", None),
    ],
)
def test_short_key(name: str, key: str | None) -> None:
    assert short_key(name) == key


def test_expand_short_keys_notes_each_resolution() -> None:
    out, notes = expand_short_keys(["epochs=3", "train.seed=1", "imgsz=256", "imgsz=128x96", "data=/d", "train=3"])
    assert out == [
        "train.epochs=3",
        "train.seed=1",
        "augment.crop_size=[256, 256]",
        "augment.crop_size=[128, 96]",
        "data.root=/d",
        "train=3",
    ]
    assert notes == [
        "epochs=3 read as train.epochs=3",
        "imgsz=256 read as augment.crop_size=[256, 256]",
        "imgsz=128x96 read as augment.crop_size=[128, 96]",
        "data=/d read as data.root=/d",
    ]


def test_load_preset_resolves_bare_keys_with_notes() -> None:
    overrides = ["epochs=3", "device=cpu", "batch_size=8", "imgsz=256", "name=mine", "data=/tmp/mine"]
    loaded = load_preset("quickstart", overrides)
    p = loaded.preset
    assert (p.train.epochs, p.train.device, p.data.batch_size) == (3, "cpu", 8)
    assert (p.augment.crop_size, p.train.name, p.data.root) == ((256, 256), "mine", "/tmp/mine")
    assert loaded.notes[0] == "epochs=3 read as train.epochs=3"
    assert len(loaded.notes) == len(overrides)
    assert load_preset("quickstart", ["train.epochs=3"]).notes == ()


@pytest.mark.parametrize(
    ("dotted", "options", "expected"),
    [
        ("data.batch", ["data.cache", "data.batch_size", "data.root"], "data.batch_size"),  # was data.cache
        ("data.epochs", ["data.root", "data.cache"], "train.epochs"),  # same leaf in another section
        ("train.epoch", ["train.epochs", "train.device"], "train.epochs"),
        ("epoch", ["data", "train"], "train.epochs"),  # a bare near-miss: the closest leaf of any key
        ("meta.sauce", ["meta.source", "meta.notes"], "meta.source"),
        ("trian", ["data", "train"], "train"),
    ],
)
def test_suggest_key_prefers_the_same_leaf(dotted: str, options: list[str], expected: str) -> None:
    assert suggest_key(dotted, options) == f' (did you mean "{expected}"?)'


def test_suggest_key_says_nothing_when_nothing_is_close() -> None:
    assert suggest_key("zzzz", ["data", "train"]) == ""


@pytest.mark.parametrize(
    ("override", "pattern"),
    [
        ("data.batch=4", r"unknown key 'data.batch' \(did you mean \"data.batch_size\"\?\)"),
        ("epoch=1", r"unknown section 'epoch' \(did you mean \"train.epochs\"\?\)"),
        ("model.epochs=1", r"unknown key 'model.epochs' \(did you mean \"train.epochs\"\?\)"),
    ],
)
def test_unknown_keys_suggest_the_key_meant(override: str, pattern: str) -> None:
    with pytest.raises(PresetError, match=pattern):
        load_preset("quickstart", [override])
