"""Lovasz-softmax: equal to segmentation_models_pytorch; class weights weigh the present classes."""

from __future__ import annotations

import pytest
import torch
from loss_helpers import IGNORE, C, class_weights, close, make_batch

from segcli.losses.lovasz import LovaszSoftmaxLoss

smp_losses = pytest.importorskip("segmentation_models_pytorch.losses")


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
