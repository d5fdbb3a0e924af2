"""Shared by the loss tests: a random batch with ignored pixels, class weights, a tolerance."""

from __future__ import annotations

import torch

C = 5
IGNORE = 255


def make_batch(seed: int = 0, ignore: bool = True, n: int = 2, size: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    """Random logits and targets; class C-1 never appears, ~25% of pixels ignored when ``ignore``."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, C, size, size, generator=g) * 2.0
    target = torch.randint(0, C - 1, (n, size, size), generator=g)
    if ignore:
        target[torch.rand(n, size, size, generator=g) < 0.25] = IGNORE
    return logits, target


def class_weights() -> torch.Tensor:
    return torch.tensor([0.5, 2.0, 1.0, 1.5, 0.75])


def close(a: torch.Tensor, b: torch.Tensor | float) -> None:
    torch.testing.assert_close(a, torch.as_tensor(b, dtype=a.dtype), atol=1e-5, rtol=0)
