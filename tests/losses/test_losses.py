"""build_loss/build_term over every registered loss (ignored pixels, gradients, empty batches), and the
[loss] preset tables they are built from."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from loss_helpers import IGNORE, C, class_weights, close, make_batch

from segcli.config.load import load_preset
from segcli.config.schema import LossConfig
from segcli.core.factory import loss_from_preset
from segcli.errors import PresetError, UserError
from segcli.losses import LOSSES, build_loss, build_term, loss_options
from segcli.losses.cross_entropy import CrossEntropy
from segcli.losses.focal import FocalLoss, FocalOptions
from segcli.losses.hard_mining import OhemOptions
from segcli.losses.overlap import DiceLoss

ALL_TERMS = tuple(t for t in LOSSES.names() if not LOSSES.info(t).teacher)  # kd, cwd: test_distill.py


# Options that make every term non-trivial on a 2x12x12 batch (and exercise label smoothing and alpha).
TEST_OPTIONS = {
    "ce": {"label_smoothing": 0.05},
    "ohem": {"label_smoothing": 0.05, "min_kept": 20},
    "topk": {"label_smoothing": 0.05, "percent": 30.0},
    "focal": {"alpha": 0.25},
}


def loss_for(term: str, ignore_index: int = IGNORE, weight: torch.Tensor | None = None, **per_term: dict):
    """The single-term loss ``term`` with TEST_OPTIONS, updated by ``per_term[term]`` when given."""
    options = {**TEST_OPTIONS.get(term, {}), **per_term.get(term, {})}
    return build_loss((term,), C, ignore_index, weight, options={term: options})


@pytest.mark.parametrize("term", ALL_TERMS)
@pytest.mark.parametrize("per_image", [False, True])
def test_ignored_pixels_change_nothing(term: str, per_image: bool) -> None:
    """Random logits at ignored pixels, and another ignore label, leave the loss and its gradient unchanged."""
    logits, target = make_batch(10)
    ignored = target == IGNORE
    assert ignored.any()
    other_logits = torch.where(ignored.unsqueeze(1), torch.randn_like(logits) * 10, logits)
    other_target = torch.where(ignored, 200, target)
    lovasz = {"per_image": per_image}
    a_in = logits.clone().requires_grad_()
    b_in = other_logits.clone().requires_grad_()
    a = loss_for(term, IGNORE, class_weights(), lovasz=lovasz)(a_in, target)
    b = loss_for(term, 200, class_weights(), lovasz=lovasz)(b_in, other_target)
    a.backward()
    b.backward()
    close(a, b)
    torch.testing.assert_close(a_in.grad, b_in.grad, atol=1e-6, rtol=0)
    assert not a_in.grad[ignored.unsqueeze(1).expand_as(logits)].any()


@pytest.mark.parametrize("term", ALL_TERMS)
@pytest.mark.parametrize("scale", [1.0, 60.0])
def test_gradients_are_finite(term: str, scale: float) -> None:
    logits, target = make_batch(11)
    x = (logits * scale).requires_grad_()
    log = {"log_loss": True}
    loss = loss_for(term, IGNORE, class_weights(), dice=log, jaccard=log, tversky=log)(x, target)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(x.grad).all()
    assert x.grad.abs().sum() > 0


@pytest.mark.parametrize("term", ALL_TERMS)
def test_all_ignored_batch_gives_zero_with_a_graph(term: str) -> None:
    logits, _ = make_batch(12)
    x = logits.requires_grad_()
    target = torch.full((2, 12, 12), IGNORE)
    loss = loss_for(term, IGNORE, None, tversky={"gamma": 0.5})(x, target)
    assert loss.item() == 0.0
    assert loss.requires_grad
    loss.backward()
    assert torch.equal(x.grad, torch.zeros_like(x))


def test_perfect_prediction_costs_nothing_for_overlap_and_lovasz() -> None:
    _, target = make_batch(14)
    logits = F.one_hot(torch.where(target == IGNORE, 0, target), C).permute(0, 3, 1, 2).float() * 100.0
    for term in ("dice", "jaccard", "tversky", "lovasz"):
        assert loss_for(term)(logits, target).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize(
    ("overrides", "pattern"),
    [
        (["loss.terms=['ce', 'dcie']"], r"loss\.terms.*'dcie'.*did you mean \"dice\".*valid: ce, cwd, dice"),
        (["loss.terms=['ce', 'dice']", "loss.term_weights=[1]"], r"loss\.term_weights has 1 values for 2"),
        (["loss.term_weights=[-1]"], r"loss\.term_weights.*>= 0"),
        (["loss.terms=[]"], r"loss\.terms is empty"),
        (["loss.terms=['ce', 'ce']"], r"more than once"),
        (["loss.terms=['topk']", "loss.topk.percent=0"], r"\[loss\.topk\] percent = 0\.0: must be in \(0, 100\]"),
        (["loss.terms=['tversky']", "loss.tversky.gamma=0"], r"\[loss\.tversky\] gamma = 0\.0: must be > 0"),
    ],
)
def test_bad_terms_fail_when_the_preset_loads(overrides: list[str], pattern: str) -> None:
    with pytest.raises(PresetError, match="command line: .*" + pattern):
        load_preset(None, overrides)


def test_build_loss_rejects_unknown_terms_from_python() -> None:
    with pytest.raises(UserError, match=r"unknown loss 'dcie' \(did you mean \"dice\"\?\)"):
        build_loss(("ce", "dcie"), C, IGNORE)


def test_preset_keys_load_and_the_old_keys_are_gone() -> None:
    p = load_preset(None, ["loss.terms=['ce', 'lovasz']", "loss.term_weights=[1, 0.5]", "loss.ohem.thresh=0.9"])
    assert p.preset.loss.terms == ("ce", "lovasz")
    assert p.preset.loss.term_weights == (1.0, 0.5)
    assert p.preset.loss.options_for("ohem") == OhemOptions(thresh=0.9)
    assert p.preset.loss.options_for("ce") == loss_options("ce")()  # no [loss.ce] table: resolved to defaults
    assert OhemOptions().min_kept == 100000 and LossConfig().terms == ("ce",)
    with pytest.raises(PresetError, match=r"unknown key 'loss\.name'"):
        load_preset(None, ["loss.name=ce"])
    with pytest.raises(PresetError, match=r"\[loss\.ohem\] thresh = 1\.5 is out of range"):
        load_preset(None, ["loss.ohem.thresh=1.5"])
    with pytest.raises(PresetError, match=r"unknown key 'loss\.ohem\.tresh' \(did you mean \"loss\.ohem\.thresh\"\?\)"):
        load_preset(None, ["loss.ohem.tresh=0.5"])
    with pytest.raises(PresetError, match=r"table \[loss\.fcal\]: unknown loss 'fcal' \(did you mean \"focal\"\?\)"):
        load_preset(None, ["loss.fcal.gamma=1"])


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("loss.ohem_thresh=0.9", r"\[loss\.ohem\] thresh; on the command line: loss\.ohem\.thresh="),
        ("loss.focal_gamma=1", r"\[loss\.focal\] gamma"),
        ("loss.label_smoothing=0.1", r"\[loss\.ce\] label_smoothing"),
        ("loss.dice_log=true", r"\[loss\.dice\] log_loss"),
    ],
)
def test_moved_flat_keys_say_where_they_went(old: str, new: str) -> None:
    with pytest.raises(PresetError, match=rf"command line: {old.split('=')[0]} moved to {new}"):
        load_preset(None, [old])


def test_loss_from_preset_uses_the_term_tables() -> None:
    logits, target = make_batch(16)
    preset = load_preset(None, ["loss.terms=['focal', 'ce']", "loss.term_weights=[2, 1]", "loss.focal.gamma=0.5"])
    loss = loss_from_preset(preset.preset.loss, C, IGNORE, None)
    expected = 2 * FocalLoss(C, IGNORE, None, gamma=0.5)(logits, target) + CrossEntropy(IGNORE)(logits, target)
    close(loss(logits, target), expected)


def test_build_term_takes_options_as_a_dataclass_or_a_mapping_of_some_fields() -> None:
    logits, target = make_batch(17)
    by_mapping = build_term("focal", C, IGNORE, None, {"gamma": 0.5})
    by_class = build_term("focal", C, IGNORE, None, FocalOptions(gamma=0.5))
    close(by_mapping(logits, target), FocalLoss(C, IGNORE, None, gamma=0.5)(logits, target))
    close(by_class(logits, target), by_mapping(logits, target))
    close(build_term("focal", C, IGNORE)(logits, target), FocalLoss(C, IGNORE)(logits, target))  # defaults
    with pytest.raises(TypeError, match="gama"):
        build_term("focal", C, IGNORE, None, {"gama": 0.5})


def test_build_term_passes_only_the_common_arguments_a_builder_takes() -> None:
    seen: list[dict] = []

    def only_ignore(ignore_index: int) -> torch.nn.Module:
        seen.append({"ignore_index": ignore_index})
        return torch.nn.Identity()

    def takes_any(**kw) -> torch.nn.Module:  # noqa: ANN003
        seen.append(kw)
        return torch.nn.Identity()

    w = torch.ones(C)
    LOSSES.register("_only_ignore")(only_ignore)
    LOSSES.register("_takes_any")(takes_any)
    try:
        build_term("_only_ignore", C, 7, w)
        build_term("_takes_any", C, 7, w)
    finally:
        LOSSES.unregister("_only_ignore")
        LOSSES.unregister("_takes_any")
    assert seen[0] == {"ignore_index": 7}
    assert set(seen[1]) == {"num_classes", "ignore_index", "weight"} and seen[1]["weight"] is w


def test_build_loss_weights_default_to_one_each() -> None:
    logits, target = make_batch(18)
    loss = build_loss(("ce", "dice"), C, IGNORE)
    assert loss.weights == (1.0, 1.0) and loss.names == ("ce", "dice")
    close(loss(logits, target), CrossEntropy(IGNORE)(logits, target) + DiceLoss(C, IGNORE)(logits, target))
