"""train.auto_rules: the recipe fitted to the training labels' statistics (segcli/train/auto_recipe.fit_to_data)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from segcli.config.load import load_preset
from segcli.config.schema import Preset
from segcli.data.stats import LabelStats, label_stats
from segcli.errors import PresetError
from segcli.train.auto_recipe import RARE_LR_FACTOR, RARE_TERM, THIN_WIDTH_PX, Probe, fit_to_data


def stats(width: float | None) -> LabelStats:
    widths = None if width is None else (width, width, width)
    return LabelStats(("bg", "fg"), (0.9, 0.1), 0, 0.1, widths, (64, 64), 4, 4)


def many(shares: tuple[float, ...]) -> LabelStats:
    names = tuple(f"c{i}" for i in range(len(shares)))
    return LabelStats(names, shares, 0, 1 - shares[0], (30.0, 30.0, 30.0), (64, 64), 4, 4)


def preset(*over: str) -> Preset:
    """budget_scratch with the thin rule on (it is opt-in: the default is no rule)."""
    return load_preset("budget_scratch", ["train.time_budget=2m", 'train.auto_rules=["thin"]', *over]).preset


def test_budget_scratch_turns_only_the_rare_rule_on_and_the_schema_none() -> None:
    p = load_preset("budget_scratch", ["train.time_budget=2m"]).preset
    assert p.train.auto_rules == ("rare",)
    q, (line,) = fit_to_data(p, stats(2.0))  # binary thin structures: the thin rule is not on
    assert q == p and "two classes" in line
    q, _ = fit_to_data(p, many((0.5, 0.3, 0.1995, 0.0005)))
    assert q.loss.terms == ("ce", RARE_TERM)
    p = load_preset("quickstart", []).preset
    assert p.train.auto_rules == ()
    q, lines = fit_to_data(p, stats(2.0))
    assert q == p and lines == ["recipe: train.auto_rules is empty: no rule fits the recipe to the data"]


def test_thin_structures_get_no_downscaling_native_crops_and_a_dice_term() -> None:
    p = preset("augment.scale=[0.75,1.5]", "augment.resize_to=[512,256]")
    q, lines = fit_to_data(p, stats(3.0))
    assert q.augment.scale == (1.0, 1.5) and q.augment.resize_to == ()
    assert q.loss.terms == ("ce", "dice") and q.loss.options_for("dice") is not None
    (line,) = lines
    assert line.startswith("recipe: thin structures (median object width 3.0 px <= 8 px) -> augment.scale=[1,1.5]")
    assert 'loss.terms=["ce","dice"]' in line and "augment.resize_to=[]" in line


def test_term_weights_grow_with_the_added_term_and_a_region_term_is_not_doubled() -> None:
    q, _ = fit_to_data(preset('loss.terms=["ce","focal"]', "loss.term_weights=[1.0,0.5]"), stats(2.0))
    assert q.loss.terms == ("ce", "focal", "dice") and q.loss.term_weights == (1.0, 0.5, 1.0)
    q, lines = fit_to_data(preset('loss.terms=["ce","lovasz"]', "augment.scale=[1.0,1.0]"), stats(2.0))
    assert q.loss.terms == ("ce", "lovasz") and "the preset already fits" in lines[0]


@pytest.mark.parametrize("width", [THIN_WIDTH_PX + 0.5, None])
def test_wide_objects_or_no_foreground_leave_the_recipe_alone(width: float | None) -> None:
    p = preset()
    q, (line,) = fit_to_data(p, stats(width))
    assert q == p and line.startswith("recipe: not thin structures") and line.endswith("unchanged")


def test_the_rule_can_be_switched_off_and_unknown_rules_are_refused() -> None:
    p = preset("train.auto_rules=[]")
    q, lines = fit_to_data(p, stats(2.0))
    assert q == p and lines == ["recipe: train.auto_rules is empty: no rule fits the recipe to the data"]
    with pytest.raises(PresetError, match="train.auto_rules: unknown rule 'wide'"):
        preset('train.auto_rules=["wide"]')


def test_auto_preset_applies_the_rules_before_the_probe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The probe times the fitted recipe (its loss has the Dice term), and the choice carries the rule's line."""
    import segcli.train.auto_recipe as auto
    from segcli.core.runtime import select_device
    from segcli.data.prepare.shapes import prepare_shapes

    root = tmp_path / "shapes"
    prepare_shapes(root, train=2, val=1, size=64, seed=0)
    monkeypatch.setattr(auto, "probe_step_times", lambda *a, **k: [Probe(128, 4, 0.01)])
    lines = np.zeros((64, 64), np.uint8)
    lines[::8] = 1  # 1 px lines
    thin = label_stats([lines], 2, 255, ("bg", "line"), 1)
    p = preset(f"data.root={root}", "model.backbone=test_resnet")
    q, choice = auto.auto_preset(p, select_device("cpu"), "none", lambda: 0.0, thin)
    assert q.loss.terms == ("ce", "dice") and q.augment.scale[0] >= 1.0 and not q.train.auto
    assert choice.recipe and choice.recipe[0].startswith("recipe: thin structures (median object width 1.0 px")


def test_rare_classes_get_a_region_term() -> None:
    """Street scenes where a bicycle is 0.05 % of the pixels: the region term goes next to CE, and the line names
    the rare classes, rarest first."""
    p = load_preset("budget_scratch", ["train.time_budget=2m", 'train.auto_rules=["rare"]']).preset
    q, (line,) = fit_to_data(p, many((0.5, 0.3, 0.1945, 0.005, 0.0005)))
    assert q.loss.terms == ("ce", RARE_TERM) and q.loss.options_for(RARE_TERM) is not None
    assert q.augment == p.augment and q.model == p.model  # only the loss and the lr
    assert RARE_LR_FACTOR == 1.5 and q.optim.lr == pytest.approx(3e-3)  # budget_scratch's 2e-3: measured
    assert q.optim == replace(p.optim, lr=q.optim.lr)
    assert line.startswith("recipe: rare classes (c4 0.05%, c3 0.50% < 1% of the pixels) -> loss.terms=")
    assert line.endswith("(a region term), optim.lr=0.003 (1.5x)")
    # no class under the share, or two classes (binary sets have the thin rule): unchanged
    for shares, why in (((0.4, 0.3, 0.3), "no class under 1%"), ((0.995, 0.005), "two classes")):
        q, (line,) = fit_to_data(p, many(shares))
        assert q == p and why in line and line.endswith("unchanged")
    # a preset that already has a region term keeps it
    p = load_preset("budget_scratch", ["train.time_budget=2m", 'train.auto_rules=["rare"]', 'loss.terms=["ce","dice"]'])
    q, (line,) = fit_to_data(p.preset, many((0.5, 0.3, 0.1995, 0.0005)))
    assert q.loss.terms == ("ce", "dice") and "the preset already has a region term, optim.lr=0.003" in line
