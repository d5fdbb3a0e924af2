"""The loss of a whole model output: the main logits, the weighted auxiliary logits, and any extra
outputs a model returns in training (the output contract is in :mod:`segcli.models.base`).

A model whose training output carries more than logits (for example sampled point predictions) adds
its term here, in one place, so the training loop stays the same for every model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


def output_loss(
    criterion: torch.nn.Module, out: Any, masks: torch.Tensor, aux_weights: Sequence[float]
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(total loss, the main output's loss per term). ``out`` is logits, or ``{"out", "aux", ...}``."""
    if not isinstance(out, dict):
        return criterion(out, masks), getattr(criterion, "last_terms", {})
    loss = criterion(out["out"], masks)
    terms = getattr(criterion, "last_terms", {})  # the main output's terms, not the last aux's
    for w, logits in zip(aux_weights, out.get("aux", [])):
        loss = loss + w * criterion(logits, masks)
    return loss, terms
