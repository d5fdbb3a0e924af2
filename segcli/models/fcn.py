"""FCN (Long et al.): two convolutions and a classifier on the deepest encoder feature."""

from __future__ import annotations

import torch
import torch.nn as nn

from segcli.models.base import EncoderDecoder
from segcli.models.heads import ClassifierHead
from segcli.models.registry import MODELS


@MODELS.register(
    "fcn",
    paper="Long et al., Fully Convolutional Networks for Semantic Segmentation, CVPR 2015",
    reference=(
        "https://github.com/pytorch/vision "
        "(torchvision/models/segmentation/fcn.py, fcn_resnet50/101: its weights convert; its head has one conv fewer)"
    ),
)
class FCN(EncoderDecoder):
    """Deepest feature → 3x3 conv x2 → classifier, bilinearly upsampled (dilate with output_stride 8)."""

    def build_decoder(self, num_classes: int) -> None:
        encoder = self.encoder
        c = self.channels
        self.convs = nn.Sequential(self.opts.conv(encoder.channels[-1], c), self.opts.conv(c, c))
        self.head = ClassifierHead(c, num_classes, self.opts)

    def decode(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return self.head(self.convs(feats[-1])), []
