"""Cross-entropy over the hardest pixels only: OHEM (probability threshold) and top-k percent (bootstrapping)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from segcli.losses.common import LabelLoss, valid_mask
from segcli.losses.cross_entropy import CEOptions, pixel_cross_entropy, weighted_mean
from segcli.losses.registry import LOSSES
from segcli.options import opt


@dataclass(frozen=True)
class OhemOptions(CEOptions):
    """Online hard example mining cross-entropy (ohem)."""

    thresh: float = opt(
        0.7, "keep pixels whose predicted probability of the true class is below this", minimum=0.0, maximum=1.0
    )
    min_kept: int = opt(
        100000,
        "keep at least this many hardest pixels per batch and process (100000 as in the published "
        "Cityscapes OHEM recipes for 512x1024 crops; lower it for small crops)",
        minimum=1,
    )
    min_kept_ratio: float = opt(
        0.0,
        "also keep at least this share of the batch's valid pixels (the larger count wins): CoinCheung/BiSeNet "
        "keeps valid/16 = 0.0625 with min_kept = 1; 0 = min_kept alone",
        minimum=0.0,
        maximum=1.0,
    )


@dataclass(frozen=True)
class TopKOptions(CEOptions):
    """Bootstrapped cross-entropy over the hardest pixels (topk)."""

    percent: float = opt(
        20.0, "percentage (0, 100] of the hardest valid pixels kept after the warm-up", minimum=0.0, maximum=100.0
    )
    warmup_iters: int = opt(
        0, "iterations over which the kept share falls linearly from 100% to percent (0 = none)", minimum=0
    )

    def __post_init__(self) -> None:
        if self.percent <= 0:
            raise ValueError(f"percent = {self.percent}: must be in (0, 100]")


@LOSSES.register("ohem", options=OhemOptions)
class OhemCrossEntropy(LabelLoss):
    """Online hard example mining cross-entropy (the HRNet/DDRNet/BiSeNet Cityscapes recipe).

    A valid pixel is kept when the softmax probability of its true class is below ``thresh``; when fewer
    than ``k = max(min_kept, floor(min_kept_ratio * valid pixels))`` pixels qualify, the ``k`` pixels with the
    lowest true-class probability are kept instead (all valid pixels when there are fewer; ties at the cut
    are all kept). ``min_kept_ratio`` is CoinCheung/BiSeNet's ``n_min = valid // 16``. The loss is the
    cross-entropy averaged over the kept pixels, weighted as ``F.cross_entropy`` does with class weights.
    The selection itself carries no gradient. Batches are mined as a whole (per process under DDP).

    """

    def __init__(
        self,
        ignore_index: int = 255,
        weight: torch.Tensor | None = None,
        label_smoothing: float = 0.0,
        thresh: float = 0.7,
        min_kept: int = 100000,
        min_kept_ratio: float = 0.0,
    ) -> None:
        super().__init__(ignore_index, weight)
        self.label_smoothing = label_smoothing
        self.thresh = thresh
        self.min_kept = min_kept
        self.min_kept_ratio = min_kept_ratio

    def keep_mask(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """(N, H, W) bool: the pixels that enter the loss. No host synchronisation."""
        with torch.no_grad():
            valid, safe = valid_mask(target, self.ignore_index)
            prob = F.log_softmax(logits.detach().float(), dim=1).gather(1, safe.unsqueeze(1)).squeeze(1).exp()
            prob = torch.where(valid, prob, torch.inf)  # ignored pixels sort last and never pass a threshold
            flat = prob.reshape(-1)
            if self.min_kept_ratio > 0:  # k depends on the valid count: index a sorted copy, no host sync
                k = torch.floor(valid.sum() * self.min_kept_ratio).long().clamp(min=self.min_kept, max=flat.numel())
                kth = flat.sort().values.gather(0, (k - 1).reshape(1)).squeeze(0)
            else:
                kth = flat.kthvalue(min(self.min_kept, flat.numel())).values
            # kth is inf when fewer than k pixels are valid: every valid pixel is kept
            return valid & ((prob < self.thresh) | (prob <= kth))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        losses, denom = pixel_cross_entropy(logits, target, self.ignore_index, self.weight, self.label_smoothing)
        keep = self.keep_mask(logits, target)
        return weighted_mean(torch.where(keep, losses, 0.0), torch.where(keep, denom, 0.0))


@LOSSES.register("topk", options=TopKOptions)
class TopKCrossEntropy(LabelLoss):
    """Bootstrapped cross-entropy (DeepLab's ``top_k_percent_pixels`` with ``hard_example_mining_step``).

    Only the ``k`` valid pixels with the largest (class-weighted) cross-entropy count, with
    ``k = round(fraction * valid pixels)`` (at least 1). The fraction starts at 1.0 and falls linearly to
    ``percent / 100`` over ``warmup_iters`` iterations, then stays there; with ``warmup_iters = 0`` it is
    ``percent / 100`` from the start. The trainer reports the iteration through :meth:`set_progress`; until
    then the module is at step 0. The mean is taken over the kept pixels (weighted like ``F.cross_entropy``);
    DeepLab divides by the number of non-zero kept losses, which is the same for unweighted, non-ignored
    pixels.

    """

    def __init__(
        self,
        ignore_index: int = 255,
        weight: torch.Tensor | None = None,
        label_smoothing: float = 0.0,
        percent: float = 20.0,
        warmup_iters: int = 0,
    ) -> None:
        super().__init__(ignore_index, weight)
        if not 0.0 < percent <= 100.0:
            raise ValueError(f"percent must be in (0, 100], got {percent}")
        self.label_smoothing = label_smoothing
        self.percent = percent
        self.warmup_iters = warmup_iters
        self.step = 0

    def set_progress(self, step: int, total: int) -> None:
        """Current iteration (0-based). ``total`` is part of the shared protocol and not needed here."""
        self.step = max(int(step), 0)

    def fraction(self) -> float:
        """Share of valid pixels kept at the current step."""
        final = self.percent / 100.0
        if self.warmup_iters <= 0:
            return final
        ramp = min(self.step / self.warmup_iters, 1.0)
        return 1.0 - ramp * (1.0 - final)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        losses, denom = pixel_cross_entropy(logits, target, self.ignore_index, self.weight, self.label_smoothing)
        valid = target != self.ignore_index
        flat_losses, flat_denom = losses.reshape(-1), denom.reshape(-1)
        # Ignored pixels get a key below every real loss (losses are >= 0), so they sort last.
        key = torch.where(valid.reshape(-1), flat_losses.detach(), -1.0)
        order = key.argsort(descending=True)
        k = (valid.sum() * self.fraction()).round().clamp_min(1)  # a tensor: no host synchronisation
        keep = torch.arange(order.numel(), device=order.device) < k
        return weighted_mean(torch.where(keep, flat_losses[order], 0.0), torch.where(keep, flat_denom[order], 0.0))
