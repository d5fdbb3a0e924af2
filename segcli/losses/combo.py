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
    a scalar.
    """

    def __init__(self, names: Sequence[str], terms: Sequence[nn.Module], weights: Sequence[float]) -> None:
        super().__init__()
        if not (len(names) == len(terms) == len(weights)):
            raise ValueError("names, terms and weights must have the same length")
        if not terms:
            raise ValueError("a combined loss needs at least one term")
        self.names = tuple(names)
        self.terms = nn.ModuleList(terms)
        self.weights = tuple(float(w) for w in weights)
        self.last_terms: dict[str, torch.Tensor] = {}

    def set_progress(self, step: int, total: int) -> None:
        """Tell scheduled terms the current iteration (0-based) and the total number of iterations."""
        for term in self.terms:
            fn = getattr(term, "set_progress", None)
            if callable(fn):
                fn(step, total)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        values = {name: term(logits, target) for name, term in zip(self.names, self.terms)}
        self.last_terms = {name: v.detach() for name, v in values.items()}
        total = values[self.names[0]] * self.weights[0]
        for name, weight in zip(self.names[1:], self.weights[1:]):
            total = total + values[name] * weight
        return total

    def extra_repr(self) -> str:
        return " + ".join(f"{w:g}*{n}" for n, w in zip(self.names, self.weights))
