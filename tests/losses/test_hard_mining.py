"""OHEM and top-k cross-entropy: equal to plain references, through the top-k warmup."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from loss_helpers import IGNORE, class_weights, close, make_batch

from segcli.losses.hard_mining import OhemCrossEntropy, TopKCrossEntropy


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
