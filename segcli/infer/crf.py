"""Dense CRF refinement of class scores: the fully connected CRF of Krähenbühl & Koltun (NIPS 2011, "Efficient
Inference in Fully Connected CRFs with Gaussian Edge Potentials") as DeepLab v1/v2 use it after the network.

The energy of a labelling is the unary ``-log p`` of the network's softmax plus, for every pair of pixels, a Potts
penalty (labels differ) weighted by two Gaussian kernels: the *bilateral* (appearance) kernel
``bi_w * exp(-|p_i - p_j|^2 / 2 bi_xy_std^2 - |I_i - I_j|^2 / 2 bi_rgb_std^2)`` and the *Gaussian* (smoothness)
kernel ``pos_w * exp(-|p_i - p_j|^2 / 2 pos_xy_std^2)``, positions in pixels and colours in the image's units (0-255
for 8-bit images). Mean-field inference updates ``Q_i(l) ∝ exp(log p_i(l) + Σ_m w_m m_m,i(l))`` ``iterations``
times, where ``m_i = Σ_j k(i, j) Q_j / Σ_j k(i, j)`` is the kernel-weighted average of the neighbours' marginals
(the per-pixel normalisation of the authors' released code, which DeepLab's CRF layer wraps; ``j = i`` included,
as their lattice filter does).

- The **Gaussian kernel** is exact: a separable blur truncated at 4 standard deviations (a relative weight below
  ``exp(-8) = 3e-4`` is dropped), normalised by the same blur of ones so the image's border is handled exactly.
- The **bilateral kernel** is filtered on the permutohedral lattice (Adams, Baek & Davis, Eurographics 2010), the
  approximation the authors' code uses, vectorised in torch here: each pixel's feature vector (position /
  ``bi_xy_std``, colour / ``bi_rgb_std``) is splatted onto the d + 1 vertices of its lattice simplex with
  barycentric weights, the lattice is blurred with [1 2 1]/2 along its d + 1 axes, and the result is sliced back.
  Its error against the exact O(N²) sum is measured in ``tests/infer/test_crf.py``.

Everything is torch, on the scores' device (CPU or CUDA; on another the CRF runs on the CPU); nothing is installed
for it.
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from segcli.errors import UserError

if TYPE_CHECKING:  # pragma: no cover
    from segcli.config.schema import CrfConfig

PROB_FLOOR = 1e-5  # probabilities are clipped here before the log (pydensecrf's unary_from_softmax clip)
_TRUNCATE = 4.0  # the Gaussian blur's radius in standard deviations
_MAX_CODE = 2**62  # the lattice's integer keys must fit int64


def gaussian_blur(values: torch.Tensor, sigma: float) -> torch.Tensor:
    """(V, H, W) values blurred by a Gaussian of ``sigma`` pixels (separable, zero outside the image, truncated at
    4 sigma): ``Σ_j exp(-|p_i - p_j|^2 / 2 sigma^2) v_j``."""
    radius = max(1, math.ceil(_TRUNCATE * sigma))
    t = torch.arange(-radius, radius + 1, device=values.device, dtype=values.dtype)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    c = values.shape[0]  # one depthwise convolution per direction (4x faster on a CPU than a batch of 1-channel ones)
    x = F.conv2d(values[None], k.view(1, 1, 1, -1).expand(c, 1, 1, -1), padding=(0, radius), groups=c)
    x = F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), padding=(radius, 0), groups=c)
    return x[0]


class Permutohedral:
    """The permutohedral lattice of N feature vectors (N, d), built once and then filtering any number of (N, V)
    values: ``filter(v)_i ≈ c Σ_j exp(-|f_i - f_j|^2 / 2) v_j`` (c a constant that normalisation cancels).

    Splat, blur and slice are sparse matrices (CSR, built directly from the lattice's indices): one sparse-dense
    product each, 2.5x faster on a CPU than gathering and scattering rows (CUDA has the same products).
    """

    def __init__(self, features: torch.Tensor) -> None:
        n, d = features.shape
        dev = features.device
        f = features.to(torch.float64)  # float64 keeps the rounding to lattice points stable far from the origin
        i = torch.arange(1, d + 1, device=dev, dtype=f.dtype)
        scale = math.sqrt(2.0 / 3.0) * (d + 1) / torch.sqrt(i * (i + 1))
        cf = f * scale  # (N, d)
        # Elevate onto the hyperplane x . 1 = 0 in d + 1 dimensions: e_0 = Σ cf, e_j = Σ_{k>j} cf_k - j cf_j.
        suffix = torch.flip(torch.cumsum(torch.flip(cf, [1]), 1), [1])  # suffix[:, j-1] = Σ_{k>=j} cf_k
        later = torch.cat([suffix[:, 1:], torch.zeros(n, 1, device=dev, dtype=f.dtype)], 1)
        steps = torch.arange(1, d + 1, device=dev, dtype=f.dtype)
        elevated = torch.cat([suffix[:, :1], later - steps * cf], 1)  # (N, d + 1)
        # The closest remainder-0 lattice point, then the simplex's ordering (rank) of the differences.
        v = elevated / (d + 1)
        up, down = torch.ceil(v) * (d + 1), torch.floor(v) * (d + 1)
        rem0 = torch.where(up - elevated < elevated - down, up, down)
        total = torch.round(rem0.sum(1) / (d + 1)).long()
        diff = elevated - rem0
        idx = torch.arange(d + 1, device=dev)
        greater = diff[:, None, :] > diff[:, :, None]  # [n, i, j]: diff_j > diff_i
        ties_before = (diff[:, None, :] >= diff[:, :, None]) & (idx[None, :] < idx[:, None])[None]
        after = (idx[None, :] > idx[:, None])[None]
        rank = ((greater & after) | ties_before).sum(2)  # (N, d + 1), a permutation of 0..d per pixel
        rem0 = rem0.long()
        s = total[:, None]
        pos = s > 0
        over = pos & (rank >= d + 1 - s)
        under = (s < 0) & (rank < -s)
        rem0 = rem0 - (d + 1) * over.long() + (d + 1) * under.long()
        rank = rank + torch.where(over, s - (d + 1), torch.where(under, d + 1 + s, s))
        # Barycentric weights of the d + 1 vertices.
        w = (elevated - rem0) / (d + 1)
        bary = torch.zeros(n, d + 2, device=dev, dtype=f.dtype)
        bary.scatter_add_(1, d - rank, w)
        bary.scatter_add_(1, d - rank + 1, -w)
        bary[:, 0] += 1.0 + bary[:, d + 1]
        # Vertex r of a pixel's simplex: rem0 + canonical[r, rank], its first d coordinates as one int64 key.
        r = torch.arange(d + 1, device=dev)
        canonical = torch.where(idx[None, :] <= d - r[:, None], r[:, None], r[:, None] - (d + 1))  # (d+1, d+1)
        pad = 2 * (d + 1)
        lo = rem0[:, :d].min(0).values - pad
        span = rem0[:, :d].max(0).values - lo + pad + 1
        if math.prod(int(x) for x in span) >= _MAX_CODE:
            raise UserError(
                "eval.crf.bi_rgb_std / eval.crf.bi_xy_std: the image's colour or size range is too fine for the "
                "CRF's lattice; raise them"
            )
        strides = torch.ones(d, dtype=torch.long, device=dev)
        for a in range(d - 2, -1, -1):
            strides[a] = strides[a + 1] * span[a + 1]
        base = ((rem0[:, :d] - lo) * strides).sum(1)  # (N,)
        codes = torch.stack([base + (canonical[k][rank[:, :d]] * strides).sum(1) for k in range(d + 1)], 1)
        keys, vertex = torch.unique(codes, return_inverse=True)  # (N, d + 1): each pixel's vertices in the keys
        self.size = m = int(keys.numel())
        weights = bary[:, : d + 1].to(features.dtype)
        with warnings.catch_warnings():  # torch calls its sparse CSR support beta; the products used here are not
            warnings.simplefilter("ignore", UserWarning)
            self.slice = _csr(torch.arange(0, n * (d + 1) + 1, d + 1, device=dev), vertex.reshape(-1), weights, (n, m))
            order = torch.argsort(vertex.reshape(-1), stable=True)
            crow = torch.cat([order.new_zeros(1), torch.bincount(vertex.reshape(-1), minlength=m).cumsum(0)])
            self.splat = _csr(crow, order // (d + 1), weights.reshape(-1)[order], (m, n))
            # Blur along lattice axis j: neighbours at all coordinates - 1 except coordinate j + d, and the reverse.
            self.blur = []
            for j in range(d + 1):
                step = torch.full((d,), -1, dtype=torch.long, device=dev)
                if j < d:
                    step[j] = d
                offset = int((step * strides).sum())
                index = torch.arange(m, device=dev)
                ahead = _find(keys, keys + offset)
                behind = torch.full_like(ahead, m)  # i is the vertex behind the one ahead of it: no second search
                behind[ahead[ahead < m]] = index[ahead < m]
                cols = torch.stack([index, ahead, behind], 1)
                present = cols < m
                crow = torch.cat([cols.new_zeros(1), present.sum(1).cumsum(0)])
                values = torch.tensor([1.0, 0.5, 0.5], device=dev, dtype=features.dtype).expand(m, 3)
                self.blur.append(_csr(crow, cols[present], values[present], (m, m)))

    def filter(self, values: torch.Tensor) -> torch.Tensor:
        """(N, V) values filtered by the lattice's Gaussian: splat, blur ([1 2 1] / 2) along every axis, slice."""
        lattice = self.splat @ values
        for blur in self.blur:
            lattice = blur @ lattice
        return self.slice @ lattice


def _find(keys: torch.Tensor, wanted: torch.Tensor) -> torch.Tensor:
    """Indices of ``wanted`` in the sorted ``keys``; a key not on the lattice → ``len(keys)`` (dropped)."""
    at = torch.searchsorted(keys, wanted).clamp_(max=keys.numel() - 1)
    return torch.where(keys[at] == wanted, at, torch.full_like(at, keys.numel()))


def _csr(crow: torch.Tensor, col: torch.Tensor, value: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return torch.sparse_csr_tensor(crow, col, value.reshape(-1), size, check_invariants=False)


def bilateral_features(image: torch.Tensor, xy_std: float, colour_std: float) -> torch.Tensor:
    """(H*W, 2 + C) features of a (C, H, W) image: (row, column) / ``xy_std``, channels / ``colour_std``."""
    c, h, w = image.shape
    ys, xs = torch.meshgrid(
        torch.arange(h, device=image.device, dtype=torch.float32),
        torch.arange(w, device=image.device, dtype=torch.float32),
        indexing="ij",
    )
    pos = torch.stack([ys, xs]).reshape(2, -1) / xy_std
    return torch.cat([pos, image.float().reshape(c, h * w) / colour_std]).T.contiguous()


def dense_crf(probs: torch.Tensor, image: torch.Tensor, params: CrfConfig) -> torch.Tensor:
    """Mean-field marginals Q (K, H, W) of the dense CRF on softmax probabilities ``probs`` (K, H, W) and the
    image (C, H, W) of the same size (colours in the units ``params.bi_rgb_std`` is in, 0-255 for 8-bit)."""
    return _mean_field(probs.float().clamp(min=PROB_FLOOR).log(), image, params)


def refine_scores(scores: torch.Tensor, image: torch.Tensor, params: CrfConfig, probabilities: bool) -> torch.Tensor:
    """Scores (K, H, W) of the prediction core refined by the dense CRF, in the kind they came: probabilities in,
    marginals out; logits in, log-marginals out (their softmax is the marginals, their argmax the CRF's labels)."""
    log_p = scores.float().clamp(min=PROB_FLOOR).log() if probabilities else scores.float().log_softmax(0)
    q = _mean_field(log_p.clamp(min=math.log(PROB_FLOOR)), image, params)
    return q if probabilities else q.clamp(min=1e-30).log()


def _mean_field(log_p: torch.Tensor, image: torch.Tensor, params: CrfConfig) -> torch.Tensor:
    """``params.iterations`` mean-field updates from the unary log-probabilities (K, H, W); returns Q (K, H, W)."""
    k, h, w = log_p.shape
    if tuple(image.shape[-2:]) != (h, w):
        raise ValueError(f"image {tuple(image.shape)} and scores {tuple(log_p.shape)} differ in size")
    if log_p.device.type not in ("cpu", "cuda"):  # sparse CSR products exist on CPU and CUDA only (not MPS)
        return _mean_field(log_p.cpu(), image.cpu(), params).to(log_p.device)
    q = log_p.softmax(0)
    gauss_norm = gaussian_blur(torch.ones(1, h, w, device=log_p.device), params.pos_xy_std) if params.pos_w else None
    lattice = None
    if params.bi_w:
        lattice = Permutohedral(bilateral_features(image.to(log_p.device), params.bi_xy_std, params.bi_rgb_std))
        bi_norm = lattice.filter(torch.ones(h * w, 1, device=log_p.device))
    for _ in range(params.iterations):
        energy = log_p.clone()
        if gauss_norm is not None:
            energy += params.pos_w * gaussian_blur(q, params.pos_xy_std) / gauss_norm
        if lattice is not None:
            m = lattice.filter(q.reshape(k, -1).T) / bi_norm
            energy += params.bi_w * m.T.reshape(k, h, w)
        q = energy.softmax(0)
    return q
