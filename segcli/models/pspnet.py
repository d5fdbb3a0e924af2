"""PSPNet (Zhao et al. 2017): pyramid pooling on a dilated encoder (output stride 8 by default)."""

from __future__ import annotations

import torch

from segcli.models.base import EncoderDecoder
from segcli.models.blocks import PPM
from segcli.models.heads import ClassifierHead
from segcli.models.registry import MODELS


@MODELS.register(
    "pspnet",
    paper="Zhao et al., Pyramid Scene Parsing Network, CVPR 2017",
    reference=(
        "https://github.com/open-mmlab/mmsegmentation "
        "(mmseg/models/decode_heads/psp_head.py; configs/pspnet, pspnet_r50-d8)"
    ),
)
class PSPNet(EncoderDecoder):
    """Deepest feature → PPM (bins 1, 2, 3, 6; each cin/4 wide) → 3x3 conv → classifier."""

    default_stride = 8

    def build_decoder(self, num_classes: int) -> None:
        encoder = self.encoder
        cin = encoder.channels[-1]
        self.ppm = PPM(cin, max(cin // 4, 16))
        self.conv = self.opts.conv(self.ppm.out_channels, self.channels)
        self.head = ClassifierHead(self.channels, num_classes, self.opts)

    def decode(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return self.head(self.conv(self.ppm(feats[-1]))), []
