"""Loss helpers: which pixels count, one-hot targets that are empty at ignored pixels, class-weighted means."""

from __future__ import annotations

import pytest
import torch

from segcli.losses.common import one_hot_valid, valid_mask, weighted_class_mean


def test_valid_mask_marks_ignored_pixels_and_makes_them_class_zero() -> None:
    target = torch.tensor([[[2, 255], [1, 255]]])
    valid, safe = valid_mask(target, 255)
    assert valid.tolist() == [[[True, False], [True, False]]]
    assert safe.tolist() == [[[2, 0], [1, 0]]]
    assert target.tolist() == [[[2, 255], [1, 255]]]  # the input is not changed
    valid, safe = valid_mask(target, 1)  # another ignore label
    assert valid.tolist() == [[[True, True], [False, True]]] and safe.tolist() == [[[2, 255], [0, 255]]]


def test_one_hot_valid_is_all_false_at_ignored_pixels() -> None:
    target = torch.tensor([[[0, 2, 255]]])  # (N=1, H=1, W=3)
    hot = one_hot_valid(target, 3, 255)
    assert hot.shape == (1, 3, 1, 3) and hot.dtype == torch.bool
    assert hot[0, :, 0].tolist() == [[True, False, False], [False, False, False], [False, True, False]]
    assert hot.sum().item() == 2


def test_one_hot_valid_takes_any_number_of_spatial_dims() -> None:
    target = torch.tensor([[1, 0, 7]])  # (N=1, L=3), ignore label 7
    assert one_hot_valid(target, 2, 7).tolist() == [[[False, True, False], [True, False, False]]]


def test_weighted_class_mean_is_the_mean_or_the_weighted_mean() -> None:
    per_class = torch.tensor([1.0, 2.0, 6.0])
    assert weighted_class_mean(per_class, None).item() == pytest.approx(3.0)
    assert weighted_class_mean(per_class, torch.tensor([1.0, 1.0, 2.0])).item() == pytest.approx(15.0 / 4.0)
    assert weighted_class_mean(per_class, torch.tensor([0.0, 0.0, 5.0])).item() == pytest.approx(6.0)


def test_weighted_class_mean_with_all_weights_zero_is_zero_not_nan() -> None:
    out = weighted_class_mean(torch.tensor([1.0, 2.0]), torch.zeros(2))
    assert torch.isfinite(out) and out.item() == 0.0
