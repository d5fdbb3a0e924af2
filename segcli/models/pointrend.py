"""PointRend (Kirillov, Wu, He and Girshick, "PointRend: Image Segmentation as Rendering", CVPR 2020), semantic
segmentation on any timm encoder.

Reference followed: detectron2's ``projects/PointRend`` semantic-segmentation model (``PointRendSemSegHead`` with
``SemSegFPNHead`` as the coarse head and ``StandardPointHead``; Base-PointRend-Semantic-FPN.yaml and the Cityscapes
config), checked against mmsegmentation's ``decode_heads/point_head.py`` and ``_base_/models/pointrend_r50.py``
(the same layers).

* Coarse head: the semantic FPN branch. The laterals and top-down sum are :class:`segcli.models.fpn.FPN`'s ``fpn``
  neck (``model.neck`` is rejected); on top come the reference's 3x3 output convolutions (with bias, no norm)
  and its per-level heads: 3x3 conv-norm-ReLU units of ``decoder_channels / 2`` each followed by a 2x
  upsampling, as many as it takes to reach the finest level (one at stride 4 and 8, two at 16, three at 32),
  summed and classified at stride 4.
* Point head: fine-grained features of the finest FPN level (after its output conv: detectron2's ``p2``) and the
  coarse logits, both sampled at the points with bilinear ``grid_sample``, go through 3 fully connected layers
  (1x1 ``Conv1d``, ``decoder_channels`` wide, ReLU) with the coarse logits concatenated to the input of every
  layer and of the 1x1 predictor.
* Training: N points per image with importance sampling (k = 3: 3N random candidates, the 0.75 N whose sampled
  coarse logits have the smallest top-2 gap are kept, 0.25 N fresh random ones added). The output is
  ``{"out": coarse logits at input size, "aux": [encoder-stage aux heads], "points": {"logits": (B, C, N),
  "coords": (B, N, 2) as (x, y) in [0, 1]}}``; ``segcli.losses.outputs`` adds the point loss.
* Inference: adaptive subdivision. From the coarse logits, each step upsamples 2x (bilinearly), takes the N most
  uncertain cells, recomputes them with the point head and writes them back; the last step goes to the input
  size itself. The top-k selection and the scatter are part of the graph: the model exports to ONNX with a
  dynamic size.

Departures, with their reason:

* Point counts scale with the image area: N = H x W / 256 (at least 1) in training and at every subdivision
  step, which is both references' figures at their sizes (2048 points on 512x1024 training crops, 8192 at
  1024x2048 test images) and keeps the density the same on sliding-window tiles and rescaled TTA inputs.
  The builder options ``train_points`` / ``subdivision_points`` fix N instead (not preset keys; 0 = by area).
* Subdivision runs log2(finest FPN stride) steps (2 at stride 4, as the reference) and the last one resizes to
  the input size rather than doubling: the reference's doubling reaches the input only when it is divisible
  by 4, and here any size must give input-sized logits.
* ``grid_sample`` pads with the border value (the reference pads with zeros): feature and logit samples near
  the image edge do not fade towards zero, and sampling the coarse logits at cell centres is then exactly
  bilinear upsampling (``align_corners=False``).
* The coarse head normalises with BatchNorm (mmseg: SyncBN; detectron2: GroupNorm(32)); the parameter count is
  the same. The dropout before the coarse classifier is segcli's ``model.dropout`` (the references use none).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from segcli.models.base import ModelOutput
from segcli.models.blocks import resize
from segcli.models.fpn import FPN
from segcli.models.heads import ClassifierHead
from segcli.models.registry import MODELS

PIXELS_PER_POINT = 256  # 2048 points on 512x1024 crops (training), 8192 on 1024x2048 images (subdivision)
OVERSAMPLE_RATIO = 3  # k in the paper: candidates per kept point
IMPORTANCE_RATIO = 0.75  # beta in the paper: share of the points chosen by uncertainty


def point_sample(x: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Bilinear samples of ``x`` (B, C, H, W) at ``coords`` (B, P, 2) as (x, y) in [0, 1] → (B, C, P).

    Pixel centres sit at ((i + 0.5) / W, (j + 0.5) / H) (``align_corners=False``); outside them the border
    value continues. Sampled in float32 (in float16 a coordinate is off by up to half a pixel at 2048 wide).
    """
    grid = (coords.float() * 2.0 - 1.0).unsqueeze(2)
    out = F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out.squeeze(3).to(x.dtype)


