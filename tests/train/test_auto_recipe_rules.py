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
    """budget_scratch with only the thin rule on."""
    return load_preset("budget_scratch", ["train.time_budget=2m", 'train.auto_rules=["thin"]', *over]).preset


def test_budget_scratch_turns_both_rules_on_and_the_schema_none() -> None:
    p = load_preset("budget_scratch", ["train.time_budget=2m"]).preset
    assert p.train.auto_rules == ("rare", "thin")
    q, (thin, rare) = fit_to_data(p, stats(2.0))  # binary thin structures: thin fires, rare does not
    assert thin.startswith("recipe: thin structures") and "two classes" in rare
    assert q.augment.scale == (1.0, 1.0) and q.model.full_res and q.loss == p.loss
    q, (thin, _) = fit_to_data(p, many((0.5, 0.3, 0.1995, 0.0005)))  # wide objects, a rare class
    assert q.loss.terms == ("ce", RARE_TERM) and q.augment == p.augment and "not thin" in thin
    p = load_preset("quickstart", []).preset
    assert p.train.auto_rules == ()
    q, lines = fit_to_data(p, stats(2.0))
    assert q == p and lines == ["recipe: train.auto_rules is empty: no rule fits the recipe to the data"]


def test_thin_structures_get_no_rescaling_native_crops_and_logits_at_stride_1() -> None:
    p = preset("augment.scale=[0.75,1.5]", "augment.resize_to=[512,256]")
    assert p.model.name == "fpn" and not p.model.full_res
    q, lines = fit_to_data(p, stats(3.0))
    assert q.augment.scale == (1.0, 1.0) and q.augment.resize_to == () and q.model.full_res
    assert q.loss == p.loss and q.optim == p.optim  # the loss and the lr are the rare rule's business
    assert q == replace(
        p, augment=replace(p.augment, scale=(1.0, 1.0), resize_to=()), model=replace(p.model, full_res=True)
    )
    (line,) = lines
    assert line == (
        "recipe: thin structures (median object width 3.0 px <= 8 px) -> augment.scale=[1,1] (no rescaling), "
        "augment.resize_to=[] (crops at native resolution), model.full_res=true (logits at stride 1)"
    )


@pytest.mark.parametrize("scale", ["[1.0,1.5]", "[0.5,1.0]"])
def test_upscaling_or_downscaling_alone_is_reset_too(scale: str) -> None:
    """An upscaled 3 px line is as wrong for a thin test set as a downscaled one (docs/budget.md: U-Net on smallfg
    at stride 1, 0.8644 F1 with the old rule's [1, 1.5] against 0.9758 with [1, 1])."""
    q, (line,) = fit_to_data(preset(f"augment.scale={scale}"), stats(3.0))
    assert q.augment.scale == (1.0, 1.0) and "augment.scale=[1,1] (no rescaling)" in line


@pytest.mark.parametrize(
    ("model", "has"), [("unet", True), ("panet", True), ("deeplabv3plus", False), ("segnet", False)]
)
def test_logits_at_stride_1_only_where_the_model_has_the_option(model: str, has: bool) -> None:
    from segcli.models import model_options

    assert ("full_res" in (model_options(model) or ())) is has
    p = preset(f"model.name={model}", *(["model.backbone=test_resnet"] if model != "segnet" else []))
    q, (line,) = fit_to_data(p, stats(2.0))
    assert q.model.full_res is has and q.model == replace(p.model, full_res=has)
    assert ("model.full_res=true" in line) is has


def test_a_preset_that_already_fits_is_left_as_it_is() -> None:
    p = preset("augment.scale=[1.0,1.0]", "model.full_res=true")
    q, (line,) = fit_to_data(p, stats(2.0))
    assert q == p and line.endswith("-> the preset already fits (no rescaling, native crops, logits at stride 1)")


def test_term_weights_grow_with_the_added_term_and_a_region_term_is_not_doubled() -> None:
    rare = ('train.auto_rules=["rare"]',)
    q, _ = fit_to_data(
        preset(*rare, 'loss.terms=["ce","focal"]', "loss.term_weights=[1.0,0.5]"), many((0.6, 0.395, 0.005))
    )
    assert q.loss.terms == ("ce", "focal", "dice") and q.loss.term_weights == (1.0, 0.5, 1.0)
    q, lines = fit_to_data(preset(*rare, 'loss.terms=["ce","lovasz"]'), many((0.6, 0.395, 0.005)))
    assert q.loss.terms == ("ce", "lovasz") and "the preset already has a region term" in lines[0]


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
    """The probe times the fitted recipe (its model has logits at stride 1), and the choice carries the rule's line."""
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
    assert q.model.full_res and q.augment.scale == (1.0, 1.0) and not q.train.auto
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


@pytest.mark.slow
def test_a_budget_run_on_thin_lines_trains_at_stride_1_without_rescaling(
    tiny_overrides: list[str], tmp_path: Path
) -> None:
    """budget_scratch on masks of 1 px lines: the thin rule fires, the probe and the run use FPN at stride 1, and
    the run's preset.toml records what the rule set (so a resume replays it)."""
    import cv2

    from segcli.data.prepare.shapes import prepare_shapes
    from segcli.train.trainer import train

    root = tmp_path / "lines"
    prepare_shapes(root, train=8, val=4, size=48, seed=0)
    for mask in root.glob("masks/*/*.png"):
        lines = np.zeros((48, 48), np.uint8)
        lines[::6] = 1
        cv2.imwrite(str(mask), lines)
    replaced = ("train.epochs", "augment.crop_size", "data.batch_size", "data.root")
    over = [o for o in tiny_overrides if not o.startswith(replaced)]
    result = train("budget_scratch", [*over, f"data.root={root}", "train.time_budget=10s", "train.auto=true"])
    log = (result.run_dir / "log.txt").read_text()
    assert "recipe: thin structures (median object width 1.0 px <= 8 px) -> augment.scale=[1,1] (no rescaling)" in log
    assert "model.full_res=true (logits at stride 1)" in log
    resolved = (result.run_dir / "preset.toml").read_text()
    assert "full_res = true" in resolved and "scale = [1.0, 1.0]" in resolved
    assert result.last.get("mIoU") is not None
