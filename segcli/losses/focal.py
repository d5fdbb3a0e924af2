"""Focal loss, one-vs-rest (sigmoid) form, as in RetinaNet, mmseg and segmentation_models_pytorch."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from segcli.losses.common import LabelLoss, one_hot_valid, weighted_class_mean
from segcli.losses.registry import LOSSES
from segcli.options import opt


@dataclass(frozen=True)
class FocalOptions:
    """Sigmoid focal loss (focal)."""

    gamma: float = opt(2.0, "focusing exponent (0 = one-vs-rest binary cross-entropy)", minimum=0.0)
    alpha: float = opt(
        -1.0,
        "weight of the true-class term (1 - alpha for the others); negative = off (0.25 in RetinaNet)",
        minimum=-1.0,
        maximum=1.0,
    )


@LOSSES.register("focal", options=FocalOptions)
class FocalLoss(LabelLoss):
    """Sigmoid focal loss: every class channel is a binary problem "pixel is class c".

    Per pixel and class, with ``b = BCE(logit_c, [y = c])`` and ``p_t = exp(-b)``:
    ``(1 - p_t) ** gamma * b``, times ``alpha`` for the true class and ``1 - alpha`` for the others when
    ``alpha`` is given (``None`` or negative = no balancing). gamma = 0 and no alpha is plain one-vs-rest BCE.

    Normalisation (segmentation_models_pytorch's ``FocalLoss(mode="multiclass")``, which this equals): each
    class's loss is averaged over the batch's non-ignored pixels, then classes are averaged (or
    ``sum(w_c * loss_c) / sum(w_c)`` with class weights); so the result is the mean over pixels x classes.
    RetinaNet instead divides the sum by the number of positives. The logits are used as sigmoid logits, not
    softmax: this is not the softmax "focal cross-entropy" some codebases use.

    """

    def __init__(
        self,
        num_classes: int,
        ignore_index: int = 255,
        weight: torch.Tensor | None = None,
        gamma: float = 2.0,
        alpha: float | None = -1.0,
    ) -> None:
        super().__init__(ignore_index, weight)
        self.num_classes = num_classes
        self.gamma = gamma
        self.alpha = alpha if alpha is not None and alpha >= 0 else None

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        x = logits.float()
        onehot = one_hot_valid(target, self.num_classes, self.ignore_index)
        valid = (target != self.ignore_index).unsqueeze(1)
        y = onehot.to(x.dtype)
        bce = F.binary_cross_entropy_with_logits(x, y, reduction="none")
        loss = (1.0 - torch.exp(-bce)).pow(self.gamma) * bce
        if self.alpha is not None:
            loss = loss * (self.alpha * y + (1.0 - self.alpha) * (1.0 - y))
        dims = (0, *range(2, x.dim()))
        n_valid = valid.sum(dims).to(x.dtype).clamp_min(1.0)  # same count for every class
        per_class = torch.where(valid, loss, 0.0).sum(dims) / n_valid
        return weighted_class_mean(per_class, self.weight)
