"""Focal loss: equal to segmentation_models_pytorch."""

from __future__ import annotations

import pytest
from loss_helpers import IGNORE, C, class_weights, close, make_batch

from segcli.losses.focal import FocalLoss

smp_losses = pytest.importorskip("segmentation_models_pytorch.losses")


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
