"""Necks of the FPN family: a pyramid of encoder features in, the same number of maps at one width out.

Contract: ``neck(feats)`` takes the encoder features finest first (strides 4..32 on a ResNet; ``in_channels``
from the encoder) and returns a list of as many maps, each at the size of its input and ``channels`` wide. The
models of :mod:`segcli.models.fpn` merge them into logits. ``NECKS`` below is the one list of neck names
(``model.neck``); :func:`build_neck` builds one.

- ``fpn``: Lin et al., "Feature Pyramid Networks for Object Detection", CVPR 2017: the top-down path (1x1
  lateral convs, nearest upsampling, addition) that segcli's ``fpn`` has always had. The detector's 3x3
  output conv per level is left out here: the FPN decoder smooths every level itself.
- ``panet``: Liu et al., "Path Aggregation Network for Instance Segmentation", CVPR 2018, Sec. 3.1 (bottom-up
  path augmentation), checked against mmdetection's PAFPN (mmdet/models/necks/pafpn.py). After the top-down
  path, N_2 = P_2 and N_{i+1} = conv3x3(conv3x3_stride2(N_i) + P_{i+1}). Departures: every conv is
  conv-BN-ReLU (the paper: ReLU after each conv; mmdetection's default: conv with bias, no norm, no activation);
  the next step takes N_i after its 3x3 conv as the paper draws it (mmdetection's loop feeds the sum before
  that conv); the P_i are the top-down sums without the detector's 3x3 output convs (see ``fpn``).
- ``bifpn``: Tan et al., "EfficientDet: Scalable and Efficient Object Detection", CVPR 2020, following
  google/automl (efficientdet/keras/efficientdet_keras.py: FNode, OpAfterCombine, ResampleFeatureMap;
  fpn_configs.py: bifpn_config). One layer is a top-down path of fusion nodes (each level with the node above
  it) and a bottom-up path (each level's input, its top-down node and the node below it; the top level has no
  top-down node). Each node: fast normalised fusion (w = ReLU(w_raw), out = sum(w_i x_i) / (sum(w) + 1e-4), the
  raw weights start at 1) → swish → depthwise 3x3 → pointwise 1x1 (with bias) → BN. An input whose width is
  not ``channels`` gets a 1x1 conv (with bias) + BN of its own in each node that takes it (so only in the first
  layer), applied before nearest upsampling; downsampling is a 3x3 stride-2 max pool. ``repeats`` layers are
  stacked (EfficientDet-D0: 3 layers of 64 channels). Departures: the levels are the encoder's (strides
  4..32), without EfficientDet's extra P6/P7 made by pooling the last feature (the contract keeps the count);
  BatchNorm keeps PyTorch's defaults (automl: momentum 0.99 in TF terms, eps 1e-3) like every other segcli
  layer; the max pool pads symmetrically (PyTorch) rather than TF's "SAME".

Levels whose stride does not halve (a dilated encoder, ``model.output_stride`` 8 or 16) are neither
downsampled nor upsampled: ``reductions`` gives each input's stride. A downsampled map one row or column
larger than the level it joins (an encoder that floors odd sizes) is cropped to it.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from segcli.errors import PresetError
from segcli.models.blocks import ConvBNReLU, resize


def _steps(n: int, reductions: Sequence[int] | None) -> list[int]:
    """The downsampling factor from each level to the next (2 per level when ``reductions`` is not given)."""
    if reductions is None:
        return [2] * (n - 1)
    if len(reductions) != n:
        raise ValueError(f"{len(reductions)} reductions for {n} features")
    return [2 if b >= 2 * a else 1 for a, b in zip(reductions, reductions[1:])]


def _crop_to(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``x`` cut to ``like``'s height and width (a no-op when they already agree)."""
    return x[..., : like.shape[-2], : like.shape[-1]]


