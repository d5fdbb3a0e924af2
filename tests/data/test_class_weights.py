"""`seg class-weights`: formulas by hand, the parallel pass against a plain loop, the TOML file."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from data_helpers import make_random_dataset
from PIL import Image

from segcli.core.factory import resolve_class_weights
from segcli.data.class_weights import WeightOptions, class_stats, class_weights, compute_weights, histogram
from segcli.errors import DataError, UserError

# A small histogram worked by hand: 4 classes, the last absent.
PIXELS = np.array([6, 3, 1, 0])
IMAGE_PIXELS = np.array([10, 6, 10, 0])  # total pixels of the images containing each class


@pytest.mark.parametrize(
    "method, raw",
    [
        ("inv", [1 / 0.6, 1 / 0.3, 10.0]),
        ("inv-sqrt", [1.2909944487, 1.8257418584, 3.1622776602]),
        ("inv-log", [2.0728561285, 3.6018936893, 8.8238912972]),  # 1 / ln(1.02 + f)
        ("effective-num", [0.2134202950, 0.3690036900, 1.0]),  # beta 0.9: 0.1 / (1 - 0.9^n)
        ("median-freq", [0.5 / 0.6, 0.5 / 0.5, 0.5 / 0.1]),  # freq = 6/10, 3/6, 1/10; median 0.5
    ],
)
def test_formulas_by_hand(method, raw):
    w = compute_weights(method, PIXELS, IMAGE_PIXELS, beta=0.9, normalize=False)
    np.testing.assert_allclose(w, [*raw, 0.0], rtol=1e-8)
    norm = compute_weights(method, PIXELS, IMAGE_PIXELS, beta=0.9)
    np.testing.assert_allclose(norm[:3], np.array(raw) / np.mean(raw), rtol=1e-8)
    assert norm[3] == 0.0 and norm[:3].mean() == pytest.approx(1.0)


def test_inverse_frequency_normalised_by_hand():
    # 1/f = 5/3, 10/3, 10 with mean 5 -> 1/3, 2/3, 2
    np.testing.assert_allclose(compute_weights("inv", PIXELS), [1 / 3, 2 / 3, 2, 0])


def test_effective_num_stays_finite_for_beta_near_one():
    w = compute_weights("effective-num", np.array([10**9, 10]), beta=0.99999, normalize=False)
    assert np.isfinite(w).all() and w[1] > w[0] > 0


def test_histogram_is_exact_for_uint8_and_uint16():
    rng = np.random.default_rng(1)
    m8 = rng.integers(0, 256, size=(37, 53)).astype(np.uint8)[:, ::2]  # non-contiguous view too
    np.testing.assert_array_equal(histogram(m8, 300), np.bincount(m8.ravel(), minlength=300))
    assert histogram(m8, 4).shape == (256,) and histogram(m8, 4).dtype == np.int64
    m16 = rng.integers(0, 1000, size=(20, 20)).astype(np.uint16)
    np.testing.assert_array_equal(histogram(m16, 10), np.bincount(m16.ravel(), minlength=10))


def test_bad_method_and_beta():
    with pytest.raises(UserError, match="choose one of"):
        compute_weights("nope", PIXELS)
    with pytest.raises(UserError, match="--beta"):
        compute_weights("effective-num", PIXELS, beta=1.0)


def reference_weights(root: Path, method: str, classes: int, beta: float = 0.999) -> np.ndarray:
    """Straightforward per-image loop (PIL read, np.unique) and the formulas written out again."""
    pixels = np.zeros(classes, np.float64)
    image_pixels = np.zeros(classes, np.float64)
    for p in sorted((root / "masks" / "train").glob("*.png")):
        m = np.asarray(Image.open(p))
        values, counts = np.unique(m, return_counts=True)
        for v, c in zip(values, counts):
            if v < classes:
                pixels[v] += c
                image_pixels[v] += m.size
    present = pixels > 0
    f = pixels[present] / pixels.sum()
    raw = {
        "inv": 1 / f,
        "inv-sqrt": f**-0.5,
        "inv-log": 1 / np.log(1.02 + f),
        "effective-num": (1 - beta) / (1 - beta ** pixels[present]),
        "median-freq": np.median(pixels[present] / image_pixels[present]) / (pixels[present] / image_pixels[present]),
    }[method]
    w = np.zeros(classes)
    w[present] = raw / raw.mean()
    return w


@pytest.mark.parametrize("method", ["inv", "inv-sqrt", "inv-log", "effective-num", "median-freq"])
def test_pipeline_matches_plain_loop(tmp_path, method):
    root = make_random_dataset(tmp_path / "ds")
    res = class_weights(root, method, WeightOptions(workers=0), out=tmp_path / f"{method}.toml")
    np.testing.assert_allclose(res.weights, reference_weights(root, method, 4), rtol=1e-6)
    assert res.missing == ["c3"] and res.weights[3] == 0.0 and res.images == 9


def test_process_pool_gives_the_same_histograms(tmp_path):
    root = make_random_dataset(tmp_path / "ds", n=12)
    seen = []
    serial = class_stats(root, "train", workers=0)
    pooled = class_stats(root, "train", workers=2, progress=lambda n, total: seen.append((n, total)))
    np.testing.assert_array_equal(serial.pixels, pooled.pixels)
    np.testing.assert_array_equal(serial.image_pixels, pooled.image_pixels)
    assert serial.ignored == pooled.ignored > 0
    assert seen[0] == (0, 12) and sum(n for n, _ in seen) == 12


def test_written_file_loads_through_resolve_class_weights(tmp_path):
    root = make_random_dataset(tmp_path / "ds")
    res = class_weights(root, "median-freq", WeightOptions(workers=0))
    assert res.out == root / "class_weights_median-freq.toml"
    loaded = resolve_class_weights(str(res.out), 4)
    np.testing.assert_allclose(loaded.numpy(), res.weights, rtol=1e-6)
    rel = resolve_class_weights(res.out.name, 4, base=root)
    assert rel is not None and rel.shape == (4,)
    text = res.out.read_text()
    assert 'method = "median-freq"' in text and "pixel_counts" in text and "mean 1" in text


def test_never_overwrites_without_force(tmp_path):
    root = make_random_dataset(tmp_path / "ds")
    first = class_weights(root, "inv", WeightOptions(workers=0))
    before = first.out.read_text()
    with pytest.raises(UserError, match="already exists.*`force`"):
        class_weights(root, "inv", WeightOptions(workers=0, normalize=False))
    assert first.out.read_text() == before
    again = class_weights(root, "inv", WeightOptions(workers=0, normalize=False), force=True)
    assert again.out.read_text() != before and "normalized = false" in again.out.read_text()


def test_out_of_range_values_are_an_error(tmp_path):
    root = make_random_dataset(tmp_path / "ds")
    m = np.full((8, 8), 9, np.uint8)
    cv2.imwrite(str(root / "masks" / "train" / "000.png"), m)
    with pytest.raises(DataError, match=r"000\.png.*seg check"):
        class_stats(root, "train", workers=0)
