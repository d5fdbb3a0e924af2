"""Paired transforms: masks stay integer ids, padding uses ignore_index, image and mask move together."""

from __future__ import annotations

import cv2
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


def test_scale_crop_matches_scale_then_crop() -> None:
    """The fused op draws the same numbers and gives the same mask; the image within interpolation rounding."""
    from segcli.data.transforms import RandomScaleCrop

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (60, 90, 3), dtype=np.uint8)
    image = cv2.GaussianBlur(image, (5, 5), 2)  # smooth, so bilinear rounding differences stay small
    mask = (np.arange(60)[:, None] // 7 + np.arange(90)[None, :] // 11).astype(np.uint8) % 5
    for seed, (lo, hi) in enumerate([(0.5, 2.0)] * 6 + [(0.3, 0.4)] * 3):  # the last: smaller than the crop
        fused = RandomScaleCrop(lo, hi, 32, 40, 255)(image, mask, np.random.default_rng(seed))
        g = np.random.default_rng(seed)
        ref = RandomCrop(32, 40, 255)(*RandomScale(lo, hi)(image, mask, g), g)
        assert fused[0].shape == ref[0].shape == (32, 40, 3) and fused[1].shape == (32, 40)
        assert np.array_equal(fused[1], ref[1]), seed
        diff = np.abs(fused[0].astype(int) - ref[0].astype(int))  # RandomScale shrinks with area averaging
        assert np.median(diff) <= 2 and (diff[ref[1] == 255] == 0).all(), seed


def test_colour_jitter_is_the_float_reference_within_rounding() -> None:
    """One cv2.transform pass against brightness, contrast, saturation applied one after the other in float."""
    image = np.random.default_rng(1).integers(0, 256, (20, 30, 3), dtype=np.uint8)[:, ::-1]  # a flipped view
    for seed in range(5):
        out, _ = ColorJitter(0.3, 0.3, 0.3, 0.0)(image, image[..., 0], np.random.default_rng(seed))
        g = np.random.default_rng(seed)
        img = image.astype(np.float64) * g.uniform(0.7, 1.3)
        mean = img.mean()
        img = (img - mean) * g.uniform(0.7, 1.3) + mean
        grey = (img @ np.array([0.299, 0.587, 0.114]))[..., None]
        ref = np.clip(np.rint((img - grey) * g.uniform(0.7, 1.3) + grey), 0, 255)
        assert np.abs(out.astype(int) - ref.astype(int)).max() <= 1, seed
