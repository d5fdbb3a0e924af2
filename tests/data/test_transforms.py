"""Paired transforms: masks stay integer ids, padding uses ignore_index, image and mask move together."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from segcli.config.schema import AugmentConfig
from segcli.data.transforms import (
    ColorJitter,
    ElasticWarp,
    HorizontalFlip,
    QuarterTurns,
    RandomCrop,
    RandomScale,
    RandomScaleCrop,
    VerticalFlip,
    build_train_transform,
    crop_is_varied,
    scaled_size,
)


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
    cases = [((0.5, 2.0), (), 1.0)] * 6 + [((0.3, 0.4), (), 1.0)] * 3  # the last: smaller than the crop
    cases += [((0.5, 2.0), (120, 50), 1.0)] * 3 + [((0.5, 2.0), (), 0.75)] * 3 + [((0.5, 2.0), (120, 50), 0.75)] * 3
    for seed, ((lo, hi), resize_to, cat) in enumerate(cases):
        fused = RandomScaleCrop(lo, hi, 32, 40, 255, resize_to, cat)(image, mask, np.random.default_rng(seed))
        g = np.random.default_rng(seed)
        ref = RandomCrop(32, 40, 255, cat)(*RandomScale(lo, hi, resize_to)(image, mask, g), g)
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


@pytest.mark.parametrize(
    ("hw", "ratio", "resize_to", "expected"),
    [
        ((375, 500), 1.0, (2048, 512), (512, 683)),  # a VOC-sized image: the short side fills 512
        ((375, 500), 0.5, (2048, 512), (256, 341)),  # target (1024, 256)
        ((375, 500), 2.0, (2048, 512), (1024, 1365)),  # target (4096, 1024)
        ((500, 375), 1.0, (2048, 512), (683, 512)),  # portrait: same rule, long/short either way round
        ((1024, 2048), 1.0, (2048, 1024), (1024, 2048)),  # Cityscapes at ratio 1 keeps its size
        ((1024, 2048), 0.75, (2048, 1024), (768, 1536)),
        ((480, 2000), 1.0, (2048, 512), (492, 2048)),  # a panorama: the long side is the limit
        ((375, 500), 1.5, (), (562, 750)),  # no resize_to: relative to the image's own size
    ],
)
def test_resize_to_is_mmseg_random_resize_keep_ratio(hw, ratio, resize_to, expected) -> None:  # noqa: ANN001
    assert scaled_size(*hw, ratio, resize_to) == expected
    image, mask = pair(*hw)
    if resize_to:
        img2, m2 = RandomScale(ratio, ratio, resize_to)(image, mask, np.random.default_rng(0))
        assert img2.shape[:2] == m2.shape == expected


def test_resize_to_through_the_preset_pipeline() -> None:
    """VOC-sized images come out at the recipe's scale, not relative to their own size."""
    cfg = AugmentConfig(scale=(1.0, 1.0), resize_to=(2048, 512), crop_size=(), hflip=0.0, brightness=0.0)
    t = build_train_transform(cfg, 255)
    image, mask = pair(375, 500)
    assert t(image, mask, np.random.default_rng(0))[1].shape == (512, 683)
    cfg = AugmentConfig(scale=(0.5, 2.0), resize_to=(2048, 512), crop_size=(512, 512))
    _, m = build_train_transform(cfg, 255)(image, mask, np.random.default_rng(1))
    assert m.shape == (512, 512)


def test_crop_is_varied_excludes_ignore_index() -> None:
    def mask(*counts: tuple[int, int]) -> np.ndarray:
        return np.concatenate([np.full(n, v, np.uint8) for v, n in counts]).reshape(1, -1)

    assert not crop_is_varied(mask((0, 60), (1, 20), (255, 920)), 0.75, 255)  # 60/80 = 0.75 is not below 0.75
    assert crop_is_varied(mask((0, 59), (1, 21), (255, 920)), 0.75, 255)
    assert not crop_is_varied(mask((0, 10), (255, 990)), 0.75, 255)  # one class only
    assert not crop_is_varied(
        mask(
            (255, 100),
        ),
        0.75,
        255,
    )  # nothing labelled


