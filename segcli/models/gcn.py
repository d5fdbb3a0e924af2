"""GCN (Peng et al., "Large Kernel Matters — Improve Semantic Segmentation by Global Convolutional Network",
CVPR 2017) on any timm encoder.

Layout of the paper's Figure 2, as in the reference implementation followed for the layer list
(https://github.com/yassouali/pytorch-segmentation, models/gcn.py, with ``use_deconv=True``):

* on each of the last four encoder stages at stride >= 4 (ResNet res-2 ... res-5) a Global Convolutional Network
  block: a k x 1 then 1 x k convolution plus a 1 x k then k x 1 convolution, summed, with no BN or ReLU (the
  paper's choice), straight to score maps: **its output channels are the number of classes, as in the paper**
  (so ``model.decoder_channels`` has nothing to set and is rejected), followed by a Boundary Refinement block
  (BR: ``x + conv3x3(relu(conv3x3(x)))``);
* from the coarsest score map down: a 2x deconvolution, the sum with the next finer score map, a BR; after the
  stride-4 map, two more (deconvolution, BR) pairs bring the scores to the input size (stride 4 → 2 → 1).

The kernel size k: the paper uses k = 15 on VOC, where its 512 x 512 inputs give a 16 x 16 top-most feature
map, and k = 25 on Cityscapes (800 x 800 crops, 25 x 25 maps): k about the size of the smallest map. Rule here:
``k = kernel_size`` (15) on every stage, except that a stage whose map at the paper's 512 x 512 input would be
smaller than that (stride 64 and beyond: 8 x 8) gets the largest odd k not above its map side (7 at stride 64,
3 at stride 128). With the usual strides 4-32 every stage has k = 15, as in the paper.

Departures, each with its reason:

* each deconvolution is a 3x3 / stride-2 transposed convolution (the reference's shape) initialised to linear
  upsampling (weights 0.5 1 0.5 in each direction on the class's own channel) rather than randomly: the score
  maps start out aligned, and the layer still learns; the paper gives no kernel size or initialisation;
* an upsampled map is cropped to the finer map's size (encoders round odd sizes up), and the last one to the
  input size; sizes that a power-of-two upsampling cannot reach (patch encoders) are resized bilinearly;
* no 1x1 convolution after the last BR (the reference adds one; the paper's score map is the last BR's output),
  and no unused BatchNorm layers in BR (the reference declares two per block and never calls them).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn as nn

from segcli.models.base import EncoderDecoder, ModelOutput
from segcli.models.blocks import resize
from segcli.models.registry import MODELS

PAPER_INPUT = 512  # the input side the paper's k = 15 was chosen for (top-most map 16 x 16)


def gcn_kernel(stride: int, kernel_size: int = 15, input_side: int = PAPER_INPUT) -> int:
    """The GCN kernel of a stage at ``stride``: ``kernel_size``, or the largest odd number not above the stage's
    map side at ``input_side`` when that map is smaller (see the module docstring)."""
    side = max(input_side // stride, 1)
    return min(kernel_size, side if side % 2 else side - 1)


class GlobalConv(nn.Module):
    """k x 1 → 1 x k plus 1 x k → k x 1 (both with bias, no norm or activation), summed."""

    def __init__(self, cin: int, cout: int, k: int) -> None:
        super().__init__()
        p = k // 2
        self.left = nn.Sequential(
            nn.Conv2d(cin, cout, (k, 1), padding=(p, 0)), nn.Conv2d(cout, cout, (1, k), padding=(0, p))
        )
        self.right = nn.Sequential(
            nn.Conv2d(cin, cout, (1, k), padding=(0, p)), nn.Conv2d(cout, cout, (k, 1), padding=(p, 0))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.left(x) + self.right(x)


class BoundaryRefine(nn.Module):
    """Residual boundary refinement: ``x + conv3x3(relu(conv3x3(x)))``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.residual = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.residual(x)


class Deconv(nn.ConvTranspose2d):
    """2x transposed convolution (3x3, stride 2): output 2i is input i, 2i+1 the mean of i and i+1 at init."""

    def __init__(self, channels: int) -> None:
        super().__init__(channels, channels, 3, stride=2, padding=1, output_padding=1, bias=False)
        with torch.no_grad():
            tap = torch.tensor([0.5, 1.0, 0.5], device=self.weight.device)
            eye = torch.eye(channels, device=self.weight.device)
            self.weight.copy_(eye[:, :, None, None] * (tap[:, None] * tap[None, :]))


def _ups(channels: int, ratio: int) -> nn.Module:
    """log2(ratio) deconvolutions (identity for ratio 1; a ratio that is no power of two is resized later)."""
    n = int(math.log2(ratio))
    return nn.Sequential(*(Deconv(channels) for _ in range(n))) if n else nn.Identity()


def _fit(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Crop ``x`` to ``size`` (upsampled maps are at least as large for encoders that round up), then resize
    whatever is still off (no-op when it fits)."""
    return resize(x[..., : size[0], : size[1]], tuple(size))


@MODELS.register(
    "gcn",
    rejects=("decoder_channels", "separable", "attention"),
    paper=(
        "Peng et al., Large Kernel Matters — Improve Semantic Segmentation by Global Convolutional Network, CVPR 2017"
    ),
    reference="https://github.com/yassouali/pytorch-segmentation (models/gcn.py)",
)
class GCN(EncoderDecoder):
    """GCN + BR score maps on four stages, deconvolution + sum + BR from coarse to fine, two final 2x steps."""

    extra_options = {"kernel_size": 15}  # k of the paper's GCN at stride 32 (scaled down on smaller maps)

    def build_decoder(self, num_classes: int) -> None:
        enc = self.encoder
        self.use = [i for i, r in enumerate(enc.reductions) if r >= 4][-4:]
        strides = [enc.reductions[i] for i in self.use]
        self.kernels = [gcn_kernel(r, self.extra["kernel_size"]) for r in strides]
        c = num_classes
        self.gcns = nn.ModuleList(GlobalConv(enc.channels[i], c, k) for i, k in zip(self.use, self.kernels))
        self.score_brs = nn.ModuleList(BoundaryRefine(c) for _ in self.use)
        # coarse → fine: upsample the coarser map to the finer one's stride, add, refine
        self.ups = nn.ModuleList(_ups(c, strides[j + 1] // strides[j]) for j in reversed(range(len(strides) - 1)))
        self.fuse_brs = nn.ModuleList(BoundaryRefine(c) for _ in strides[1:])
        # from the finest stride to the input: one (2x deconvolution, BR) per octave (stride 4: two)
        octaves = int(math.log2(strides[0]))
        self.final_ups = nn.ModuleList(Deconv(c) for _ in range(octaves))
        self.final_brs = nn.ModuleList(BoundaryRefine(c) for _ in range(octaves))

    def decode(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        scores = [br(gcn(feats[i])) for gcn, br, i in zip(self.gcns, self.score_brs, self.use)]
        s = scores[-1]
        for up, br, finer in zip(self.ups, self.fuse_brs, reversed(scores[:-1])):
            s = br(finer + _fit(up(s), finer.shape[-2:]))
        for up, br in zip(self.final_ups, self.final_brs):
            s = br(up(s))
        return s, []

    def forward(self, x: torch.Tensor) -> ModelOutput:
        feats = self.encoder(x)
        logits, aux = self.decode(feats)
        return self.finish(_fit(logits, x.shape[-2:]), aux, feats, x)
