"""The dense CRF: its filters and its mean field against an exact O(N²) implementation on tiny images, and that it
refines a noisy softmax along a colour edge.

Measured errors of the permutohedral (bilateral) filter against the exact normalised sum (12x12 image, 3 classes,
a red and a blue half with noise): mean |error| 0.006 and max 0.070 with DeepLab's 121 px / 5 colour levels, mean
0.006 and max 0.026 with 3 px / 10 levels (the lattice's approximation: pixels with few similar neighbours get the
coarsest averages). After 10 mean-field iterations the marginals differ from the exact CRF's by 0.0001 on average
(at most 0.005 and 0.009) and the labels agree on all 144 pixels in both settings; the asserted bounds below leave
room for other platforms' rounding.
"""

from __future__ import annotations

import math

import pytest
import torch
from model_helpers import one_thread

from segcli.config.schema import CrfConfig
from segcli.errors import UserError
from segcli.infer.crf import Permutohedral, bilateral_features, dense_crf, gaussian_blur, refine_scores

_one_thread = pytest.fixture(autouse=True, scope="module")(one_thread)

SETTINGS = [CrfConfig(), CrfConfig(bi_xy_std=3.0, bi_rgb_std=10.0, pos_xy_std=1.0)]


def _scene(h: int = 12, w: int = 12, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(image (3, H, W) 0-255 with a colour edge down the middle, the true labels (H, W), noisy probabilities (3, H,
    W) that favour the truth only weakly)."""
    g = torch.Generator().manual_seed(seed)
    image = torch.zeros(3, h, w)
    image[0, :, : w // 2], image[2, :, w // 2 :] = 180.0, 200.0
    image = (image + torch.randn(3, h, w, generator=g) * 6).clamp(0, 255)
    truth = torch.zeros(h, w, dtype=torch.long)
    truth[:, w // 2 :] = 1
    logits = torch.randn(3, h, w, generator=g) * 1.5
    logits[0] += (truth == 0) * 1.0
    logits[1] += (truth == 1) * 1.0
    return image, truth, logits.softmax(0)


def _exact_kernel(features: torch.Tensor) -> torch.Tensor:
    return torch.exp(-0.5 * torch.cdist(features.double(), features.double()) ** 2)


def _exact_mean_field(probs: torch.Tensor, image: torch.Tensor, p: CrfConfig) -> torch.Tensor:
    """The CRF's mean field with every pairwise sum done exactly over all N² pixel pairs."""
    k, h, w = probs.shape
    bilateral = _exact_kernel(bilateral_features(image, p.bi_xy_std, p.bi_rgb_std))
    gauss = _exact_kernel(bilateral_features(image[:0], p.pos_xy_std, 1.0))  # positions only
    log_p = probs.double().clamp(min=1e-5).log().reshape(k, -1).T
    q = log_p.softmax(1)
    for _ in range(p.iterations):
        energy = log_p + p.bi_w * (bilateral @ q) / bilateral.sum(1, keepdim=True)
        q = (energy + p.pos_w * (gauss @ q) / gauss.sum(1, keepdim=True)).softmax(1)
    return q.T.reshape(k, h, w).float()


@pytest.mark.parametrize("p", SETTINGS, ids=["deeplab", "local"])
def test_lattice_filter_is_close_to_the_exact_sum(p: CrfConfig) -> None:
    image, _, probs = _scene()
    features = bilateral_features(image, p.bi_xy_std, p.bi_rgb_std)
    q = probs.reshape(3, -1).T
    lattice = Permutohedral(features)
    approx = lattice.filter(q) / lattice.filter(torch.ones(q.shape[0], 1))
    kernel = _exact_kernel(features)
    exact = ((kernel @ q.double()) / kernel.sum(1, keepdim=True)).float()
    err = (approx - exact).abs()
    assert err.mean() < 0.01 and err.max() < 0.15  # measured: 0.006 / 0.070 and 0.006 / 0.026 (module docstring)
    assert torch.allclose(approx.sum(1), torch.ones(q.shape[0]), atol=1e-4)  # an average of distributions


def test_gaussian_blur_is_the_exact_sum() -> None:
    values = torch.rand(2, 12, 12, generator=torch.Generator().manual_seed(1))
    sigma = 2.0
    positions = bilateral_features(values[:0], sigma, 1.0)
    exact = (_exact_kernel(positions) @ values.reshape(2, -1).T.double()).T.reshape(2, 12, 12)
    assert torch.allclose(gaussian_blur(values, sigma).double(), exact, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("p", SETTINGS, ids=["deeplab", "local"])
def test_mean_field_agrees_with_the_exact_crf(p: CrfConfig) -> None:
    image, _, probs = _scene()
    q, exact = dense_crf(probs, image, p), _exact_mean_field(probs, image, p)
    assert torch.allclose(q.sum(0), torch.ones(12, 12), atol=1e-4)
    assert (q.argmax(0) == exact.argmax(0)).float().mean() >= 0.98  # measured: 144/144 in both settings
    assert (q - exact).abs().mean() < 0.005 and (q - exact).abs().max() < 0.1  # measured: 0.0001, <= 0.009


def test_refinement_follows_the_colour_edge() -> None:
    """A softmax right on 53% of the pixels becomes right on all of them (measured): the bilateral kernel pulls
    pixels of one colour to one label."""
    image, truth, probs = _scene(24, 24, seed=3)
    before = (probs.argmax(0) == truth).float().mean()
    after = (dense_crf(probs, image, CrfConfig()).argmax(0) == truth).float().mean()
    assert before < 0.7 and after > 0.97


def test_scores_come_back_in_the_kind_they_came() -> None:
    """Logits in: log-marginals out (their softmax is the marginals); probabilities in: the marginals."""
    image, _, probs = _scene()
    logits = probs.log() + 2.0  # any shift: the same softmax
    q = dense_crf(probs, image, CrfConfig())
    as_logits = refine_scores(logits, image, CrfConfig(), probabilities=False)
    assert torch.allclose(as_logits.softmax(0), q, atol=1e-5)
    assert torch.allclose(refine_scores(probs, image, CrfConfig(), probabilities=True), q, atol=1e-5)


def test_without_pairwise_terms_the_softmax_is_kept() -> None:
    image, _, probs = _scene()
    q = dense_crf(probs, image, CrfConfig(bi_w=0.0, pos_w=0.0, iterations=3))
    assert torch.allclose(q, probs.clamp(min=1e-5) / probs.clamp(min=1e-5).sum(0), atol=1e-6)


def test_scores_and_image_of_different_sizes_are_refused() -> None:
    image, _, probs = _scene()
    with pytest.raises(ValueError, match="differ in size"):
        dense_crf(probs, image[:, :6], CrfConfig())


def test_every_image_channel_is_a_colour_feature() -> None:
    """A grey image (one channel) and a four-channel one work alike: 2 + C features."""
    image, truth, probs = _scene(24, 24, seed=3)
    for channels in (image[:1], torch.cat([image, image[:1]])):
        q = dense_crf(probs, channels, CrfConfig())
        assert q.shape == probs.shape and math.isfinite(float(q.sum()))


def test_a_colour_range_too_fine_for_the_lattice_is_one_line_naming_the_keys() -> None:
    image = torch.rand(8, 16, 16, generator=torch.Generator().manual_seed(0)) * 255  # 8 channels: 10-d features
    with pytest.raises(UserError, match="eval.crf.bi_rgb_std"):
        dense_crf(torch.rand(2, 16, 16).softmax(0), image, CrfConfig(bi_rgb_std=0.01))
