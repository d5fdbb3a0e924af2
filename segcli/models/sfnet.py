"""SFNet and SFNet-Lite: feature pyramids aligned by semantic flow, on any timm encoder.

Papers: Li et al., "Semantic Flow for Fast and Accurate Scene Parsing", ECCV 2020 (``sfnet``) and Li et al.,
"SFNet: Faster and Accurate Semantic Segmentation via Semantic Flow", IJCV 2023 (``sfnet_lite``). Reference
implementation followed: https://github.com/lxtGH/SFSegNets, ``network/sfnet_resnet.py`` (``UperNetAlignHead``
for SFNet, ``UperNetAlignHeadV2`` with ``fa_type="spatial_atten"`` for SFNet-Lite, as built by
``DeepR18_SF_deeply`` and ``DeepR18_SFV2_deeply_dsn_FA_Atten``) with the modules of ``network/nn/operators.py``
(here in :mod:`segcli.models.flow`). ``decoder_channels`` is the reference's ``fpn_dim`` (128 for ResNet-18).

Departures, each with its reason:

- The encoder is any timm backbone. The reference's ResNet-18 has a deep stem (three 3x3 convs to 128 channels)
  and dilated second convs in its last two stages; timm's ``resnet18`` has the 7x7 stem (148,480 fewer
  parameters at the same layer widths) and no dilation. The decoders match the reference layer for layer.
- Pyramid pooling uses :class:`segcli.models.flow.AdaptiveAvgPool` (exactly ``nn.AdaptiveAvgPool2d``) so the
  ONNX export takes any input size.
- SFNet's deep-supervision heads (the reference's ``fpn_dsn``, one per top-down step on the aligned sum) are
  built-in auxiliary outputs (``builtin_aux``); their 3x3 conv has no bias (it feeds a BatchNorm).
- SFNet-Lite builds only the layers its forward pass uses: the reference head also creates a lateral for the
  stride-32 map and a deep-supervision head that its forward never calls (216,211 parameters at 19 classes).
- ``attention`` (SCSE) and ``separable`` act on the decoder's 3x3 convs and before the classifier, as in the
  other decoders; ``dropout`` is the pyramid pooling's dropout (and the aux heads'), 0.1 as in the reference.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from segcli.errors import PresetError
from segcli.models.base import EncoderDecoder, ModelOutput
from segcli.models.flow import FlowAlign, GatedDualFlowAlign, PyramidPoolingContext, align_up
from segcli.models.heads import FCNHead
from segcli.models.registry import MODELS

REFERENCE = "https://github.com/lxtGH/SFSegNets (network/sfnet_resnet.py, network/nn/operators.py)"


def lateral(cin: int, cout: int) -> nn.Sequential:
    """The reference's lateral branch: 1x1 conv (with bias, as there) → BN → ReLU."""
    return nn.Sequential(nn.Conv2d(cin, cout, 1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class _FlowDecoder(EncoderDecoder):
    """What both share: the pyramid levels used, a classifier, and the final ``align_corners=True`` upsampling."""

    min_levels = 2

    def pick_levels(self) -> list[int]:
        """Indices of the encoder maps used: the last four at stride >= 4 (ResNet: strides 4, 8, 16, 32)."""
        red = self.encoder.reductions
        use = [i for i, r in enumerate(red) if r >= 4][-4:]
        if len(use) < self.min_levels:
            raise PresetError(
                f"{type(self).__name__} needs at least {self.min_levels} feature maps at stride >= 4; "
                f"backbone {self.encoder.name!r} has strides {red}"
            )
        return use

    def classifier(self, num_classes: int) -> nn.Sequential:
        """Optional attention → 1x1 classifier (the reference's ``conv_last`` ends in a plain 1x1 conv)."""
        return nn.Sequential(self.opts.attend(self.channels), nn.Conv2d(self.channels, num_classes, 1))

    def forward(self, x: torch.Tensor) -> ModelOutput:
        feats = self.encoder(x)
        logits, aux = self.decode(feats)
        size = x.shape[-2:]
        return self.finish(align_up(logits, size), [align_up(a, size) for a in aux], feats, x)


@MODELS.register(
    "sfnet",
    builtin_aux=3,
    paper="Li et al., Semantic Flow for Fast and Accurate Scene Parsing, ECCV 2020",
    reference=REFERENCE,
)
class SFNet(_FlowDecoder):
    """PPM on the deepest map, then top-down: lateral (1x1-BN-ReLU) + FAM-aligned coarser map, each sum
    smoothed by a 3x3 conv; all levels (the PPM output included) upsampled to the finest, concatenated,
    3x3 conv-BN-ReLU, classifier. Training adds one deep-supervision head per top-down step (three on ResNet)."""

    def build_decoder(self, num_classes: int) -> None:
        c = self.channels
        self.use = self.pick_levels()
        chs = [self.encoder.channels[i] for i in self.use]
        if self.builtin_aux and len(chs) != 4:
            raise PresetError(
                f"sfnet's three deep-supervision heads need four feature maps at stride >= 4; backbone "
                f"{self.encoder.name!r} gives {len(chs)}: set model.builtin_aux = false"
            )
        self.ppm = PyramidPoolingContext(chs[-1], c, dropout=self.opts.dropout)
        self.laterals = nn.ModuleList(lateral(ch, c) for ch in chs[:-1])
        self.align = nn.ModuleList(FlowAlign(c, max(c // 2, 1)) for _ in chs[:-1])
        self.smooth = nn.ModuleList(self.opts.conv(c, c) for _ in chs[:-1])
        self.fuse = self.opts.conv(len(chs) * c, c)
        self.head = self.classifier(num_classes)
        if self.builtin_aux:
            self.dsn = nn.ModuleList(FCNHead(c, num_classes, mid=c, dropout=self.opts.dropout) for _ in chs[:-1])

    def decode(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        feats = [feats[i] for i in self.use]
        f = self.ppm(feats[-1])
        pyramid, aux = [f], []
        for i in reversed(range(len(feats) - 1)):
            f = self.align[i](self.laterals[i](feats[i]), f)
            pyramid.insert(0, self.smooth[i](f))
            if self.training and self.builtin_aux:
                aux.append(self.dsn[i](f))
        size = pyramid[0].shape[-2:]
        fused = torch.cat([align_up(p, size) for p in pyramid], dim=1)
        return self.head(self.fuse(fused)), aux


@MODELS.register(
    "sfnet_lite",
    paper="Li et al., SFNet: Faster and Accurate Semantic Segmentation via Semantic Flow, IJCV 2023",
    reference=REFERENCE,
)
class SFNetLite(_FlowDecoder):
    """One GD-FAM between the finest map (stride 4 on ResNet) and the PPM output; the stride-16 map (the
    second deepest) joins by upsampling and concatenation; 3x3 conv-BN-ReLU, classifier. No auxiliary heads:
    the reference builds one but its forward returns none."""

    min_levels = 3

    def build_decoder(self, num_classes: int) -> None:
        c = self.channels
        use = self.pick_levels()
        self.fine, self.mid, self.top = use[0], use[-2], use[-1]
        chs = self.encoder.channels
        self.ppm = PyramidPoolingContext(chs[self.top], c, dropout=self.opts.dropout)
        self.lateral_fine = lateral(chs[self.fine], c)
        self.lateral_mid = lateral(chs[self.mid], c)
        self.align = GatedDualFlowAlign(c, max(c // 2, 1))
        self.fuse = self.opts.conv(2 * c, c)
        self.head = self.classifier(num_classes)

    def decode(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        aligned = self.align(self.lateral_fine(feats[self.fine]), self.ppm(feats[self.top]))
        mid = align_up(self.lateral_mid(feats[self.mid]), aligned.shape[-2:])
        return self.head(self.fuse(torch.cat([aligned, mid], dim=1))), []