class TopDown(nn.ModuleList):
    """FPN's top-down path: P_top = lateral(C_top); P_i = lateral(C_i) + nearest_upsample(P_{i+1}).

    The module is the list of 1x1 lateral convs (with bias), one per level: as the attribute ``laterals`` of
    the ``fpn`` model its parameter names are the ones FPN checkpoints have always had.
    """

    def __init__(self, in_channels: Sequence[int], channels: int, reductions: Sequence[int] | None = None) -> None:
        super().__init__(nn.Conv2d(c, channels, 1) for c in in_channels)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        p = self[-1](feats[-1])
        pyramid = [p]
        for i in range(len(feats) - 2, -1, -1):
            f = feats[i]
            p = self[i](f) + resize(p, f.shape[-2:], mode="nearest")
            pyramid.insert(0, p)
        return pyramid


class PathAggregation(nn.Module):
    """PANet: the top-down path, then the bottom-up path augmentation (N_2 = P_2, N_{i+1} from N_i and P_{i+1})."""

    def __init__(self, in_channels: Sequence[int], channels: int, reductions: Sequence[int] | None = None) -> None:
        super().__init__()
        steps = _steps(len(in_channels), reductions)
        self.top_down = TopDown(in_channels, channels)
        self.down = nn.ModuleList(ConvBNReLU(channels, channels, 3, stride=s) for s in steps)
        self.fuse = nn.ModuleList(ConvBNReLU(channels, channels, 3) for _ in steps)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        p = self.top_down(feats)
        n = [p[0]]
        for down, fuse, q in zip(self.down, self.fuse, p[1:]):
            n.append(fuse(_crop_to(down(n[-1]), q) + q))
        return n


class FastFusion(nn.Module):
    """EfficientDet's fast normalised fusion of ``n`` maps: sum(w_i x_i) / (sum(w) + eps), w = ReLU(raw)."""

    def __init__(self, n: int, eps: float = 1e-4) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.eps = eps

    def normalised(self) -> torch.Tensor:
        """The weights the inputs are multiplied by: non-negative, summing to 1 (less eps / (sum + eps))."""
        w = F.relu(self.weight)
        return w / (w.sum() + self.eps)

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        w = self.normalised()
        out = w[0] * xs[0]
        for i in range(1, len(xs)):
            out = out + w[i] * xs[i]
        return out


class FusionNode(nn.Module):
    """One BiFPN node: fast normalised fusion → swish → depthwise 3x3 → pointwise 1x1 (bias) → BN."""

    def __init__(self, n_inputs: int, channels: int) -> None:
        super().__init__()
        self.fuse = FastFusion(n_inputs)
        self.act = nn.SiLU()
        self.depthwise = nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False)
        self.pointwise = nn.Conv2d(channels, channels, 1)
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        return self.bn(self.pointwise(self.depthwise(self.act(self.fuse(xs)))))


def _project(cin: int, cout: int) -> nn.Module:
    """A node's input at another width: 1x1 conv (bias) + BN; identity when the width is already ``cout``."""
    return nn.Sequential(nn.Conv2d(cin, cout, 1), nn.BatchNorm2d(cout)) if cin != cout else nn.Identity()


