"""The combined loss: a weighted sum of terms that forwards the training progress."""

from __future__ import annotations

import pytest
import torch
from loss_helpers import IGNORE, C, class_weights, close, make_batch

from segcli.losses import CombinedLoss, build_loss


def test_combined_loss_is_the_weighted_sum_and_forwards_progress() -> None:
    logits, target = make_batch(15)
    w = class_weights()
    weights = (1.0, 0.5, 2.0, 0.25)
    terms = ("ce", "dice", "topk", "lovasz")
    options = {"topk": {"warmup_iters": 10}}
    combined = build_loss(terms, C, IGNORE, w, term_weights=weights, options=options)
    combined.set_progress(10, 100)
    total = combined(logits, target)
    expected = 0.0
    for term, weight in zip(terms, weights):
        single = build_loss((term,), C, IGNORE, w, options=options)
        single.set_progress(10, 100)
        expected = expected + weight * single(logits, target)
        close(combined.last_terms[term], single(logits, target))
    close(total, expected)
    assert combined.terms[2].fraction() == pytest.approx(0.2)  # topk got the progress


class _Scheduled(torch.nn.Module):
    """A term that returns a constant and records the progress it was told."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value
        self.progress: tuple[int, int] | None = None

    def set_progress(self, step: int, total: int) -> None:
        self.progress = (step, total)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return logits.sum() * 0 + self.value


class _Plain(_Scheduled):
    set_progress = None  # no schedule: CombinedLoss must skip it


def test_combined_loss_of_hand_made_terms_records_each_term() -> None:
    a, b = _Scheduled(2.0), _Plain(3.0)
    combined = CombinedLoss(("a", "b"), (a, b), (0.5, 2))
    combined.set_progress(4, 10)
    assert a.progress == (4, 10) and b.progress is None
    logits = torch.zeros(1, 2, 3, 3, requires_grad=True)
    total = combined(logits, torch.zeros(1, 3, 3, dtype=torch.long))
    assert total.item() == pytest.approx(0.5 * 2.0 + 2 * 3.0)
    assert {k: v.item() for k, v in combined.last_terms.items()} == {"a": 2.0, "b": 3.0}
    assert not combined.last_terms["a"].requires_grad and total.requires_grad
    assert combined.weights == (0.5, 2.0) and combined.extra_repr() == "0.5*a + 2*b"


def test_combined_loss_needs_one_name_and_weight_per_term() -> None:
    with pytest.raises(ValueError, match="same length"):
        CombinedLoss(("a",), (_Scheduled(1.0),), (1.0, 1.0))
    with pytest.raises(ValueError, match="same length"):
        CombinedLoss(("a", "b"), (_Scheduled(1.0),), (1.0, 1.0))


def test_combined_loss_needs_a_term() -> None:
    with pytest.raises(ValueError, match="at least one term"):
        CombinedLoss((), (), ())
