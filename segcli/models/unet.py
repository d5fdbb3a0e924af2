"""U-Net decoder (Ronneberger et al.) on any timm encoder: upsample, concatenate the skip, two convs.

The decoder ends at the encoder's finest stride (2 on ResNets) and its logits are upsampled to the input.
``full_res=True`` (preset key ``model.full_res``) adds the original's first level instead: two 3x3 convs on the
image at stride 1 (16 channels, the paper's first level is 64 wide) as the skip of one more up block, so the
logits come out at the input's resolution, as in the paper and in smp's fifth block (which has no skip). For thin
structures (membranes, vessels) that are 1-5 px wide, where a stride-2 classifier blurs them.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from segcli.models.base import EncoderDecoder, ModelOutput
from segcli.models.blocks import DecoderOpts, resize
from segcli.models.heads import ClassifierHead
from segcli.models.registry import MODELS


class UpBlock(nn.Module):
    """Upsample to the skip's size (any input size works), concatenate, two 3x3 convs, optional SCSE."""

    def __init__(self, cin: int, skip: int, cout: int, opts: DecoderOpts) -> None:
        super().__init__()
        self.att_in = opts.attend(cin + skip)
        self.convs = nn.Sequential(opts.conv(cin + skip, cout), opts.conv(cout, cout))
        self.att_out = opts.attend(cout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = torch.cat([resize(x, skip.shape[-2:], mode="nearest"), skip], dim=1)
        return self.att_out(self.convs(self.att_in(x)))


@MODELS.register(
    "unet",
    paper="Ronneberger et al., U-Net: Convolutional Networks for Biomedical Image Segmentation, MICCAI 2015",
    reference=(
        "https://github.com/qubvel-org/segmentation_models.pytorch "
        "(segmentation_models_pytorch/decoders/unet; not weight-compatible: smp's has a fifth block)"
    ),
)
class UNet(EncoderDecoder):
    """Widths halve from ``2 * decoder_channels`` at the deepest block (min 16); logits at the finest stride, or
    at stride 1 with ``full_res`` (a full-resolution level on the image)."""

    extra_options = {"full_res": False}
    FULL_RES_WIDTH = 16

    def build_decoder(self, num_classes: int) -> None:
        encoder = self.encoder
        chs = encoder.channels
        # Stages with equal stride (dilated encoders) collapse: skip only at each new, finer stride.
        self.skips = [i for i in range(len(chs) - 1) if encoder.reductions[i] < encoder.reductions[i + 1]]
        cin = chs[-1]
        blocks = []
        for j, i in enumerate(reversed(self.skips)):
            cout = max(self.channels * 2 >> j, 16)
            blocks.append(UpBlock(cin, chs[i], cout, self.opts))
            cin = cout
        self.blocks = nn.ModuleList(blocks)
        finest = encoder.reductions[self.skips[0]] if self.skips else encoder.reductions[-1]
        self.stem = self.full = None
        if self.extra["full_res"] and finest > 1:
            width, cout = self.FULL_RES_WIDTH, max(cin // 2, self.FULL_RES_WIDTH)
            self.stem = nn.Sequential(self.opts.conv(self.in_channels, width), self.opts.conv(width, width))
            self.full = UpBlock(cin, width, cout, self.opts)
            cin = cout
        self.head = ClassifierHead(cin, num_classes, self.opts)

    def features(self, feats: list[torch.Tensor]) -> torch.Tensor:
        """The decoder's output at the encoder's finest stride."""
        x = feats[-1]
        for block, i in zip(self.blocks, reversed(self.skips)):
            x = block(x, feats[i])
        return x

    def decode(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return self.head(self.features(feats)), []

    def forward(self, x: torch.Tensor) -> ModelOutput:
        if self.full is None:
            return super().forward(x)
        feats = self.encoder(x)
        y = self.full(self.features(feats), self.stem(x))
        return self.finish(self.head(y), [], feats, x)
