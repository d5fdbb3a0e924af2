"""Padam: partially adaptive momentum estimation (Chen & Gu, "Closing the Generalization Gap of Adaptive
Gradient Methods in Training Deep Neural Networks", 2018; the authors' code is github.com/uclaml/Padam).

AMSGrad with the second-moment denominator raised to a power: with ``p = partial`` in [0, 1/2],

    g      = grad + weight_decay * w                 (L2 added to the gradient, as the authors' code does)
    m      = beta1 * m + (1 - beta1) * g
    v      = beta2 * v + (1 - beta2) * g^2
    v_max  = max(v_max, v)                           (AMSGrad)
    w      = w - lr * sqrt(1 - beta2^t) / (1 - beta1^t) * m / (sqrt(v_max) + eps)^(2p)

``p = 1/2`` is AMSGrad (Adam with ``amsgrad=True``), ``p = 0`` SGD with (bias-corrected, dampened)
momentum; the paper's choice for image classification is ``p = 1/8`` with an SGD-sized lr (0.1).
The bias correction and the place of ``eps`` follow the authors' code: ``sqrt(1 - beta2^t)`` multiplies
the step whatever ``p`` is, and ``eps`` is added to ``sqrt(v_max)`` before the power.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

__all__ = ["Padam"]


class Padam(torch.optim.Optimizer):
    """Partially adaptive momentum (module docstring); its state (``step``, ``exp_avg``, ``exp_avg_sq``,
    ``max_exp_avg_sq`` per parameter) round-trips through ``state_dict`` so a resumed run steps exactly as an
    uninterrupted one."""

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 0.1,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        partial: float = 0.125,
    ) -> None:
        if not 0.0 <= betas[0] < 1.0 or not 0.0 <= betas[1] < 1.0:
            raise ValueError(f"betas must be in [0, 1), got {tuple(betas)}")
        if not 0.0 <= partial <= 0.5:
            raise ValueError(f"partial must be in [0, 0.5], got {partial}")
        defaults = {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay, "partial": partial}
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """One update of every parameter that has a gradient (the formula in the module docstring)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("Padam does not take sparse gradients")
                grad = p.grad
                if group["weight_decay"] != 0:
                    grad = grad.add(p, alpha=group["weight_decay"])
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["max_exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                m, v, v_max = state["exp_avg"], state["exp_avg_sq"], state["max_exp_avg_sq"]
                m.mul_(beta1).add_(grad, alpha=1 - beta1)
                v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                torch.maximum(v_max, v, out=v_max)
                t = state["step"]
                step_size = group["lr"] * (1 - beta2**t) ** 0.5 / (1 - beta1**t)
                denom = v_max.sqrt().add_(group["eps"]).pow_(2 * group["partial"])
                p.addcdiv_(m, denom, value=-step_size)
        return loss
