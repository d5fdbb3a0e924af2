"""U-Net decoder (Ronneberger et al.) on any timm encoder: upsample, concatenate the skip, two convs.

The decoder ends at the encoder's finest stride (2 on ResNets) and its logits are upsampled to the input.
``full_res=True`` (preset key ``model.full_res``) adds the original's first level instead
(:class:`~segcli.models.blocks.FullResLevel`: two 3x3 convs on the image at stride 1 as the skip of one more up
block), so the logits come out at the input's resolution, as in the paper and in smp's fifth block (which has no
skip). For thin structures (membranes, vessels) that are 1-5 px wide, where a stride-2 classifier blurs them.

The classifier starts as smp's (Xavier-uniform weights, zero bias; ``ClassifierHead(init="xavier")``): it sits on
the decoder's narrowest map (16-32 channels), where PyTorch's default start keeps the logits small for hundreds of
AdamW steps. 60 steps of the plain loop on smallfg (``bench/head_init.py``): cross-entropy 0.28 with the default
start, 0.08 with smp's, 0.03 for smp's U-Net; held-out foreground F1 0.00, 0.72 and 0.77. At 10 minutes on that
set, this U-Net trained as bench/budget.py's plain loop went from 0.857 to 0.903 F1 (docs/budget.md).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from segcli.models.base import EncoderDecoder, ModelOutput
from segcli.models.blocks import FullResLevel, UpBlock
from segcli.models.heads import ClassifierHead
from segcli.models.registry import MODELS


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
        self.full = None
        if self.extra["full_res"] and finest > 1:
            self.full = FullResLevel(cin, self.in_channels, self.opts)
            cin = self.full.out_channels
        self.head = ClassifierHead(cin, num_classes, self.opts, init="xavier")  # smp's start: see the docstring

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
        y = self.full(self.features(feats), x)
        return self.finish(self.head(y), [], feats, x)
