"""The distillation terms kd and cwd (segcli/losses/distill.py): values worked out by hand on fixed logits, the
loss contract (ignored pixels, gradients, empty batches) with a teacher, and how a combined loss passes it."""

from __future__ import annotations

import math

import pytest
import torch
from loss_helpers import IGNORE, C, close, make_batch

from segcli.losses import LOSSES, build_loss, build_term

TEACHER_TERMS = ("kd", "cwd")


def test_kd_and_cwd_register_as_teacher_terms() -> None:
    assert all(LOSSES.info(t).teacher for t in TEACHER_TERMS)
    assert not LOSSES.info("ce").teacher


def test_kd_is_the_mean_pixel_kl_divergence_worked_out_by_hand() -> None:
    """Two classes, two pixels (the second ignored): student (0, 0) → p_s = (1/2, 1/2); teacher (ln 3, 0) →
    p_t = (3/4, 1/4); KL = 3/4 ln(3/2) + 1/4 ln(1/2)."""
    student = torch.tensor([[0.0, 9.0], [0.0, -4.0]]).view(1, 2, 1, 2)
    teacher = torch.tensor([[math.log(3), 5.0], [0.0, 1.0]]).view(1, 2, 1, 2)
    target = torch.tensor([[[0, IGNORE]]])
    kd = build_term("kd", 2, IGNORE)
    want = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    assert kd(student, target, teacher).item() == pytest.approx(want, abs=1e-6)
    # T = 2: both sides softened, the KL scaled by T^2
    kd2 = build_term("kd", 2, IGNORE, options={"temperature": 2.0})
    a = math.sqrt(3)  # exp(ln 3 / 2)
    pt = (a / (a + 1), 1 / (a + 1))
    want2 = 4 * (pt[0] * math.log(pt[0] / 0.5) + pt[1] * math.log(pt[1] / 0.5))
    assert kd2(student, target, teacher).item() == pytest.approx(want2, abs=1e-6)


def test_cwd_is_the_per_channel_spatial_kl_worked_out_by_hand() -> None:
    """One image, two channels over two locations: channel 0 teacher (ln 3, 0) vs student (0, 0); channel 1
    teacher (0, 0) vs student (0, ln 3); the sum of the two KLs over N * C = 2."""
    student = torch.tensor([[0.0, 0.0], [0.0, math.log(3)]]).view(1, 2, 1, 2)
    teacher = torch.tensor([[math.log(3), 0.0], [0.0, 0.0]]).view(1, 2, 1, 2)
    target = torch.zeros(1, 1, 2, dtype=torch.long)
    kl0 = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    kl1 = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    cwd = build_term("cwd", 2, IGNORE)
    assert cwd(student, target, teacher).item() == pytest.approx((kl0 + kl1) / 2, abs=1e-6)
    # an ignored third location, however large its logits, leaves the spatial distributions as they were
    student3 = torch.cat([student, torch.tensor([50.0, -50.0]).view(1, 2, 1, 1)], dim=3)
    teacher3 = torch.cat([teacher, torch.tensor([-20.0, 80.0]).view(1, 2, 1, 1)], dim=3)
    target3 = torch.tensor([[[0, 1, IGNORE]]])
    assert cwd(student3, target3, teacher3).item() == pytest.approx((kl0 + kl1) / 2, abs=1e-6)


@pytest.mark.parametrize("term", TEACHER_TERMS)
def test_a_student_equal_to_its_teacher_costs_nothing(term: str) -> None:
    logits, target = make_batch(3)
    loss = build_term(term, C, IGNORE, options={"temperature": 2.0})(logits, target, logits.clone())
    assert loss.item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("term", TEACHER_TERMS)
def test_ignored_pixels_change_nothing(term: str) -> None:
    logits, target = make_batch(10)
    teacher = torch.randn_like(logits) * 3
    ignored = target == IGNORE
    assert ignored.any()
    noise = ignored.unsqueeze(1)
    a_in = logits.clone().requires_grad_()
    b_in = torch.where(noise, torch.randn_like(logits) * 10, logits).requires_grad_()
    other_teacher = torch.where(noise, torch.randn_like(logits) * 10, teacher)
    a = build_term(term, C, IGNORE)(a_in, target, teacher)
    b = build_term(term, C, 200)(b_in, torch.where(ignored, 200, target), other_teacher)
    a.backward()
    b.backward()
    close(a, b)
    torch.testing.assert_close(a_in.grad, b_in.grad, atol=1e-6, rtol=0)
    assert not a_in.grad[noise.expand_as(logits)].any()


@pytest.mark.parametrize("term", TEACHER_TERMS)
@pytest.mark.parametrize("scale", [1.0, 60.0])
def test_gradients_are_finite(term: str, scale: float) -> None:
    logits, target = make_batch(11)
    x = (logits * scale).requires_grad_()
    loss = build_term(term, C, IGNORE)(x, target, torch.randn_like(logits) * scale)
    loss.backward()
    assert torch.isfinite(loss) and loss.item() > 0
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize("term", TEACHER_TERMS)
def test_all_ignored_batch_gives_zero_with_a_graph(term: str) -> None:
    logits, _ = make_batch(12)
    x = logits.requires_grad_()
    loss = build_term(term, C, IGNORE)(x, torch.full((2, 12, 12), IGNORE), torch.randn_like(logits))
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert torch.equal(x.grad, torch.zeros_like(x))


def test_reduced_precision_logits_are_compared_in_float32() -> None:
    logits, target = make_batch(5)
    teacher = torch.randn_like(logits)
    kd = build_term("kd", C, IGNORE)
    full = kd(logits, target, teacher)
    half = kd(logits.bfloat16(), target, teacher.bfloat16())
    assert half.dtype == torch.float32 and half.item() == pytest.approx(full.item(), rel=0.05)


def test_a_combined_loss_distils_only_when_given_the_teacher() -> None:
    """The trainer passes the teacher with the main output only: an auxiliary output's loss is CE alone."""
    logits, target = make_batch(6)
    teacher = torch.randn_like(logits)
    loss = build_loss(("ce", "kd", "cwd"), C, IGNORE, term_weights=(1.0, 0.5, 3.0), options={"kd": {"temperature": 2}})
    ce = build_term("ce", C, IGNORE)(logits, target)
    kd = build_term("kd", C, IGNORE, options={"temperature": 2.0})(logits, target, teacher)
    cwd = build_term("cwd", C, IGNORE)(logits, target, teacher)
    close(loss(logits, target, teacher), ce + 0.5 * kd + 3.0 * cwd)
    assert set(loss.last_terms) == {"ce", "kd", "cwd"}
    close(loss(logits, target), ce)
    assert set(loss.last_terms) == {"ce"}
    only = build_loss(("kd",), C, IGNORE)
    x = logits.clone().requires_grad_()
    empty = only(x, target)  # no teacher, no other term: zero, still differentiable
    assert empty.item() == 0.0 and empty.requires_grad