def _half_plain_mask() -> tuple[np.ndarray, np.ndarray]:
    """Left half class 0 only; right half stripes of classes 1 and 2 (any crop touching it is varied)."""
    mask = np.zeros((100, 100), np.uint8)
    mask[:, 50:] = 1 + (np.arange(50) // 2 % 2)[None, :]
    image = np.stack([mask * 60] * 3, -1).astype(np.uint8)
    return image, mask


@pytest.mark.parametrize("scaled", [False, True])
def test_cat_max_ratio_redraws_crops_dominated_by_one_class(scaled: bool) -> None:
    image, mask = _half_plain_mask()

    def crop(cat: float, seed: int) -> np.ndarray:
        op = RandomScaleCrop(1.0, 1.0, 20, 20, 255, (), cat) if scaled else RandomCrop(20, 20, 255, cat)
        return op(image, mask, np.random.default_rng(seed))[1]

    plain = [crop(1.0, seed) for seed in range(40)]
    assert sum(not crop_is_varied(m, 0.75, 255) for m in plain) >= 5  # about 38% of crops are all class 0
    assert all(crop_is_varied(crop(0.75, seed), 0.75, 255) for seed in range(40))
    assert np.array_equal(crop(0.75, 7), crop(0.75, 7))  # a function of the seed


def test_cat_max_ratio_gives_up_after_ten_redraws_as_mmseg() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    mask = np.full((40, 40), 3, np.uint8)  # one class: every crop fails the test
    g = np.random.default_rng(5)
    img, m = RandomCrop(16, 16, 255, 0.75)(image, mask, g)
    ref = np.random.default_rng(5)
    draws = [(int(ref.integers(0, 25)), int(ref.integers(0, 25))) for _ in range(11)]  # the first draw + 10 redraws
    assert g.random() == ref.random()  # no more, no fewer random numbers used
    y, x = draws[-1]  # the last draw is kept unchecked
    assert m.shape == (16, 16) and np.array_equal(img, image[y : y + 16, x : x + 16])


@pytest.mark.parametrize("channels", [1, 2, 4, 6])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_every_op_keeps_the_channels_and_dtype_of_n_channel_images(channels: int, dtype: type) -> None:
    rng = np.random.default_rng(channels)
    image = (rng.random((40, 50, channels)) * 255).astype(dtype)
    mask = rng.integers(0, 3, (40, 50)).astype(np.uint8)
    ops = [
        RandomScaleCrop(0.5, 2.0, 32, 32, 255),
        RandomCrop(60, 70, 255),
        RandomScale(0.5, 1.5),
        HorizontalFlip(1.0),
        VerticalFlip(1.0),
        QuarterTurns(1.0),
        ElasticWarp(1.0, 10.0),
        ColorJitter(0.2, 0.2, 0.2, 0.05),
    ]
    for op in ops:
        out, m = op(image, mask, np.random.default_rng(0))
        assert out.ndim == 3 and out.shape[2] == channels and out.dtype == dtype, op
        assert out.shape[:2] == m.shape, op


def test_per_channels_runs_opencv_four_channels_at_a_time() -> None:
    from segcli.data.transforms import per_channels

    image = np.random.default_rng(0).random((9, 11, 6)).astype(np.float32)
    calls = []

    def blur(im: np.ndarray) -> np.ndarray:
        calls.append(im.shape[2] if im.ndim == 3 else 1)
        return cv2.GaussianBlur(im, (3, 3), 0)

    out = per_channels(blur, image)
    assert calls == [4, 2] and out.shape == image.shape
    for c in range(6):  # channel by channel the same as blurring each plane alone
        np.testing.assert_allclose(out[..., c], cv2.GaussianBlur(image[..., c], (3, 3), 0), rtol=1e-6)
    assert per_channels(blur, image[..., :1]).shape == (9, 11, 1)  # OpenCV's (H, W) gets its channel axis back


def test_colour_jitter_of_rgb_plus_an_extra_channel() -> None:
    """Brightness/contrast move every channel alike; saturation and hue touch only the RGB ones."""
    image = np.random.default_rng(1).random((8, 8, 4)).astype(np.float32) * 200
    bright, _ = ColorJitter(0.5, 0, 0, 0)(image, np.zeros((8, 8), np.uint8), np.random.default_rng(3))
    ratio = bright / image
    np.testing.assert_allclose(ratio, ratio.flat[0], rtol=1e-5)
    sat, _ = ColorJitter(0, 0, 0.5, 0.1)(image, np.zeros((8, 8), np.uint8), np.random.default_rng(3))
    np.testing.assert_array_equal(sat[..., 3], image[..., 3])
    assert not np.allclose(sat[..., :3], image[..., :3])


def test_vertical_flip_and_quarter_turns_move_image_and_mask_together() -> None:
    image, mask = pair(24, 24)
    img, m = VerticalFlip(1.0)(image, mask, np.random.default_rng(0))
    assert np.array_equal(m, mask[::-1]) and np.array_equal(img, image[::-1])
    turns = set()
    for seed in range(40):
        img, m = QuarterTurns(1.0)(image, mask, np.random.default_rng(seed))
        k = next(k for k in (1, 2, 3) if np.array_equal(m, np.rot90(mask, k)))
        assert np.array_equal(img, np.rot90(image, k, axes=(0, 1)))
        turns.add(k)
    assert turns == {1, 2, 3}
    assert QuarterTurns(0.0)(image, mask, np.random.default_rng(0))[1] is mask


def test_quarter_turns_keep_a_crop_that_is_not_square_its_size() -> None:
    image, mask = pair(20, 30)
    for seed in range(10):
        img, m = QuarterTurns(1.0)(image, mask, np.random.default_rng(seed))
        assert np.array_equal(m, mask[::-1, ::-1]) and img.shape == image.shape


def test_rot90_with_hflip_draws_the_eight_symmetries_alike() -> None:
    """augment.rot90 = 0.75 with hflip 0.5 (bench/budget.py's dihedral variant): each flip and turn about 1/8."""
    t = build_train_transform(AugmentConfig(scale=(), crop_size=(), rot90=0.75, hflip=0.5, brightness=0.0,
                                            contrast=0.0, saturation=0.0), 255)  # fmt: skip
    _, mask = pair(6, 6)
    seen: dict[bytes, int] = {}
    rng = np.random.default_rng(0)
    for _ in range(4000):
        m = t(mask[..., None].repeat(3, 2), mask, rng)[1]
        seen[np.ascontiguousarray(m).tobytes()] = seen.get(np.ascontiguousarray(m).tobytes(), 0) + 1
    assert len(seen) == 8 and all(abs(n / 4000 - 1 / 8) < 0.02 for n in seen.values())


def test_elastic_warp_follows_unet_a_smooth_field_of_the_given_std() -> None:
    """U-Net's recipe: each pixel moves by the bicubic interpolation of a 3x3 grid of N(0, std^2) displacements.
    An image whose values are the x coordinates reads the displacement back: at a grid node (the centre of the
    middle cell) its spread over draws is the std, and the field bends slowly (a smooth warp)."""
    size = 90  # cells of 30 px: the middle node is at pixel 44.5
    xs = np.tile(np.arange(size, dtype=np.float32), (size, 1))[..., None] + 100  # +100: reflection stays visible
    mask = np.zeros((size, size), np.uint16)
    centre, steps = [], []
    for seed in range(300):
        out, m = ElasticWarp(1.0, 10.0)(xs, mask, np.random.default_rng(seed))
        d = out[..., 0] - xs[..., 0]
        centre.append((d[44, 44] + d[45, 45]) / 2)
        steps.append(np.abs(np.diff(d[30:60, 30:60], n=2, axis=1)).max())
        assert m.dtype == np.uint16 and m.shape == mask.shape
    assert 8.5 < np.std(centre) < 11.5 and abs(np.mean(centre)) < 1.5
    assert np.median(steps) < 0.1  # a smooth warp (second differences near 0), not per-pixel noise


def test_elastic_warp_moves_image_and_mask_together() -> None:
    """Blocks of one id: away from their edges the warped image (bilinear) still shows the warped mask's id
    (nearest), and no id appears that was not there (reflected borders, no padding)."""
    mask = np.kron(np.arange(16, dtype=np.uint8).reshape(4, 4) % 5, np.ones((24, 24), np.uint8))
    image = np.stack([mask * 50, mask * 10, np.full_like(mask, 7)], -1)
    for seed in range(5):
        img, m = ElasticWarp(1.0, 10.0)(image, mask, np.random.default_rng(seed))
        assert not np.array_equal(m, mask) and set(np.unique(m)) <= set(range(5))
        inner = cv2.erode((cv2.Laplacian(m.astype(np.float32), cv2.CV_32F) == 0).astype(np.uint8), np.ones((5, 5)))
        assert inner.mean() > 0.5
        np.testing.assert_array_equal(img[..., 0][inner > 0], m[inner > 0] * 50)
    assert ElasticWarp(0.0, 10.0)(image, mask, np.random.default_rng(0))[1] is mask


def test_elastic_is_in_the_preset_pipeline_only_when_asked() -> None:
    names = [type(t).__name__ for t in build_train_transform(AugmentConfig(), 255).transforms]
    assert "ElasticWarp" not in names
    names = [type(t).__name__ for t in build_train_transform(AugmentConfig(elastic=0.5), 255).transforms]
    assert names.index("ElasticWarp") == names.index("RandomScaleCrop") + 1  # on the crop, before the flips
