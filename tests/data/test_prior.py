"""The temporal prior: a still image's ground truth spoilt into a previous frame's mask, and its input channel."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from segcli.data.prior import (
    NO_PRIOR,
    PriorPerturbation,
    WithPrior,
    add_prior_channel,
    encode_prior,
    perturb_prior,
)


def _scene() -> np.ndarray:
    """Class 0 with a square of class 1, a disc of class 2 and a void border (255) around the square."""
    mask = np.zeros((64, 64), np.uint8)
    mask[10:30, 10:30] = 1
    mask[9, 9:31] = 255
    yy, xx = np.mgrid[:64, :64]
    mask[(yy - 45) ** 2 + (xx - 45) ** 2 < 100] = 2
    return mask


def test_perturb_prior_is_a_function_of_the_generator() -> None:
    mask = _scene()
    a = perturb_prior(mask, np.random.default_rng(5), 255, PriorPerturbation(empty=0.0))
    b = perturb_prior(mask, np.random.default_rng(5), 255, PriorPerturbation(empty=0.0))
    assert a is not None and np.array_equal(a, b)
    assert set(np.unique(a).tolist()) <= {0, 1, 2}  # no ignore index: a prediction has none


def test_perturb_prior_moves_grows_and_drops_classes_but_stays_close() -> None:
    mask = _scene()
    truth = np.where(mask == 255, 0, mask)
    plain = PriorPerturbation(empty=0.0, drop=0.0, swap=0.0, shift=0.0, morph=0.0, blobs=0.0)
    same = perturb_prior(mask, np.random.default_rng(0), 255, plain)
    assert np.array_equal(same, truth)  # no perturbation: the mask, void as class 0
    how = replace(plain, shift=0.03, morph=0.02)
    priors = [perturb_prior(mask, np.random.default_rng(s), 255, how) for s in range(40)]
    changed = [np.mean(p != truth) for p in priors]
    assert max(changed) < 0.15 and np.mean([c > 0 for c in changed]) > 0.8  # close to the truth, rarely equal
    areas = [int((p == 1).sum()) for p in priors]
    assert min(areas) < 400 < max(areas)  # eroded and dilated (the square has 400 pixels)
    dropped = [perturb_prior(mask, np.random.default_rng(s), 255, replace(plain, drop=1.0)) for s in range(3)]
    assert all(not p.any() for p in dropped)  # every class missed: all class 0, not "no prior"
    swapped = perturb_prior(mask, np.random.default_rng(0), 255, replace(plain, swap=1.0), 9)
    assert np.array_equal(swapped > 0, truth > 0) and not np.array_equal(swapped, truth)  # same regions, classes
    assert swapped.max() < 9
    speckled = [perturb_prior(mask, np.random.default_rng(s), 255, replace(plain, blobs=3.0), 3) for s in range(5)]
    assert any((p != truth).any() for p in speckled) and all(p.max() < 3 for p in speckled)  # stray blobs
    empty = [perturb_prior(mask, np.random.default_rng(s), 255, PriorPerturbation(empty=1.0)) for s in range(3)]
    assert empty == [None, None, None]
    shares = [perturb_prior(mask, np.random.default_rng(s)) is None for s in range(400)]
    assert 0.12 < np.mean(shares) < 0.28  # the default empty share, 0.2


def test_encode_prior_codes_classes_apart_from_no_prior() -> None:
    ids = np.array([[0, 1], [2, 4]], np.uint8)
    code = encode_prior(ids, 5)
    assert code.dtype == np.uint8 and code.tolist() == [[51, 102], [153, 255]]
    assert (encode_prior(None, 5, (2, 3)) == NO_PRIOR).all() and encode_prior(None, 5, (2, 3)).shape == (2, 3)
    wide = encode_prior(np.arange(300, dtype=np.int32).reshape(1, -1), 300)
    assert wide.min() >= 1 and wide.max() == 255  # above 255 classes codes are shared, never "no prior"
    with pytest.raises(ValueError):
        encode_prior(None, 5)
    image = np.full((2, 2, 3), 9, np.uint8)
    stacked = add_prior_channel(image, code)
    assert stacked.shape == (2, 2, 4) and np.array_equal(stacked[..., 3], code) and (stacked[..., :3] == 9).all()


def test_with_prior_appends_the_spoilt_mask_of_the_augmented_sample() -> None:
    def flip(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        return image[:, ::-1], mask[:, ::-1]

    mask = _scene()
    image = np.zeros((64, 64, 3), np.uint8)
    exact = PriorPerturbation(empty=0.0, drop=0.0, swap=0.0, shift=0.0, morph=0.0, blobs=0.0)
    x, m = WithPrior(flip, 3, 255, exact)(image, mask, np.random.default_rng(0))
    assert x.shape == (64, 64, 4) and np.array_equal(m, mask[:, ::-1])
    assert np.array_equal(x[..., 3], encode_prior(np.where(m == 255, 0, m), 3))  # made after the augmentation
    x1, _ = WithPrior(flip, 3)(image, mask, np.random.default_rng(1))
    x2, _ = WithPrior(flip, 3)(image, mask, np.random.default_rng(1))
    assert np.array_equal(x1, x2)  # a function of the sample's generator, as every augmentation
