"""The loss the trainer sees: a weighted sum of registered terms."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn


class CombinedLoss(nn.Module):
    """``sum_i weight_i * term_i(logits, target)``.

    ``set_progress(step, total)`` is forwarded to every term that has it (scheduled terms such as ``topk``).
    After each call, ``last_terms`` holds the detached value of every term by name (for logging; reading a
    value with ``.item()`` synchronises with the device, so do it only when needed).

    Shape: logits (N, C, H, W) float, target (N, H, W) int64 with values in [0, C) or ignore_index; returns
    a scalar. The terms flagged in ``teacher`` (distillation) are given ``teacher`` logits of the same shape as a
    third argument, and are left out of the sum (and of ``last_terms``) when the call has none: the trainer
    passes them with the main output only, not with auxiliary outputs.
    """

    def __init__(
        self,
        names: Sequence[str],
        terms: Sequence[nn.Module],
        weights: Sequence[float],
        teacher: Sequence[bool] = (),
    ) -> None:
        super().__init__()
        teacher = tuple(teacher) or (False,) * len(names)
        if not (len(names) == len(terms) == len(weights) == len(teacher)):
            raise ValueError("names, terms, weights and teacher flags must have the same length")
        if not terms:
            raise ValueError("a combined loss needs at least one term")
        self.names = tuple(names)
        self.terms = nn.ModuleList(terms)
        self.weights = tuple(float(w) for w in weights)
        self.teacher = tuple(bool(t) for t in teacher)
        self.last_terms: dict[str, torch.Tensor] = {}

    def set_progress(self, step: int, total: int) -> None:
        """Tell scheduled terms the current iteration (0-based) and the total number of iterations."""
        for term in self.terms:
            fn = getattr(term, "set_progress", None)
            if callable(fn):
                fn(step, total)

    def forward(self, logits: torch.Tensor, target: torch.Tensor, teacher: torch.Tensor | None = None) -> torch.Tensor:
        values, total = {}, None
        for name, term, weight, distils in zip(self.names, self.terms, self.weights, self.teacher):
            if distils and teacher is None:
                continue
            values[name] = term(logits, target, teacher) if distils else term(logits, target)
            total = values[name] * weight if total is None else total + values[name] * weight
        self.last_terms = {name: v.detach() for name, v in values.items()}
        return total if total is not None else logits.sum() * 0.0  # only distillation terms, and no teacher

    def extra_repr(self) -> str:
        return " + ".join(f"{w:g}*{n}" for n, w in zip(self.names, self.weights))
