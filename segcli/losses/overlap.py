"""Soft overlap losses from the Tversky index: Dice, Jaccard (soft IoU) and Tversky."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from segcli.losses.common import LabelLoss, one_hot_valid, weighted_class_mean
from segcli.losses.registry import LOSSES
from segcli.options import opt

EPS = 1e-7  # lower bound of the score's denominator and of the score under log (SMP's default)


@dataclass(frozen=True)
class OverlapOptions:
    """Soft overlap loss (dice, jaccard)."""

    smooth: float = opt(0.0, "smoothing added to numerator and denominator", minimum=0.0)
    log_loss: bool = opt(False, "minimise -log(score) instead of 1 - score")


@dataclass(frozen=True)
class TverskyOptions(OverlapOptions):
    """Soft Tversky loss (tversky)."""

    alpha: float = opt(0.3, "weight of false positives (0.5/0.5 = dice, 1/1 = jaccard)", minimum=0.0)
    beta: float = opt(0.7, "weight of false negatives", minimum=0.0)
    gamma: float = opt(1.0, "exponent on the class-averaged loss (focal Tversky, SMP's convention; 1 = plain)")

    def __post_init__(self) -> None:
        if self.gamma <= 0:
            raise ValueError(f"gamma = {self.gamma}: must be > 0 (1 = plain Tversky)")


@LOSSES.register("tversky", options=TverskyOptions)
class TverskyLoss(LabelLoss):
    """Soft Tversky loss over softmax probabilities; Dice and Jaccard are special cases.

    For each class c, over all non-ignored pixels of the batch (not per image):
    ``TP = sum p_c * [y = c]``, ``FP = sum p_c * [y != c]``, ``FN = sum (1 - p_c) * [y = c]`` and
    ``score_c = (TP + smooth) / max(TP + alpha * FP + beta * FN + smooth, 1e-7)``. The per-class loss is
    ``1 - score_c`` (or ``-log(max(score_c, 1e-7))`` with ``log_loss``). alpha = beta = 0.5 is Dice,
    alpha = beta = 1 is Jaccard. alpha weights false positives and beta false negatives.

    Conventions (those of segmentation_models_pytorch's multiclass Dice/Jaccard/Tversky losses, which
    this equals): a class absent from the batch's valid pixels contributes 0 but still counts in the mean
    over all C classes; class weights give ``sum(w_c * loss_c) / sum(w_c)``; ``gamma`` is applied to the
    averaged loss (``mean ** gamma``, SMP's focal Tversky), not per class as in Abraham & Khan.

    """

    def __init__(
        self,
        num_classes: int,
        ignore_index: int = 255,
        weight: torch.Tensor | None = None,
        alpha: float = 0.3,
        beta: float = 0.7,
        gamma: float = 1.0,
        smooth: float = 0.0,
        log_loss: bool = False,
    ) -> None:
        super().__init__(ignore_index, weight)
        if gamma <= 0:
            raise ValueError(f"gamma must be > 0, got {gamma}")
        self.num_classes = num_classes
        self.alpha, self.beta, self.gamma = alpha, beta, gamma
        self.smooth = smooth
        self.log_loss = log_loss

    def per_class(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """(C,) loss of every class (0 for classes absent from the valid pixels)."""
        probs = logits.float().softmax(dim=1)
        onehot = one_hot_valid(target, self.num_classes, self.ignore_index)
        valid = (target != self.ignore_index).unsqueeze(1)
        dims = (0, *range(2, probs.dim()))
        tp = torch.where(onehot, probs, 0.0).sum(dims)
        fp = torch.where(valid, probs, 0.0).sum(dims) - tp
        count = onehot.sum(dims).to(probs.dtype)
        fn = count - tp
        score = (tp + self.smooth) / (tp + self.alpha * fp + self.beta * fn + self.smooth).clamp_min(EPS)
        loss = -torch.log(score.clamp_min(EPS)) if self.log_loss else 1.0 - score
        return torch.where(count > 0, loss, 0.0)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = weighted_class_mean(self.per_class(logits, target), self.weight)
        if self.gamma != 1.0:
            safe = loss.clamp_min(torch.finfo(loss.dtype).tiny)  # keeps the gradient finite at 0 when gamma < 1
            loss = torch.where(loss > 0, safe**self.gamma, 0.0)
        return loss


class FixedTversky(TverskyLoss):
    """A Tversky loss with fixed ``alpha``/``beta`` (class attribute ``ab``) and no ``gamma``: Dice, Jaccard."""

    ab: tuple[float, float] = (0.5, 0.5)

    def __init__(
        self,
        num_classes: int,
        ignore_index: int = 255,
        weight: torch.Tensor | None = None,
        smooth: float = 0.0,
        log_loss: bool = False,
    ) -> None:
        super().__init__(num_classes, ignore_index, weight, *self.ab, 1.0, smooth, log_loss)


@LOSSES.register("dice", options=OverlapOptions)
class DiceLoss(FixedTversky):
    """Soft Dice loss: :class:`TverskyLoss` with alpha = beta = 0.5, i.e. ``1 - 2TP / (2TP + FP + FN)``.

    Equals segmentation_models_pytorch's ``DiceLoss(mode="multiclass")`` (same conventions). Shape as
    :class:`TverskyLoss`.
    """

    ab = (0.5, 0.5)


@LOSSES.register("jaccard", options=OverlapOptions)
class JaccardLoss(FixedTversky):
    """Soft Jaccard (IoU) loss: :class:`TverskyLoss` with alpha = beta = 1, i.e. ``1 - TP / (TP + FP + FN)``.

    Equals segmentation_models_pytorch's ``JaccardLoss(mode="multiclass")`` (same conventions). Shape as
    :class:`TverskyLoss`.
    """

    ab = (1.0, 1.0)
