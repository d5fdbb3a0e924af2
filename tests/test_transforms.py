"""Paired transforms: masks stay integer ids, padding uses ignore_index, image and mask move together."""

from __future__ import annotations

import numpy as np
import pytest

from segcli.config.schema import AugmentConfig
from segcli.data.transforms import ColorJitter, HorizontalFlip, RandomCrop, RandomScale, build_train_transform


def pair(h: int = 20, w: int = 30) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    mask = rng.integers(0, 4, (h, w)).astype(np.uint8)
    image = np.stack([mask * 60, mask * 10, np.full_like(mask, 7)], -1).astype(np.uint8)
    return image, mask


@pytest.mark.parametrize("scale", [0.37, 1.0, 2.6])
def test_scale_keeps_ids_and_alignment(scale: float) -> None:
    image, mask = pair()
    img2, m2 = RandomScale(scale, scale)(image, mask, np.random.default_rng(0))
    assert m2.dtype == np.uint8 and set(np.unique(m2)) <= set(np.unique(mask))
    assert img2.shape[:2] == m2.shape == (round(20 * scale), round(30 * scale))


def test_crop_pads_mask_with_ignore_and_image_with_zero() -> None:
    image, mask = pair(10, 12)
    img2, m2 = RandomCrop(16, 20, ignore_index=255)(image, mask, np.random.default_rng(0))
    assert img2.shape == (16, 20, 3) and m2.shape == (16, 20)
    assert (m2[10:, :] == 255).all() and (m2[:, 12:] == 255).all()
    assert (img2[10:, :] == 0).all()
    assert np.array_equal(m2[:10, :12], mask)


def test_crop_is_aligned() -> None:
    image, mask = pair(40, 40)
    img2, m2 = RandomCrop(16, 16, 255)(image, mask, np.random.default_rng(3))
    assert np.array_equal(img2[..., 0], (m2 * 60).astype(np.uint8))


def test_flip_moves_both() -> None:
    image, mask = pair()
    img2, m2 = HorizontalFlip(1.0)(image, mask, np.random.default_rng(0))
    assert np.array_equal(m2, mask[:, ::-1]) and np.array_equal(img2, image[:, ::-1])


def test_colour_jitter_leaves_mask_alone() -> None:
    image, mask = pair()
    img2, m2 = ColorJitter(0.5, 0.5, 0.5, 0.1)(image, mask, np.random.default_rng(0))
    assert m2 is mask and img2.dtype == np.uint8 and img2.shape == image.shape


def test_full_pipeline_is_a_function_of_the_seed() -> None:
    t = build_train_transform(AugmentConfig(scale=(0.5, 2.0), crop_size=(24, 24), hue=0.05), ignore_index=255)
    image, mask = pair()
    a = t(image, mask, np.random.default_rng(42))
    b = t(image, mask, np.random.default_rng(42))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert a[1].shape == (24, 24) and set(np.unique(a[1])) <= set(np.unique(mask)) | {255}