class BiFPNLayer(nn.Module):
    """One BiFPN layer over L levels: L-1 top-down nodes, then L-1 bottom-up nodes (see the module docstring).

    ``td[i]`` is the top-down node of level i (0 = finest, its output is the layer's output at level 0) and
    ``bu[i - 1]`` the bottom-up node of level i >= 1. The ``*_in`` modules bring the layer's inputs to
    ``channels`` where they differ, one per node that takes them, as the reference does.
    """

    def __init__(self, in_channels: Sequence[int], channels: int, reductions: Sequence[int] | None = None) -> None:
        super().__init__()
        levels = len(in_channels)
        if levels < 2:
            raise ValueError("BiFPN needs at least two levels")
        self.steps = _steps(levels, reductions)
        self.td_in = nn.ModuleList(_project(c, channels) for c in in_channels[:-1])
        self.top_in = _project(in_channels[-1], channels)
        self.bu_in = nn.ModuleList(_project(c, channels) for c in in_channels[1:])
        self.td = nn.ModuleList(FusionNode(2, channels) for _ in range(levels - 1))
        self.bu = nn.ModuleList(FusionNode(3 if i < levels - 1 else 2, channels) for i in range(1, levels))
        self.pool = nn.MaxPool2d(3, 2, padding=1)

    def _down(self, x: torch.Tensor, like: torch.Tensor, step: int) -> torch.Tensor:
        return _crop_to(self.pool(x), like) if step > 1 else x

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        levels = len(feats)
        above = self.top_in(feats[-1])
        td: list[torch.Tensor] = [above] * levels
        for i in range(levels - 2, -1, -1):
            f = feats[i]
            above = self.td[i]([self.td_in[i](f), resize(above, f.shape[-2:], mode="nearest")])
            td[i] = above
        out = [td[0]]
        for i in range(1, levels):
            below = self._down(out[-1], feats[i], self.steps[i - 1])
            same_level = [self.bu_in[i - 1](feats[i]), td[i]] if i < levels - 1 else [self.bu_in[i - 1](feats[i])]
            out.append(self.bu[i - 1]([*same_level, below]))  # the top level has no top-down node
        return out


class BiFPN(nn.Sequential):
    """``repeats`` BiFPN layers; the first brings the encoder's widths to ``channels``."""

    def __init__(
        self, in_channels: Sequence[int], channels: int, reductions: Sequence[int] | None = None, repeats: int = 3
    ) -> None:
        if repeats < 1:
            raise PresetError(f"model.neck_repeats = {repeats}: BiFPN needs at least one layer")
        widths = list(in_channels)
        layers = []
        for _ in range(repeats):
            layers.append(BiFPNLayer(widths, channels, reductions))
            widths = [channels] * len(widths)
        super().__init__(*layers)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:  # type: ignore[override]
        for layer in self:
            feats = layer(feats)
        return feats


# model.neck → the neck's class. Only the ones that stack layers take ``repeats`` (model.neck_repeats).
NECKS: dict[str, type[nn.Module]] = {"fpn": TopDown, "panet": PathAggregation, "bifpn": BiFPN}
REPEATED = ("bifpn",)
DEFAULT_REPEATS = 3  # EfficientDet-D0's BiFPN depth, the smallest configuration of the paper


def neck_problems(neck: str, repeats: int) -> list[tuple[str, str]]:
    """What is wrong with ``model.neck`` / ``model.neck_repeats`` as (key, message) pairs (empty: nothing)."""
    if neck not in NECKS:
        close = difflib.get_close_matches(neck, list(NECKS), n=1, cutoff=0.6)
        hint = f' (did you mean "{close[0]}"?)' if close else ""
        return [("model.neck", f"model.neck = {neck!r}: unknown neck{hint}; valid: {', '.join(NECKS)}")]
    if repeats != DEFAULT_REPEATS and neck not in REPEATED:
        stacked = ", ".join(repr(n) for n in REPEATED)
        return [
            (
                "model.neck_repeats",
                f"model.neck_repeats = {repeats}: neck {neck!r} has one pass; only {stacked} stacks layers",
            )
        ]
    if repeats < 1:
        return [("model.neck_repeats", f"model.neck_repeats = {repeats}: must be at least 1")]
    return []


def build_neck(
    neck: str,
    in_channels: Sequence[int],
    channels: int,
    reductions: Sequence[int] | None = None,
    repeats: int = DEFAULT_REPEATS,
) -> nn.Module:
    """The neck ``neck`` (a name in :data:`NECKS`) over features of ``in_channels`` at strides ``reductions``."""
    problems = neck_problems(neck, repeats)
    if problems:
        raise PresetError(problems[0][1])
    if neck in REPEATED:
        return NECKS[neck](in_channels, channels, reductions, repeats=repeats)
    return NECKS[neck](in_channels, channels, reductions)
