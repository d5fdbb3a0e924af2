"""The loss of a whole model output: the main logits, the weighted auxiliary logits, and any extra
outputs a model returns in training (the output contract is in :mod:`segcli.models.base`).

A model whose training output carries more than logits (for example sampled point predictions) adds
its term here, in one place, so the training loop stays the same for every model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

# Both references weigh the point loss like the coarse one: detectron2's PointRendSemSegHead adds it unscaled,
# mmseg's pointrend_r50 gives the PointHead's CrossEntropyLoss loss_weight=1.0.
POINT_LOSS_WEIGHT = 1.0


def main_logits(out: Any) -> torch.Tensor:
    """The main logits of a model output (logits, or ``{"out", "aux", ...}`` in training)."""
    return out["out"] if isinstance(out, dict) else out


def output_loss(
    criterion: torch.nn.Module,
    out: Any,
    masks: torch.Tensor,
    aux_weights: Sequence[float],
    teacher: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(total loss, the main output's loss per term). ``out`` is logits, or ``{"out", "aux", ...}``; a
    ``"points"`` entry (``{"logits": (B, C, P), "coords": (B, P, 2)}``, PointRend) adds the point loss.
    ``teacher``: a teacher's logits, shaped as the main logits, for the distillation terms; only the main
    output is distilled."""
    extra = () if teacher is None else (teacher,)
    if not isinstance(out, dict):
        return criterion(out, masks, *extra), getattr(criterion, "last_terms", {})
    loss = criterion(out["out"], masks, *extra)
    terms = getattr(criterion, "last_terms", {})  # the main output's terms, not the last aux's
    for w, logits in zip(aux_weights, out.get("aux", [])):
        loss = loss + w * criterion(logits, masks)
    if "points" in out:
        loss = loss + POINT_LOSS_WEIGHT * point_loss(criterion, out["points"], masks)
    return loss, terms


def point_labels(masks: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """The label of the pixel each point falls in (nearest lookup): ``masks`` (B, H, W), ``coords`` (B, P, 2) as
    (x, y) in [0, 1] → (B, P). Ignored pixels give ``ignore_index`` as they are."""
    h, w = masks.shape[-2:]
    x = (coords[..., 0] * w).floor().long().clamp(0, w - 1)
    y = (coords[..., 1] * h).floor().long().clamp(0, h - 1)
    return masks.flatten(1).gather(1, y * w + x)


def point_loss(criterion: torch.nn.Module, points: dict[str, torch.Tensor], masks: torch.Tensor) -> torch.Tensor:
    """The criterion on per-point logits (B, C, P) against the labels at their coordinates, seen as a 1 x P map
    (so ignore_index, class weights and label smoothing apply as on whole maps; the references use plain CE)."""
    labels = point_labels(masks, points["coords"])
    return criterion(points["logits"].unsqueeze(2), labels.unsqueeze(1))
