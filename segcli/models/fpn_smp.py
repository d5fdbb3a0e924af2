"""FPN laid out as segmentation_models.pytorch's (``smp.FPN``), so its weights load (`seg convert-ckpt`).

segcli's own ``fpn`` merges the pyramid with one BN conv per level; smp's runs a tower of 3x3
conv-GroupNorm-ReLU units per level (3, 2, 1 and 1 of them from stride 32 down to 4), each followed by
a 2x bilinear upsampling with ``align_corners=True``, and upsamples the logits the same way. This
model is that layout: ``decoder_channels`` is smp's ``decoder_pyramid_channels``, half of it the
segmentation channels (smp's defaults: 256 and 128).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from segcli.models.base import EncoderDecoder, ModelOutput
from segcli.models.blocks import resize
from segcli.models.registry import MODELS


def _up(x: torch.Tensor, size: torch.Size) -> torch.Tensor:
    """Bilinear with ``align_corners=True`` to ``size`` (smp's 2x steps when sizes halve exactly)."""
    return F.interpolate(x, size=size, mode="bilinear", align_corners=True)


class ConvGNReLU(nn.Sequential):
    """3x3 conv (no bias) → GroupNorm (32 groups where the width allows) → ReLU."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            nn.GroupNorm(math.gcd(32, cout), cout),
            nn.ReLU(inplace=True),
        )


@MODELS.register(
    "fpn_smp",
    rejects=("attention", "separable"),
    paper="Kirillov et al., Panoptic Feature Pyramid Networks, CVPR 2019",
    reference=(
        "https://github.com/qubvel-org/segmentation_models.pytorch "
        "(segmentation_models_pytorch/decoders/fpn: its weights convert)"
    ),
)
class FPNSMP(EncoderDecoder):
    """Top-down pyramid (nearest upsampling) → per-level conv towers to stride 4 → sum → classifier."""

    def build_decoder(self, num_classes: int) -> None:
        encoder = self.encoder
        pyr = self.channels
        seg = max(pyr // 2, 8)
        self.use = [i for i, r in enumerate(encoder.reductions) if r >= 4][-4:]
        c2, c3, c4, c5 = (encoder.channels[i] for i in self.use)
        self.top = nn.Conv2d(c5, pyr, 1)
        self.laterals = nn.ModuleList(nn.Conv2d(c, pyr, 1) for c in (c4, c3, c2))
        self.towers = nn.ModuleList(
            nn.Sequential(*(ConvGNReLU(pyr if j == 0 else seg, seg) for j in range(max(n, 1)))) for n in (3, 2, 1, 0)
        )
        self.drop = self.opts.drop()
        self.classifier = nn.Conv2d(seg, num_classes, 1)

    def decode(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        skips = [feats[i] for i in reversed(self.use)]  # c5, c4, c3, c2
        p = self.top(skips[0])
        pyramid = [p]
        for lat, skip in zip(self.laterals, skips[1:]):
            p = resize(p, skip.shape[-2:], mode="nearest") + lat(skip)
            pyramid.append(p)
        sizes = [q.shape[-2:] for q in pyramid]  # stride 32, 16, 8, 4
        merged = 0
        for level, (tower, q) in enumerate(zip(self.towers, pyramid)):
            for j, unit in enumerate(tower):
                q = unit(q)
                if level + j < 3:  # every unit of a coarser level upsamples one step
                    q = _up(q, sizes[level + j + 1])
            merged = merged + q
        return self.classifier(self.drop(merged)), []

    def forward(self, x: torch.Tensor) -> ModelOutput:
        feats = self.encoder(x)
        logits, aux = self.decode(feats)
        return self.finish(_up(logits, x.shape[-2:]), aux, feats, x)
