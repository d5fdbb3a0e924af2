"""Losses: equal to segmentation_models_pytorch / PyTorch / straightforward references, honour ignore_index."""

from __future__ import annotations

import dataclasses
import inspect

import pytest
import torch
import torch.nn.functional as F

from segcli.config.load import load_preset
from segcli.config.schema import LossConfig
from segcli.core.factory import loss_from_preset
from segcli.errors import PresetError, UserError
from segcli.losses import LOSSES, build_loss, loss_options
from segcli.losses.cross_entropy import CrossEntropy
from segcli.losses.focal import FocalLoss
from segcli.losses.hard_mining import OhemCrossEntropy, OhemOptions, TopKCrossEntropy
from segcli.losses.lovasz import LovaszSoftmaxLoss
from segcli.losses.overlap import DiceLoss, JaccardLoss, TverskyLoss

smp_losses = pytest.importorskip("segmentation_models_pytorch.losses")

C = 5
IGNORE = 255
ALL_TERMS = ("ce", "ohem", "topk", "dice", "focal", "lovasz", "jaccard", "tversky")


def make_batch(seed: int = 0, ignore: bool = True, n: int = 2, size: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    """Random logits and targets; class C-1 never appears, ~25% of pixels ignored when ``ignore``."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, C, size, size, generator=g) * 2.0
    target = torch.randint(0, C - 1, (n, size, size), generator=g)
    if ignore:
        target[torch.rand(n, size, size, generator=g) < 0.25] = IGNORE
    return logits, target


def class_weights() -> torch.Tensor:
    return torch.tensor([0.5, 2.0, 1.0, 1.5, 0.75])


def close(a: torch.Tensor, b: torch.Tensor | float) -> None:
    torch.testing.assert_close(a, torch.as_tensor(b, dtype=a.dtype), atol=1e-5, rtol=0)


# --- against segmentation_models_pytorch -------------------------------------------------------------


@pytest.mark.parametrize("ignore", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize(("smooth", "log_loss"), [(0.0, False), (1.0, True)])
def test_dice_and_jaccard_equal_smp(ignore: bool, weighted: bool, smooth: float, log_loss: bool) -> None:
    logits, target = make_batch(1, ignore)
    w = class_weights() if weighted else None
    kw = dict(smooth=smooth, log_loss=log_loss, ignore_index=IGNORE if ignore else None)
    kw["class_weights"] = w.tolist() if w is not None else None
    ours_d = DiceLoss(C, IGNORE, w, smooth, log_loss)(logits, target)
    ours_j = JaccardLoss(C, IGNORE, w, smooth, log_loss)(logits, target)
    close(ours_d, smp_losses.DiceLoss("multiclass", **kw)(logits, target))
    close(ours_j, smp_losses.JaccardLoss("multiclass", **kw)(logits, target))


@pytest.mark.parametrize("ignore", [False, True])
@pytest.mark.parametrize(("alpha", "beta", "gamma", "weighted"), [(0.3, 0.7, 1.0, False), (0.7, 0.2, 2.0, True)])
def test_tversky_equals_smp(ignore: bool, alpha: float, beta: float, gamma: float, weighted: bool) -> None:
    logits, target = make_batch(2, ignore)
    w = class_weights() if weighted else None
    ours = TverskyLoss(C, IGNORE, w, alpha, beta, gamma)(logits, target)
    ref = smp_losses.TverskyLoss(
        "multiclass",
        alpha=alpha,
        beta=beta,
        gamma=gamma,
        ignore_index=IGNORE if ignore else None,
        class_weights=w.tolist() if w is not None else None,
    )(logits, target)
    close(ours, ref)


@pytest.mark.parametrize("ignore", [False, True])
@pytest.mark.parametrize(("gamma", "alpha", "weighted"), [(2.0, None, False), (1.5, 0.25, True), (0.0, None, False)])
def test_focal_equals_smp(ignore: bool, gamma: float, alpha: float | None, weighted: bool) -> None:
    logits, target = make_batch(3, ignore)
    w = class_weights() if weighted else None
    ours = FocalLoss(C, IGNORE, w, gamma, alpha)(logits, target)
    ref = smp_losses.FocalLoss(
        "multiclass",
        alpha=alpha,
        gamma=gamma,
        ignore_index=IGNORE if ignore else None,
        class_weights=w.tolist() if w is not None else None,
    )(logits, target)
    close(ours, ref)


@pytest.mark.parametrize("ignore", [False, True])
@pytest.mark.parametrize("per_image", [False, True])
def test_lovasz_equals_smp(ignore: bool, per_image: bool) -> None:
    logits, target = make_batch(4, ignore)
    ours = LovaszSoftmaxLoss(IGNORE, None, per_image)(logits, target)
    ref = smp_losses.LovaszLoss("multiclass", per_image=per_image, ignore_index=IGNORE if ignore else None)
    close(ours, ref(logits, target))


def test_lovasz_class_weights_are_a_weighted_mean_over_present_classes() -> None:
    logits, target = make_batch(5)
    w = class_weights()
    per_class = []
    for c in range(C - 1):  # class C-1 is absent
        one = torch.zeros(C)  # weight on class c only: that class's Lovasz loss
        one[c] = 1.0
        per_class.append(LovaszSoftmaxLoss(IGNORE, one)(logits, target))
    expected = sum(w[c] * per_class[c] for c in range(C - 1)) / w[: C - 1].sum()
    close(LovaszSoftmaxLoss(IGNORE, w)(logits, target), expected)
    close(LovaszSoftmaxLoss(IGNORE, None)(logits, target), torch.stack(per_class).mean())


@pytest.mark.parametrize("ignore", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_ce_equals_smp_soft_ce_up_to_its_normalisation(ignore: bool, smoothing: float) -> None:
    """SMP's SoftCrossEntropyLoss averages over all pixels, ignored ones included (as zeros); we (and PyTorch)
    average over the non-ignored pixels only."""
    logits, target = make_batch(6, ignore)
    ours = CrossEntropy(IGNORE, None, smoothing)(logits, target)
    ref = smp_losses.SoftCrossEntropyLoss(smooth_factor=smoothing, ignore_index=IGNORE if ignore else None)
    share_valid = (target != IGNORE).float().mean()
    close(ours * share_valid, ref(logits, target))


# --- against PyTorch and straightforward references ----------------------------------------------------


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_ce_equals_torch(weighted: bool, smoothing: float) -> None:
    logits, target = make_batch(7)
    w = class_weights() if weighted else None
    ref = F.cross_entropy(logits, target, weight=w, ignore_index=IGNORE, label_smoothing=smoothing)
    close(CrossEntropy(IGNORE, w, smoothing)(logits, target), ref)


def reference_ohem(logits, target, thresh, min_kept, weight=None, smoothing=0.0, min_kept_ratio=0.0):
    """Loop-free but plain: sort the valid pixels by true-class probability and keep the hard ones."""
    valid = target != IGNORE
    min_kept = max(min_kept, int(valid.sum()) * min_kept_ratio // 1)  # CoinCheung: valid // 16
    lg = logits.permute(0, 2, 3, 1)[valid]  # (P, C)
    tg = target[valid]
    prob = lg.softmax(1)[torch.arange(len(tg)), tg]
    below = prob < thresh
    if int(below.sum()) >= min_kept:
        keep = below
    else:
        keep = torch.zeros_like(below)
        keep[prob.argsort()[: int(min(min_kept, len(tg)))]] = True
    return F.cross_entropy(lg[keep], tg[keep], weight=weight, label_smoothing=smoothing)


@pytest.mark.parametrize(
    ("thresh", "min_kept", "weighted"),
    [(0.7, 10, False), (0.3, 190, True), (0.05, 40, False), (0.7, 10_000, False), (1.0, 1, True)],
)
def test_ohem_equals_reference(thresh: float, min_kept: int, weighted: bool) -> None:
    logits, target = make_batch(8)
    w = class_weights() if weighted else None
    ours = OhemCrossEntropy(IGNORE, w, 0.1, thresh, min_kept)(logits, target)
    close(ours, reference_ohem(logits, target, thresh, min_kept, w, 0.1))


@pytest.mark.parametrize(
    ("thresh", "min_kept", "ratio"), [(0.3, 1, 1 / 16), (0.3, 1, 0.5), (0.3, 150, 0.01), (0.05, 1, 1.0)]
)
def test_ohem_min_kept_ratio_keeps_a_share_of_the_valid_pixels(thresh: float, min_kept: int, ratio: float) -> None:
    logits, target = make_batch(8)
    ours = OhemCrossEntropy(IGNORE, None, 0.0, thresh, min_kept, ratio)(logits, target)
    close(ours, reference_ohem(logits, target, thresh, min_kept, None, 0.0, ratio))
    keep = OhemCrossEntropy(IGNORE, None, 0.0, thresh, min_kept, ratio).keep_mask(logits, target)
    n_valid = int((target != IGNORE).sum())
    assert int(keep.sum()) >= min(n_valid, max(min_kept, int(n_valid * ratio)))


def test_ohem_selects_both_ways() -> None:
    """The parameters above exercise the threshold and the min_kept branches (guards the reference test)."""
    logits, target = make_batch(8)
    prob = logits.softmax(1).gather(1, torch.where(target == IGNORE, 0, target).unsqueeze(1)).squeeze(1)
    below = int(((prob < 0.3) & (target != IGNORE)).sum())
    assert below < 190 < int((target != IGNORE).sum())
    assert int(((prob < 0.7) & (target != IGNORE)).sum()) > 10


def reference_topk(logits, target, fraction, weight=None):
    valid = target != IGNORE
    lg = logits.permute(0, 2, 3, 1)[valid]
    tg = target[valid]
    losses = F.cross_entropy(lg, tg, weight=weight, reduction="none")
    k = max(1, round(fraction * len(tg)))
    idx = losses.argsort(descending=True)[:k]
    return F.cross_entropy(lg[idx], tg[idx], weight=weight)


@pytest.mark.parametrize("weighted", [False, True])
def test_topk_equals_reference_through_the_warmup(weighted: bool) -> None:
    logits, target = make_batch(9)
    w = class_weights() if weighted else None
    loss = TopKCrossEntropy(IGNORE, w, 0.0, percent=30.0, warmup_iters=100)
    close(loss(logits, target), F.cross_entropy(logits, target, weight=w, ignore_index=IGNORE))  # step 0: 100%
    for step, fraction in [(50, 0.65), (100, 0.3), (1000, 0.3)]:
        loss.set_progress(step, 2000)
        assert loss.fraction() == pytest.approx(fraction)
        close(loss(logits, target), reference_topk(logits, target, fraction, w))
    no_warmup = TopKCrossEntropy(IGNORE, w, 0.0, percent=10.0, warmup_iters=0)
    close(no_warmup(logits, target), reference_topk(logits, target, 0.1, w))


# --- properties of every registered loss ----------------------------------------------------------------


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


def test_every_registered_loss_is_covered() -> None:
    assert set(LOSSES.names()) == set(ALL_TERMS)


@pytest.mark.parametrize("term", ALL_TERMS)
def test_every_option_is_a_keyword_of_the_loss_with_the_same_default(term: str) -> None:
    """A loss is built with every field of its options dataclass as a keyword argument."""
    params = inspect.signature(LOSSES.get(term)).parameters
    for f in dataclasses.fields(loss_options(term)):
        assert f.name in params and params[f.name].default == f.default, f.name


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


def test_tversky_special_cases_are_dice_and_jaccard() -> None:
    logits, target = make_batch(13)
    close(TverskyLoss(C, IGNORE, None, 0.5, 0.5)(logits, target), DiceLoss(C, IGNORE)(logits, target))
    close(TverskyLoss(C, IGNORE, None, 1.0, 1.0)(logits, target), JaccardLoss(C, IGNORE)(logits, target))


def test_perfect_prediction_costs_nothing_for_overlap_and_lovasz() -> None:
    _, target = make_batch(14)
    logits = F.one_hot(torch.where(target == IGNORE, 0, target), C).permute(0, 3, 1, 2).float() * 100.0
    for term in ("dice", "jaccard", "tversky", "lovasz"):
        assert loss_for(term)(logits, target).item() == pytest.approx(0.0, abs=1e-6)


# --- the combined loss and the preset ----------------------------------------------------------------


def test_combined_loss_is_the_weighted_sum_and_forwards_progress() -> None:
    logits, target = make_batch(15)
    w = class_weights()
    weights = (1.0, 0.5, 2.0, 0.25)
    terms = ("ce", "dice", "topk", "lovasz")
    options = {"topk": {"warmup_iters": 10}}
    combined = build_loss(terms, C, IGNORE, w, term_weights=weights, options=options)
    combined.set_progress(10, 100)
    total = combined(logits, target)
    expected = 0.0
    for term, weight in zip(terms, weights):
        single = build_loss((term,), C, IGNORE, w, options=options)
        single.set_progress(10, 100)
        expected = expected + weight * single(logits, target)
        close(combined.last_terms[term], single(logits, target))
    close(total, expected)
    assert combined.terms[2].fraction() == pytest.approx(0.2)  # topk got the progress


@pytest.mark.parametrize(
    ("overrides", "pattern"),
    [
        (["loss.terms=['ce', 'dcie']"], r"loss\.terms.*'dcie'.*did you mean \"dice\".*valid: ce, dice"),
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
