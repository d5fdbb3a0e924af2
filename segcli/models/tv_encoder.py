"""torchvision backbones as encoders, tapped where torchvision's own segmentation models tap them.

timm's MobileNetV3 has the same layers as torchvision's, but its dilated variant dilates one block
later and its feature maps are stage ends, while torchvision's LR-ASPP reads the *first* stride-8
block. ``model.backbone = "torchvision:mobilenet_v3_large"`` builds torchvision's network so its
segmentation weights load unchanged (`seg convert-ckpt --from torchvision:lraspp_mobilenet_v3_large`).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from segcli.errors import PresetError
from segcli.models.encoder import TimmEncoder

PREFIX = "torchvision:"

# backbone -> (builder name in torchvision.models, indices of ``features`` whose outputs are returned)
# The taps follow torchvision's segmentation models: the stem, then the first block of every stride.
TV_BACKBONES: dict[str, tuple[str, tuple[int, ...]]] = {
    "mobilenet_v3_large": ("mobilenet_v3_large", (0, 2, 4, 7, 16)),
}


def is_torchvision_backbone(name: str) -> bool:
    """Whether ``name`` is one of the ``torchvision:`` backbones."""
    return name.startswith(PREFIX) and name[len(PREFIX) :] in TV_BACKBONES


class TorchvisionEncoder(TimmEncoder):
    """``features`` of a torchvision classifier, returning the maps at ``TV_BACKBONES``' taps.

    Output stride 16 uses torchvision's ``dilated=True`` (its segmentation models' setting), 32 none.
    Pretrained weights come only from a file (``model.pretrained_file``) or `seg convert-ckpt`. With ``in_chans``
    other than 3 the stem convolution takes that many channels (a file's RGB stem is adapted as timm does).
    """

    def __init__(
        self,
        name: str,
        pretrained: bool = False,
        pretrained_file: str = "",
        output_stride: int = 32,
        in_chans: int = 3,
    ) -> None:
        nn.Module.__init__(self)
        import torchvision.models as tvm

        short = name[len(PREFIX) :]
        if short not in TV_BACKBONES:
            raise PresetError(f"model.backbone = {name!r}: torchvision backbones available: {', '.join(TV_BACKBONES)}")
        if pretrained:
            raise PresetError(
                f"model.backbone = {name!r}: model.pretrained downloads only timm weights; convert torchvision's "
                "with seg convert-ckpt, or give model.pretrained_file"
            )
        if output_stride not in (16, 32):
            raise PresetError(f"model.output_stride = {output_stride}: backbone {name!r} supports 16 or 32")
        builder, taps = TV_BACKBONES[short]
        self.body = getattr(tvm, builder)(weights=None, dilated=output_stride == 16).features
        if in_chans != 3:
            stem = self.body[0][0]
            self.body[0][0] = nn.Conv2d(
                in_chans, stem.out_channels, stem.kernel_size, stem.stride, stem.padding, bias=stem.bias is not None
            )
        self.taps = taps
        self.name = name
        self.nhwc = False
        self.fixed_size = (224, 224)
        with torch.no_grad():
            probe = self._run(torch.zeros(1, in_chans, 64, 64))
        self.channels = [f.shape[1] for f in probe]
        self.reductions = [64 // f.shape[-1] for f in probe]
        self.load_report = ""
        if pretrained_file:
            report = self.load_pretrained_file(pretrained_file)
            self.load_report = f"loaded {report['loaded']} backbone tensors from {pretrained_file}"

    def _run(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        last = self.taps[-1]
        for i, layer in enumerate(self.body):
            x = layer(x)
            if i in self.taps:
                feats.append(x)
            if i == last:
                break
        return feats

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self._run(x)
