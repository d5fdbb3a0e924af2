"""Cross-entropy: equal to PyTorch, and to SMP's soft CE up to its normalisation."""

from __future__ import annotations

import pytest
import torch.nn.functional as F
from loss_helpers import IGNORE, class_weights, close, make_batch

from segcli.losses.cross_entropy import CrossEntropy

smp_losses = pytest.importorskip("segmentation_models_pytorch.losses")


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


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_ce_equals_torch(weighted: bool, smoothing: float) -> None:
    logits, target = make_batch(7)
    w = class_weights() if weighted else None
    ref = F.cross_entropy(logits, target, weight=w, ignore_index=IGNORE, label_smoothing=smoothing)
    close(CrossEntropy(IGNORE, w, smoothing)(logits, target), ref)
