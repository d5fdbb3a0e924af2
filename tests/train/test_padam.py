"""Padam (segcli/train/padam.py) against its formula written out step by step, AMSGrad as the p = 1/2 oracle,
and its state through a save and a resume."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from segcli.config.schema import OptimConfig
from segcli.train.optim import build_optimizer
from segcli.train.padam import Padam


def _grads(steps: int, shape: tuple[int, ...], seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(0, 1 + i % 3, size=shape) for i in range(steps)]


def _reference(w0: np.ndarray, grads: list[np.ndarray], lr: float, betas: tuple[float, float], eps: float,
               wd: float, p: float) -> np.ndarray:  # fmt: skip
    """The update of Chen & Gu's Algorithm 1 as the authors' code applies it, in float64, one step at a time."""
    b1, b2 = betas
    w = w0.copy()
    m, v, v_max = np.zeros_like(w), np.zeros_like(w), np.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        g = g + wd * w
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        v_max = np.maximum(v_max, v)
        step = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
        w = w - step * m / (np.sqrt(v_max) + eps) ** (2 * p)
    return w


def _run(opt_cls, w0: np.ndarray, grads: list[np.ndarray], **kw) -> np.ndarray:  # noqa: ANN001, ANN003
    w = torch.nn.Parameter(torch.tensor(w0, dtype=torch.float64))
    opt = opt_cls([w], **kw)
    for g in grads:
        w.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
    return w.detach().numpy()


@pytest.mark.parametrize(("p", "wd"), [(0.125, 0.0), (0.125, 5e-4), (0.25, 1e-2), (0.0, 0.0), (0.5, 0.0)])
def test_padam_matches_the_formula_step_by_step_over_ten_steps(p: float, wd: float) -> None:
    w0 = np.random.default_rng(1).normal(size=(4, 5))
    grads = _grads(10, w0.shape)
    got = _run(Padam, w0, grads, lr=0.1, betas=(0.9, 0.999), eps=1e-8, weight_decay=wd, partial=p)
    want = _reference(w0, grads, 0.1, (0.9, 0.999), 1e-8, wd, p)
    assert np.abs(got - want).max() < 1e-6
    assert np.abs(got - w0).max() > 1e-2  # it moved


def test_padam_in_float32_stays_within_1e_6_of_the_float64_formula() -> None:
    w0 = np.random.default_rng(2).normal(size=(3, 3))
    grads = _grads(10, w0.shape, seed=3)
    w = torch.nn.Parameter(torch.tensor(w0, dtype=torch.float32))
    opt = Padam([w], lr=1e-3, weight_decay=1e-4)
    for g in grads:
        w.grad = torch.tensor(g, dtype=torch.float32)
        opt.step()
    want = _reference(w0, grads, 1e-3, (0.9, 0.999), 1e-8, 1e-4, 0.125)
    assert np.abs(w.detach().double().numpy() - want).max() < 1e-6


def test_half_partial_is_amsgrad() -> None:
    """p = 1/2 is torch's Adam with amsgrad=True (eps sits in a slightly different place: below 1e-6 here)."""
    w0 = np.random.default_rng(4).normal(size=(6,))
    grads = _grads(10, w0.shape, seed=5)
    kw = {"lr": 0.01, "betas": (0.9, 0.99), "weight_decay": 1e-3}
    padam = _run(Padam, w0, grads, partial=0.5, **kw)
    amsgrad = _run(torch.optim.Adam, w0, grads, amsgrad=True, **kw)
    assert np.abs(padam - amsgrad).max() < 1e-6


def test_partial_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="partial"):
        Padam([torch.nn.Parameter(torch.zeros(1))], partial=0.7)


def test_state_round_trips_so_a_resumed_run_steps_as_the_uninterrupted_one() -> None:
    def net() -> torch.nn.Module:  # conv, norm (no decay group) and classifier: the groups build_optimizer makes
        torch.manual_seed(0)
        return torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(), torch.nn.Conv2d(8, 3, 1)
        )

    cfg = OptimConfig(name="padam", lr=0.05, partial=0.125, weight_decay=1e-4)
    x = torch.rand(2, 3, 32, 32)
    y = torch.randint(0, 3, (2, 32, 32))

    def step(m: torch.nn.Module, opt: torch.optim.Optimizer) -> None:
        opt.zero_grad()
        torch.nn.functional.cross_entropy(m(x), y).backward()
        opt.step()

    a = net()
    opt_a = build_optimizer(a, cfg)
    assert isinstance(opt_a, Padam) and {g["partial"] for g in opt_a.param_groups} == {0.125}
    assert {g["weight_decay"] for g in opt_a.param_groups} == {0.0, 1e-4}  # norm and bias groups without decay
    a.train()
    for _ in range(3):
        step(a, opt_a)
    buf = io.BytesIO()
    torch.save({"model": a.state_dict(), "optimizer": opt_a.state_dict()}, buf)
    for _ in range(2):
        step(a, opt_a)

    buf.seek(0)
    saved = torch.load(buf, weights_only=True)  # as state.pt is read
    b = net()
    b.load_state_dict(saved["model"])
    opt_b = build_optimizer(b, cfg)
    opt_b.load_state_dict(saved["optimizer"])
    b.train()
    for _ in range(2):
        step(b, opt_b)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), name