def uncertainty(logits: torch.Tensor) -> torch.Tensor:
    """(B, C, ...) → (B, ...): minus the gap between the two largest logits (the largest = least certain).

    With a single class, minus the logit's magnitude.
    """
    if logits.shape[1] == 1:
        return -logits[:, 0].abs()
    top2 = logits.topk(2, dim=1).values
    return top2[:, 1] - top2[:, 0]


def most_uncertain(coarse: torch.Tensor, candidates: torch.Tensor, n: int) -> torch.Tensor:
    """The ``n`` of ``candidates`` (B, M, 2) where the coarse logits, sampled there, are the least certain."""
    idx = uncertainty(point_sample(coarse, candidates)).topk(n, dim=1).indices
    return candidates.gather(1, idx.unsqueeze(-1).expand(-1, -1, 2))


def importance_points(
    coarse: torch.Tensor, n: int, oversample: int = OVERSAMPLE_RATIO, importance: float = IMPORTANCE_RATIO
) -> torch.Tensor:
    """Training points (B, n, 2) in [0, 1]: of ``oversample * n`` uniform candidates, the ``importance * n`` most
    uncertain ones (uncertainty of the coarse logits sampled at each candidate, not sampled from an uncertainty
    map), then uniform points for the rest."""
    b = coarse.shape[0]
    n_unc = int(importance * n)
    pts = [most_uncertain(coarse, torch.rand(b, oversample * n, 2, device=coarse.device), n_unc)] if n_unc else []
    if n > n_unc:
        pts.append(torch.rand(b, n - n_unc, 2, device=coarse.device))
    return torch.cat(pts, dim=1)


