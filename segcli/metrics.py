"""Confusion matrix and every metric derived from it.

Conventions (stated in every report, see :data:`CONVENTIONS`):

* Pooled: one confusion matrix over the whole split, not a mean of per-image scores.
* Pixels whose ground truth is ``ignore_index`` count nowhere (neither TP, FP nor FN).
* A class absent from both ground truth and prediction has IoU/Dice NaN and is left out of
  the means (mmseg and torchmetrics do the same); ``absent="zero"`` or ``"one"`` count it as
  0 or 1 instead. Precision is NaN for a class never predicted, recall (class accuracy) NaN for
  a class absent from the ground truth; means skip NaNs.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch

Absent = Literal["nan", "zero", "one"]

CONVENTIONS = (
    "pooled over the split through one confusion matrix; pixels labelled ignore_index are excluded; "
    "a class absent from both ground truth and prediction is {absent} "
)


def conventions(absent: Absent = "nan") -> str:
    how = {"nan": "NaN and left out of the means", "zero": "counted as IoU 0", "one": "counted as IoU 1"}[absent]
    return CONVENTIONS.format(absent=how).strip()


class ConfusionMatrix:
    """Accumulates a (num_classes x num_classes) matrix: rows = ground truth, columns = prediction."""

    def __init__(self, num_classes: int, ignore_index: int = 255, device: torch.device | str = "cpu") -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.mat = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch of predicted ids and ground-truth ids (same shape; any leading dims)."""
        if pred.shape != target.shape:
            raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape")
        # Ignored and out-of-range pixels are counted in one extra bin that is dropped: no boolean
        # compaction of the batch (the slow part), int32 ids (half the memory traffic of int64).
        n = self.num_classes
        dtype = torch.int32 if n * n < 2**31 else torch.int64
        target, pred = target.reshape(-1).to(dtype), pred.reshape(-1).to(dtype).clamp_(0, n - 1)
        valid = (target >= 0) & (target < n)
        if 0 <= self.ignore_index < n:
            valid &= target != self.ignore_index
        idx = torch.where(valid, target * n + pred, n * n)
        self.mat += torch.bincount(idx, minlength=n * n + 1)[: n * n].view(n, n).to(self.mat.device)

    def merge(self, other: ConfusionMatrix) -> None:
        self.mat += other.mat.to(self.mat.device)

    def compute(self, absent: Absent = "nan", class_names: list[str] | tuple[str, ...] | None = None) -> dict[str, Any]:
        return metrics_from_confusion(self.mat, absent, class_names)


def _nanmean(x: torch.Tensor) -> float:
    x = x[~torch.isnan(x)]
    return float(x.mean()) if x.numel() else float("nan")


def metrics_from_confusion(
    mat: torch.Tensor, absent: Absent = "nan", class_names: list[str] | tuple[str, ...] | None = None
) -> dict[str, Any]:
    """Pixel accuracy, mean accuracy, mIoU, fwIoU, mean Dice and per-class IoU/precision/recall/Dice."""
    m = mat.double().cpu()
    tp = m.diag()
    gt = m.sum(1)
    pr = m.sum(0)
    total = m.sum()
    union = gt + pr - tp
    nan = torch.tensor(float("nan"), dtype=torch.float64)
    iou = torch.where(union > 0, tp / union.clamp(min=1), nan)
    dice = torch.where(gt + pr > 0, 2 * tp / (gt + pr).clamp(min=1), nan)
    if absent != "nan":
        fill = 0.0 if absent == "zero" else 1.0
        iou = torch.where(union > 0, iou, torch.full_like(iou, fill))
        dice = torch.where(gt + pr > 0, dice, torch.full_like(dice, fill))
    precision = torch.where(pr > 0, tp / pr.clamp(min=1), nan)
    recall = torch.where(gt > 0, tp / gt.clamp(min=1), nan)
    freq = gt / total if total > 0 else torch.zeros_like(gt)
    fw = torch.nan_to_num(iou, nan=0.0)
    names = list(class_names) if class_names is not None else [str(i) for i in range(m.shape[0])]
    return {
        "pixel_accuracy": float(tp.sum() / total) if total > 0 else float("nan"),
        "mean_accuracy": _nanmean(recall),
        "mIoU": _nanmean(iou),
        "fwIoU": float((freq * fw).sum()) if total > 0 else float("nan"),
        "mean_dice": _nanmean(dice),
        "per_class": [
            {
                "class": names[c],
                "iou": float(iou[c]),
                "precision": float(precision[c]),
                "recall": float(recall[c]),
                "dice": float(dice[c]),
                "pixels": int(gt[c]),
            }
            for c in range(m.shape[0])
        ],
        "pixels": int(total),
        "conventions": conventions(absent),
    }


ECE_BINS = 15


