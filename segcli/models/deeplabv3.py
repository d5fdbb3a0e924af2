"""DeepLabV3 (Chen et al. 2017): ASPP on a dilated encoder (output stride 16 by default, or 8)."""

from __future__ import annotations

import torch

from segcli.models.base import EncoderDecoder
from segcli.models.blocks import ASPP, aspp_rates
from segcli.models.heads import ClassifierHead
from segcli.models.registry import MODELS


@MODELS.register(
    "deeplabv3",
    paper="Chen et al., Rethinking Atrous Convolution for Semantic Image Segmentation, arXiv 2017",
    reference=(
        "https://github.com/pytorch/vision "
        "(torchvision/models/segmentation/deeplabv3.py, deeplabv3_resnet50/101: its weights convert)"
    ),
)
class DeepLabV3(EncoderDecoder):
    """Deepest feature → ASPP (rates scaled to the stride) → 3x3 conv → classifier."""

    default_stride = 16

    def build_decoder(self, num_classes: int) -> None:
        encoder = self.encoder
        c = self.channels
        self.aspp = ASPP(encoder.channels[-1], c, aspp_rates(encoder.reductions[-1]), self.opts)
        self.conv = self.opts.conv(c, c)
        self.head = ClassifierHead(c, num_classes, self.opts)

    def decode(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return self.head(self.conv(self.aspp(feats[-1]))), []
