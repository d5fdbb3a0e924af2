"""Presets: inheritance, overrides, and every error message."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from cli_helpers import user_error, write_file
from preset_helpers import write

from segcli.config.load import load_preset, parse_overrides, preset_from_dict, preset_to_dict, preset_to_toml
from segcli.config.reference import render_markdown
from segcli.config.schema import Preset
from segcli.config.toml_io import load_toml
from segcli.core.factory import loss_from_preset
from segcli.errors import PresetError
from segcli.losses import LOSSES
from segcli.losses.hard_mining import OhemOptions
from segcli.losses.overlap import OverlapOptions
from segcli.options import opt


def test_defaults_without_file() -> None:
    import dataclasses

    from segcli.losses.registry import loss_options

    p = load_preset(None).preset
    # the resolved preset gives each loss term its table of options in force (defaults here)
    assert p.loss.tables == (("ce", loss_options("ce")()),)
    # and resolves model.mean/std "auto" to the backbone's statistics (resnet18: ImageNet's)
    assert p.model.mean == (0.485, 0.456, 0.406) and p.model.std == (0.229, 0.224, 0.225)
    model = dataclasses.replace(p.model, mean="auto", std="auto")
    assert dataclasses.replace(p, loss=dataclasses.replace(p.loss, tables=()), model=model) == Preset()


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


def test_loss_tables_round_trip_and_stay_hashable(tmp_path: Path) -> None:
    over = ["loss.terms=['ohem', 'dice']", "loss.ohem.min_kept=64", "loss.dice.log_loss=true"]
    preset = load_preset(None, over).preset
    assert [name for name, _ in preset.loss.tables] == ["dice", "ohem"]
    assert preset_to_dict(preset)["loss"]["ohem"]["min_kept"] == 64
    text = preset_to_toml(preset)
    assert "[loss.ohem]\nlabel_smoothing = 0.0\nthresh = 0.7\nmin_kept = 64\n" in text
    again = load_preset(write(tmp_path / "resolved.toml", text)).preset
    assert again == preset and hash(again) == hash(preset)
    assert preset_from_dict(load_toml(tmp_path / "resolved.toml")) == preset


@dataclass(frozen=True)
class TinyOptions:
    """Tiny test loss (tiny_test_loss)."""

    scale: float = opt(1.0, "multiplies the mean logit", minimum=0.0)


def _tiny_loss(num_classes: int, ignore_index: int, weight: torch.Tensor | None, *, scale: float) -> torch.nn.Module:
    class Tiny(torch.nn.Module):
        def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            return logits.mean() * scale

    return Tiny()


@pytest.fixture
def tiny_loss():
    """A loss registered outside segcli: one builder, one options dataclass, one register call."""
    LOSSES.register("tiny_test_loss", options=TinyOptions)(_tiny_loss)
    yield "tiny_test_loss"
    LOSSES.unregister("tiny_test_loss")


def test_a_loss_registered_elsewhere_works_from_a_preset_and_in_the_docs(tiny_loss: str, tmp_path: Path) -> None:
    p = write(tmp_path / "p.toml", f'[loss]\nterms = ["ce", "{tiny_loss}"]\n\n[loss.{tiny_loss}]\nscale = 3.0\n')
    preset = load_preset(p).preset
    assert preset.loss.options_for(tiny_loss) == TinyOptions(scale=3.0)
    loss = loss_from_preset(preset.loss, 2, 255, None)
    logits, target = torch.ones(1, 2, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long)
    ce = torch.nn.functional.cross_entropy(logits, target)
    torch.testing.assert_close(loss(logits, target), ce + 3.0)
    with pytest.raises(
        PresetError, match=rf"command line: \[loss.{tiny_loss}\] scale = -1.0 is out of range; must be >= 0.0"
    ):
        load_preset(p, [f"loss.{tiny_loss}.scale=-1"])
    doc = render_markdown()
    assert f"### [loss.{tiny_loss}]\n\nTiny test loss (tiny_test_loss).\n" in doc
    assert "| `scale` | number | `1.0` | multiplies the mean logit (range: 0.0..) |" in doc


def test_presets_embedded_before_the_loss_tables_still_load() -> None:
    """A checkpoint written before the per-term tables embeds every flat loss key; it migrates."""
    old = preset_to_dict(Preset())
    old["loss"] = {"terms": ["ohem", "dice"], "term_weights": [], "class_weights": [], "label_smoothing": 0.1}
    old["loss"] |= {"ohem_thresh": 0.9, "ohem_min_kept": 50, "dice_log": True, "focal_gamma": 2.0}
    preset = preset_from_dict(old)
    assert preset.loss.options_for("ohem") == OhemOptions(label_smoothing=0.1, thresh=0.9, min_kept=50)
    assert preset.loss.options_for("dice") == OverlapOptions(log_loss=True)
    assert preset.loss.options_for("focal") is None and "ohem_thresh" in old["loss"]  # the input is left as it was


PRESET_CASES: dict[str, tuple[Callable[[Path], list[str]], tuple[str, ...]]] = {
    "unknown key": (lambda d: ["quickstart", "train.epoch=3"], ('did you mean "train.epochs"',)),
    "wrong type": (lambda d: ["quickstart", "optim.lr=fast"], ("optim", "'fast'")),
    "missing file": (lambda d: [str(d / "nope.toml")], ("nope.toml",)),
    "circular extends": (
        lambda d: [
            str(write_file(d / "a.toml", 'extends = "b.toml"\n')),
            *([] if write_file(d / "b.toml", 'extends = "a.toml"\n') else []),
        ],
        ("a.toml",),
    ),
    "empty file": (lambda d: [str(write_file(d / "empty.toml", ""))], ("empty.toml",)),
    "invalid TOML": (lambda d: [str(write_file(d / "bad.toml", "[train]\nepochs = = 3\n"))], ("bad.toml", "line 2")),
    "not UTF-8": (lambda d: [str(write_file(d / "latin.toml", b"# caf\xe9\n[train]\n"))], ("latin.toml", "UTF-8")),
    "override for a missing key": (lambda d: ["quickstart", "nosuch.key=1"], ("nosuch",)),
    "out-of-range value": (lambda d: ["quickstart", "train.epochs=0"], ("epochs",)),
}


@pytest.mark.parametrize("case", list(PRESET_CASES))
def test_bad_preset(case: str, tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    """Each way a preset can be wrong, through `seg presets show`: one red line naming the file, key or value."""
    make, needles = PRESET_CASES[case]
    user_error(capfd, ["presets", "show", *make(tmp_path)], *needles)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optim.lr=inf", r"\[optim\] lr = inf must be a finite number"),
        ("optim.lr=nan", r"\[optim\] lr = nan must be a finite number"),
        ("augment.hflip=nan", r"\[augment\] hflip = nan must be a finite number"),
        (
            "data.batch_size=99999999999999999999999",
            r"\[data\] batch_size = 9+ is out of range; must be in \[1, 65536\]",
        ),
        ("train.epochs=99999999999999999999", r"\[train\] epochs = 9+ is out of range; must be at most"),
    ],
)
def test_non_finite_floats_and_huge_integers_are_refused_naming_the_key(override: str, message: str) -> None:
    """nan passes every comparison with a bound and inf trains NaN weights; a number larger than any count would
    fail deep inside training: each is refused where the preset loads."""
    with pytest.raises(PresetError, match=rf"^command line: {message}"):
        load_preset("quickstart", [override])