class PointHead(nn.Module):
    """Shared MLP over points (1x1 ``Conv1d``): fine features + coarse logits → ``num_fc`` ReLU layers, each
    followed by the coarse logits again → per-point logits (detectron2 ``StandardPointHead``)."""

    def __init__(self, in_channels: int, num_classes: int, width: int, num_fc: int = 3) -> None:
        super().__init__()
        cin, fcs = in_channels + num_classes, []
        for _ in range(num_fc):
            fcs.append(nn.Conv1d(cin, width, 1))
            cin = width + num_classes
        self.fcs = nn.ModuleList(fcs)
        self.predictor = nn.Conv1d(cin, num_classes, 1)
        for fc in self.fcs:  # MSRA fill (fan out), zero bias
            nn.init.kaiming_normal_(fc.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(fc.bias)
        nn.init.normal_(self.predictor.weight, std=0.001)
        nn.init.zeros_(self.predictor.bias)

    def forward(self, fine: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        x = torch.cat([fine, coarse], dim=1)
        for fc in self.fcs:
            x = torch.cat([F.relu(fc(x)), coarse], dim=1)
        return self.predictor(x)


@MODELS.register(
    "pointrend",
    rejects=("neck", "neck_repeats"),
    paper="Kirillov, Wu, He, Girshick, PointRend: Image Segmentation as Rendering, CVPR 2020",
    reference="https://github.com/facebookresearch/detectron2 (projects/PointRend/point_rend/semantic_seg.py, "
    "point_head.py; SemSegFPNHead in modeling/meta_arch/semantic_seg.py)",
)
class PointRend(FPN):
    """Semantic FPN coarse head at stride 4, refined by a point head (importance-sampled points in training,
    adaptive subdivision in inference)."""

    fixed_neck = "fpn"  # the reference's top-down FPN; other necks are rejected (registered with rejects=...)
    # Besides FPN's: points per image in training and per subdivision step (0 = H x W / PIXELS_PER_POINT). Not
    # preset keys (no ModelConfig field): set in code only.
    # FPN's full_res is not one of them: the point head already refines at the input's resolution.
    extra_options = {
        **{k: v for k, v in FPN.extra_options.items() if k != "full_res"},
        "train_points": 0,
        "subdivision_points": 0,
    }

    def build_decoder(self, num_classes: int) -> None:
        super().build_decoder(num_classes)  # FPN's self.use and top-down neck (self.laterals); smooth, head replaced
        self.train_points = int(self.extra["train_points"])
        self.subdivision_points = int(self.extra["subdivision_points"])
        channels, half = self.channels, max(self.channels // 2, 8)
        red = [self.encoder.reductions[i] for i in self.use]
        self.outputs = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1) for _ in red)
        # Per level: how many conv units, and the level whose size each one's output is upsampled to.
        self.targets: list[list[int | None]] = []
        for r in red:
            steps, stride, targets = max(1, round(math.log2(r / red[0]))), r, []
            for _ in range(steps):
                finer = [j for j, q in enumerate(red) if q < stride]
                t = max(finer, key=lambda j: (red[j], -j)) if finer else None
                stride = red[t] if t is not None else stride
                targets.append(t)
            self.targets.append(targets)
        self.smooth = nn.ModuleList(
            nn.ModuleList(self.opts.conv(channels if k == 0 else half, half) for k in range(len(t)))
            for t in self.targets
        )
        self.head = ClassifierHead(half, num_classes, self.opts)
        self.point_head = PointHead(channels, num_classes, channels)
        self.steps = max(0, round(math.log2(red[0])))

    def pyramid(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        """FPN levels finest first: laterals, top-down sum, 3x3 output conv."""
        levels = self.laterals([feats[i] for i in self.use])
        return [conv(q) for conv, q in zip(self.outputs, levels)]

    def decode(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Coarse logits at the finest FPN stride (the fine-grained features are ``self.pyramid(feats)[0]``)."""
        return self._coarse(self.pyramid(feats)), []

    def _coarse(self, levels: list[torch.Tensor]) -> torch.Tensor:
        merged = None
        for q, units, targets in zip(levels, self.smooth, self.targets):
            for unit, t in zip(units, targets):
                q = unit(q)
                if t is not None:
                    q = resize(q, levels[t].shape[-2:])
            q = resize(q, levels[0].shape[-2:])
            merged = q if merged is None else merged + q
        return self.head(merged)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        feats = self.encoder(x)
        levels = self.pyramid(feats)
        fine, coarse = levels[0], self._coarse(levels)
        h, w = x.shape[-2:]
        if not self.training:
            return self.subdivide(coarse, fine, (h, w))
        n = self.train_points or max(1, h * w // PIXELS_PER_POINT)
        with torch.no_grad():
            coords = importance_points(coarse.detach(), n)
        point_logits = self.point_head(point_sample(fine, coords), point_sample(coarse, coords))
        aux = self.aux_heads(feats) if self.aux_heads is not None else []
        return {
            "out": resize(coarse, (h, w)),
            "aux": [resize(a, (h, w)) for a in aux],
            "points": {"logits": point_logits, "coords": coords},
        }

    def subdivide(self, coarse: torch.Tensor, fine: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Adaptive subdivision from ``coarse`` to ``size``: per step, upsample 2x (the last step: to ``size``),
        then recompute the N most uncertain cells with the point head."""
        n = self.subdivision_points or max(1, size[0] * size[1] // PIXELS_PER_POINT)
        out = coarse
        for step in range(self.steps):
            if step == self.steps - 1:
                out = F.interpolate(out, size=size, mode="bilinear", align_corners=False)
            else:
                out = F.interpolate(out, scale_factor=2.0, mode="bilinear", align_corners=False)
            b, c, gh, gw = out.shape
            flat = out.reshape(b, c, gh * gw)
            k = n if torch.jit.is_tracing() else min(n, gh * gw)
            idx = uncertainty(flat).topk(k, dim=1).indices  # (B, k) cells of the gh x gw grid
            cx = ((idx % gw).float() + 0.5) / gw
            cy = (torch.div(idx, gw, rounding_mode="floor").float() + 0.5) / gh
            coords = torch.stack([cx, cy], dim=-1)
            logits = self.point_head(point_sample(fine, coords), point_sample(coarse, coords))
            out = flat.scatter(2, idx.unsqueeze(1).expand(-1, c, -1), logits.to(flat.dtype)).view(b, c, gh, gw)
        return resize(out, size)
