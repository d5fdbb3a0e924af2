"""FPN decoder (Kirillov et al., Panoptic FPN semantic branch) on any timm encoder.

The pyramid comes from a neck (``model.neck``, :mod:`segcli.models.necks`): FPN's top-down path by default,
PANet's bottom-up path augmentation or EfficientDet's BiFPN on request. Every level is then smoothed by a 3x3
conv to half the width, the levels are summed at stride 4 and classified.

``full_res=True`` (preset key ``model.full_res``) takes the stride-4 sum up to the input's resolution before the
classifier, U-Net style: one up block per finer encoder stride (resnet's stride-2 stem) and the full-resolution
level on the image (:class:`~segcli.models.blocks.FullResLevel`), each halving the width (at least 16). This is
segcli's, not the paper's: for 1-3 px structures (poles, wires, membranes) that a stride-4 classifier blurs.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from segcli.errors import PresetError
from segcli.models.base import EncoderDecoder, ModelOutput
from segcli.models.blocks import FullResLevel, UpBlock, resize
from segcli.models.heads import ClassifierHead
from segcli.models.necks import DEFAULT_REPEATS, build_neck
from segcli.models.registry import MODELS


@MODELS.register(
    "fpn",
    paper="Kirillov et al., Panoptic Feature Pyramid Networks, CVPR 2019",
    reference="https://github.com/open-mmlab/mmsegmentation (mmseg/models/decode_heads/fpn_head.py)",
)
class FPN(EncoderDecoder):
    """Pyramid over the stride >= 4 features (a neck), merged at stride 4, upsampled to the input.

    ``neck`` names the neck and ``neck_repeats`` the number of BiFPN layers. Subclasses that are FPN with a
    given neck (``panet``, ``bifpn``) set ``fixed_neck`` and are registered with ``rejects=("neck", ...)``.
    """

    fixed_neck = ""
    extra_options = {"neck": "fpn", "neck_repeats": DEFAULT_REPEATS, "full_res": False}

    def build_decoder(self, num_classes: int) -> None:
        neck = self.extra["neck"]
        if self.fixed_neck and neck not in ("fpn", self.fixed_neck):
            raise PresetError(f"model.neck = {neck!r}: this model's neck is {self.fixed_neck!r}; remove model.neck")
        self.neck_kind, self.neck_repeats = self.fixed_neck or neck, self.extra["neck_repeats"]
        encoder = self.encoder
        channels = self.channels
        self.use = [i for i, r in enumerate(encoder.reductions) if r >= 4][-4:]
        in_chs = [encoder.channels[i] for i in self.use]
        reductions = [encoder.reductions[i] for i in self.use]
        neck = build_neck(self.neck_kind, in_chs, channels, reductions, self.neck_repeats)
        # The top-down neck is the list of lateral convs FPN has always had: under that name, FPN checkpoints load.
        self.neck_attr = "laterals" if self.neck_kind == "fpn" else "neck"
        self.add_module(self.neck_attr, neck)
        half = max(channels // 2, 8)
        self.smooth = nn.ModuleList(self.opts.conv(channels, half) for _ in in_chs)
        cin, self.fine, self.full = half, [], None
        if self.extra.get("full_res"):
            strides = sorted({r for r in encoder.reductions if 1 < r < min(reductions)}, reverse=True)
            self.fine = [max(i for i, r in enumerate(encoder.reductions) if r == s) for s in strides]
            blocks = []
            for i in self.fine:
                cout = max(cin // 2, FullResLevel.WIDTH)
                blocks.append(UpBlock(cin, encoder.channels[i], cout, self.opts))
                cin = cout
            self.fine_blocks = nn.ModuleList(blocks)
            self.full = FullResLevel(cin, self.in_channels, self.opts)
            cin = self.full.out_channels
        self.head = ClassifierHead(cin, num_classes, self.opts)

    def merged(self, feats: list[torch.Tensor]) -> torch.Tensor:
        """The pyramid's levels smoothed and summed at its finest stride (4)."""
        pyramid = getattr(self, self.neck_attr)([feats[i] for i in self.use])
        size = pyramid[0].shape[-2:]
        return sum(resize(s(q), size) for s, q in zip(self.smooth, pyramid))  # type: ignore[return-value]

    def decode(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return self.head(self.merged(feats)), []

    def forward(self, x: torch.Tensor) -> ModelOutput:
        if self.full is None:
            return super().forward(x)
        feats = self.encoder(x)
        y = self.merged(feats)
        for block, i in zip(self.fine_blocks, self.fine):
            y = block(y, feats[i])
        return self.finish(self.head(self.full(y, x)), [], feats, x)