class ReliabilityBins:
    """Accumulates the expected calibration error (ECE) of class scores over labelled pixels: the pixels'
    top-class confidence in :data:`ECE_BINS` equal-width bins, per predicted class, with the count, the summed
    confidence and the number correct of each bin. ECE = sum over bins of |correct - confidence| / pixels;
    per class, the same over the pixels predicted as that class (how far its confidence is from its precision).
    """

    def __init__(
        self, num_classes: int, ignore_index: int = 255, device: torch.device | str = "cpu", bins: int = ECE_BINS
    ) -> None:
        self.num_classes, self.ignore_index, self.bins = num_classes, ignore_index, bins
        self.stats = torch.zeros(3, num_classes * bins + 1, dtype=torch.float64, device=device)  # n, conf, correct

    def update(self, scores: torch.Tensor, target: torch.Tensor, probabilities: bool = False) -> None:
        """Add one image: ``scores`` (K, H, W) logits (or ``probabilities``), ``target`` (H, W) class ids."""
        top, pred = scores.float().max(0)
        conf = top if probabilities else 1.0 / (scores.float() - top).exp().sum(0)
        bin_ = (conf * self.bins).long().clamp_(0, self.bins - 1)
        target = target.to(pred.device)
        valid = (target != self.ignore_index) & (target >= 0) & (target < self.num_classes)
        dropped = self.num_classes * self.bins  # ignored pixels go to one extra bin: no boolean compaction
        index = torch.where(valid, pred * self.bins + bin_, dropped).flatten()
        size = self.stats.shape[1]
        self.stats[0] += torch.bincount(index, minlength=size).to(self.stats)
        self.stats[1] += torch.bincount(index, weights=conf.flatten().double(), minlength=size)
        self.stats[2] += torch.bincount(index, weights=(pred == target).flatten().double(), minlength=size)

    def summary(self, class_names: list[str] | tuple[str, ...] | None = None) -> dict[str, Any]:
        """ECE overall and per predicted class, and the reliability table (per bin: pixels, mean confidence,
        accuracy)."""
        s = self.stats[:, :-1].cpu().view(3, self.num_classes, self.bins)
        per_bin = s.sum(1)  # (3, bins)
        total = float(per_bin[0].sum())
        gap = (per_bin[2] - per_bin[1]).abs()
        names = list(class_names) if class_names is not None else [str(i) for i in range(self.num_classes)]
        per_class = {}
        for k, name in enumerate(names):
            n = float(s[0, k].sum())
            per_class[name] = float((s[2, k] - s[1, k]).abs().sum() / n) if n > 0 else float("nan")
        edges = [i / self.bins for i in range(self.bins + 1)]
        return {
            "ece": float(gap.sum() / total) if total > 0 else float("nan"),
            "bins": self.bins,
            "pixels": int(total),
            "per_class": per_class,
            "reliability": [
                {
                    "bin": [edges[b], edges[b + 1]],
                    "pixels": int(per_bin[0, b]),
                    "confidence": float(per_bin[1, b] / per_bin[0, b]) if per_bin[0, b] > 0 else None,
                    "accuracy": float(per_bin[2, b] / per_bin[0, b]) if per_bin[0, b] > 0 else None,
                }
                for b in range(self.bins)
            ],
        }


def label_edges(labels: torch.Tensor) -> torch.Tensor:
    """Boundary pixels (H, W) of a label map: a pixel whose right or lower 4-neighbour has another label, and that
    neighbour (both sides of every edge, so each region's own outline is marked inside it)."""
    edge = torch.zeros(labels.shape, dtype=torch.bool, device=labels.device)
    across = labels[:, 1:] != labels[:, :-1]
    edge[:, 1:] |= across
    edge[:, :-1] |= across
    down = labels[1:, :] != labels[:-1, :]
    edge[1:, :] |= down
    edge[:-1, :] |= down
    return edge


def disk_offsets(radius: int) -> list[tuple[int, int]]:
    """The (dy, dx) within ``radius`` pixels (Euclidean) of a pixel, itself included."""
    r = range(-radius, radius + 1)
    return [(dy, dx) for dy in r for dx in r if dy * dy + dx * dx <= radius * radius]


def _matched(edges: torch.Tensor, others: torch.Tensor, radius: int) -> torch.Tensor:
    """Which outline pixels of ``edges`` (class ids, -1 off the outline) have an outline pixel of the same class in
    ``others`` (class ids, -2 off the outline) within ``radius`` pixels: one comparison per offset of the disk,
    whatever the number of classes."""
    h, w = edges.shape
    padded = torch.full((h + 2 * radius, w + 2 * radius), -2, dtype=others.dtype, device=others.device)
    padded[radius : radius + h, radius : radius + w] = others
    found = torch.zeros((h, w), dtype=torch.bool, device=edges.device)
    for dy, dx in disk_offsets(radius):
        found |= padded[radius + dy : radius + dy + h, radius + dx : radius + dx + w] == edges
    return found


