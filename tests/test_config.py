"""Presets: inheritance, overrides, and every error message."""

from __future__ import annotations

from pathlib import Path

import pytest

from segcli.config.load import load_preset, parse_overrides, preset_to_toml
from segcli.config.reference import render_markdown
from segcli.config.schema import Preset
from segcli.errors import PresetError

ROOT = Path(__file__).resolve().parents[1]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_defaults_without_file() -> None:
    assert load_preset(None).preset == Preset()


def test_extends_deep_merges_relative_to_file(tmp_path: Path) -> None:
    write(tmp_path / "_base" / "data.toml", '[data]\nroot = "/base"\nbatch_size = 4\n')
    write(tmp_path / "_base" / "sched.toml", "[schedule]\nwarmup_iters = 7\n[train]\nepochs = 3\n")
    p = write(
        tmp_path / "recipe.toml",
        'extends = ["_base/data.toml", "_base/sched.toml"]\n[data]\nbatch_size = 2\n[train]\nepochs = 5\n',
    )
    preset = load_preset(p).preset
    assert preset.data.root == "/base"  # from the base
    assert preset.data.batch_size == 2  # the child wins
    assert preset.schedule.warmup_iters == 7
    assert preset.train.epochs == 5


def test_extends_chain_and_cycle(tmp_path: Path) -> None:
    write(tmp_path / "a.toml", 'extends = "b.toml"\n')
    write(tmp_path / "b.toml", 'extends = "a.toml"\n')
    with pytest.raises(PresetError, match="cycle"):
        load_preset(tmp_path / "a.toml")
    write(tmp_path / "c.toml", 'extends = "missing.toml"\n')
    with pytest.raises(PresetError, match="missing.toml"):
        load_preset(tmp_path / "c.toml")


def test_overrides_are_coerced_to_declared_types(tmp_path: Path) -> None:
    p = write(tmp_path / "x.toml", "[train]\nepochs = 9\n")
    preset = load_preset(
        p, ["train.epochs=3", "optim.lr=1", "data.root=/elsewhere/d", "augment.crop_size=[64, 32]", "train.name=2024"]
    ).preset
    assert preset.train.epochs == 3
    assert preset.optim.lr == 1.0 and isinstance(preset.optim.lr, float)
    assert preset.data.root == "/elsewhere/d"
    assert preset.augment.crop_size == (64, 32)
    assert preset.train.name == "2024"


@pytest.mark.parametrize(
    ("overrides", "pattern"),
    [
        (["train.epoch=3"], r"command line: unknown key 'train.epoch' \(did you mean \"train.epochs\"\?\)"),
        (["trian.epochs=3"], r"unknown section 'trian' \(did you mean \"train\"\?\)"),
        (["train.epochs=abc"], r"command line: \[train\] epochs = 'abc' has the wrong type; expected integer"),
        (["train.epochs=0"], r"epochs = 0 is out of range; must be >= 1"),
        (["optim.name=adam2"], r"optim\] name = 'adam2' has the wrong type; expected one of 'adamw', 'adam', 'sgd'"),
        (["train.epochs"], r"override 'train.epochs' is not key=value"),
        (["train=3"], r"'train' must be a table"),
        (["augment.crop_size=[1.5]"], r"expected list of integer"),
    ],
)
def test_override_errors(overrides: list[str], pattern: str) -> None:
    with pytest.raises(PresetError, match=pattern):
        load_preset(None, overrides)


def test_file_errors_name_file_section_key(tmp_path: Path) -> None:
    p = write(tmp_path / "bad.toml", '[train]\nepochs = "ten"\n')
    with pytest.raises(PresetError, match=rf"{p}: \[train\] epochs = 'ten' has the wrong type; expected integer"):
        load_preset(p)
    p = write(tmp_path / "bad2.toml", "[train]\nepochs = \n")
    with pytest.raises(PresetError, match=r"bad2.toml: invalid TOML: .*line 2"):
        load_preset(p)
    base = write(tmp_path / "base.toml", "[model]\nbackbon = 'resnet18'\n")
    child = write(tmp_path / "child.toml", 'extends = "base.toml"\n')
    with pytest.raises(
        PresetError, match=rf"{base}: unknown key 'model.backbon' \(did you mean \"model.backbone\"\?\)"
    ):
        load_preset(child)


def test_unknown_preset_name_suggests() -> None:
    with pytest.raises(PresetError, match=r"preset 'quickstar' not found \(did you mean \"quickstart\"\?\)"):
        load_preset("quickstar")
    with pytest.raises(PresetError, match="nope.toml: preset file not found"):
        load_preset("some/dir/nope.toml")


def test_parse_overrides_nests() -> None:
    out = parse_overrides(["a.b=1", "a.c=x"])
    assert set(out["a"]) == {"b", "c"}


def test_resolved_toml_round_trips(tmp_path: Path) -> None:
    preset = load_preset("quickstart", ["train.epochs=2", "loss.class_weights=[1, 2, 3, 4, 5]"]).preset
    p = write(tmp_path / "resolved.toml", preset_to_toml(preset, header="test"))
    assert load_preset(p).preset == preset


def test_config_reference_is_up_to_date() -> None:
    doc = ROOT / "docs" / "config.md"
    assert doc.is_file(), "run: python -m segcli.config.reference > docs/config.md"
    assert doc.read_text() == render_markdown(), (
        "docs/config.md is stale: python -m segcli.config.reference > docs/config.md"
    )
