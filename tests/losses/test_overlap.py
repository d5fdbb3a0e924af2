"""Dice, Jaccard and Tversky: equal to segmentation_models_pytorch, and Tversky's special cases."""

from __future__ import annotations

import pytest
from loss_helpers import IGNORE, C, class_weights, close, make_batch

from segcli.losses.overlap import DiceLoss, JaccardLoss, TverskyLoss

smp_losses = pytest.importorskip("segmentation_models_pytorch.losses")


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


def test_tversky_special_cases_are_dice_and_jaccard() -> None:
    logits, target = make_batch(13)
    close(TverskyLoss(C, IGNORE, None, 0.5, 0.5)(logits, target), DiceLoss(C, IGNORE)(logits, target))
    close(TverskyLoss(C, IGNORE, None, 1.0, 1.0)(logits, target), JaccardLoss(C, IGNORE)(logits, target))