class BoundaryF:
    """Boundary F-score per class with a pixel tolerance: the BF score of Csurka et al. (BMVC 2013, "What is a good
    evaluation measure for semantic segmentation?") and the boundary measure F of Perazzi et al. (DAVIS, CVPR 2016).

    Per class, its outline in the prediction and in the ground truth (:func:`label_edges`, each pixel on the
    class's side); a predicted outline pixel is matched when a ground-truth outline pixel of the class lies within
    ``tolerance`` pixels (a disk), and the reverse. Precision = matched / predicted outline pixels, recall = matched /
    ground-truth outline pixels, F = 2PR / (P + R); the counts are pooled over the split (as the confusion matrix
    is), and the mean is over the classes with an outline in either. Pixels labelled ``ignore_index`` count nowhere.
    """

    def __init__(
        self, num_classes: int, ignore_index: int = 255, tolerance: int = 2, device: torch.device | str = "cpu"
    ) -> None:
        self.num_classes, self.ignore_index, self.tolerance = num_classes, ignore_index, int(tolerance)
        self.stats = torch.zeros(4, num_classes, dtype=torch.float64, device=device)  # matched P, P, matched G, G

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add one image: predicted ids and ground-truth ids (H, W)."""
        pred = pred.long()
        target = target.to(pred.device).long()
        valid = (target != self.ignore_index) & (target >= 0) & (target < self.num_classes)
        p_edge = label_edges(pred) & valid & (pred >= 0) & (pred < self.num_classes)
        g_edge = label_edges(target) & valid
        p_ids, g_ids = torch.where(p_edge, pred, -1), torch.where(g_edge, target, -1)
        p_hit = _matched(p_ids, torch.where(g_edge, target, -2), self.tolerance) & p_edge
        g_hit = _matched(g_ids, torch.where(p_edge, pred, -2), self.tolerance) & g_edge
        k = self.num_classes
        counts = [torch.bincount(ids[mask], minlength=k) for ids, mask in ((p_ids, p_hit), (p_ids, p_edge))]
        counts += [torch.bincount(ids[mask], minlength=k) for ids, mask in ((g_ids, g_hit), (g_ids, g_edge))]
        self.stats += torch.stack(counts).to(self.stats)

    def compute(self, class_names: list[str] | tuple[str, ...] | None = None) -> dict[str, Any]:
        """Mean boundary F over the classes with an outline, with per-class F, precision and recall."""
        matched_p, n_p, matched_g, n_g = self.stats.cpu()
        nan = torch.tensor(float("nan"), dtype=torch.float64)
        precision = torch.where(n_p > 0, matched_p / n_p.clamp(min=1), nan)
        recall = torch.where(n_g > 0, matched_g / n_g.clamp(min=1), nan)
        both = torch.nan_to_num(precision) + torch.nan_to_num(recall)
        f = torch.where(both > 0, 2 * torch.nan_to_num(precision) * torch.nan_to_num(recall) / both, both * 0)
        f = torch.where((n_p > 0) | (n_g > 0), f, nan)
        names = list(class_names) if class_names is not None else [str(i) for i in range(self.num_classes)]
        return {
            "boundary_f": _nanmean(f),
            "tolerance": self.tolerance,
            "per_class": [
                {"class": n, "f": float(f[c]), "precision": float(precision[c]), "recall": float(recall[c])}
                for c, n in enumerate(names)
            ],
        }


class Flicker:
    """Temporal flicker of a video's predicted masks: the share of pixels whose class changes between consecutive
    frames, pooled over every pair (changed pixels over compared pixels), so a lower value is a steadier video.

    Feed the frames' masks in order (numpy arrays or tensors, one size); a change of size starts a new comparison
    (that pair is not counted). The ground truth's own flicker is the rate the scene really changes at.
    """

    def __init__(self) -> None:
        self.previous: Any = None
        self.changed = 0
        self.compared = 0

    def update(self, mask: Any) -> None:
        """Add the next frame's mask (H, W) of class ids."""
        if self.previous is not None and tuple(self.previous.shape) == tuple(mask.shape):
            self.changed += int((self.previous != mask).sum())
            self.compared += math.prod(tuple(mask.shape))
        self.previous = mask.copy() if hasattr(mask, "copy") else mask.clone()

    @property
    def value(self) -> float:
        """Changed pixels over compared pixels (NaN before the second frame)."""
        return self.changed / self.compared if self.compared else float("nan")


def flicker(masks: Any) -> float:
    """:class:`Flicker` of a sequence of masks in frame order."""
    meter = Flicker()
    for mask in masks:
        meter.update(mask)
    return meter.value
