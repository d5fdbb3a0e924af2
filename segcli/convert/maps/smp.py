"""segmentation_models.pytorch (``smp``) → segcli.

- ``FPN`` → ``fpn_smp`` (segcli's FPN in smp's layout: GroupNorm conv towers, ``align_corners=True``
  upsampling); segcli's own ``fpn`` has one BN conv per level and cannot take these weights. Encoders:
  timm ones (``tu-<name>``: ``encoder.model.*``) and smp's own ResNets (``resnet18/34/50/101``, the
  torchvision layout timm's ResNets share). smp does not record the encoder's name in the state dict:
  give it with ``--backbone`` (the timm name, without ``tu-``).
- ``Unet`` and ``DeepLabV3Plus``: not convertible (see their entries).
"""

from __future__ import annotations

from typing import Any

from segcli.convert.maps.registry import KeyMap, State, register

ENCODER = (
    (r"^encoder\.model\.", "net.encoder.body."),  # tu-<timm name>
    (r"^encoder\.(?!model\.)", "net.encoder.body."),  # smp's ResNets: torchvision names, no fc
)


def _fpn_widths(sd: State) -> dict[str, Any]:
    return {"decoder_channels": int(sd["decoder.p5.weight"].shape[0])}


@register
def fpn() -> KeyMap:
    return KeyMap(
        name="smp:fpn",
        doc="smp FPN (tu-* timm encoders, smp ResNets) → fpn_smp; needs --backbone",
        model={"name": "fpn_smp"},
        rules=(
            *ENCODER,
            (r"^decoder\.p5\.", "net.top."),
            (r"^decoder\.p4\.skip_conv\.", "net.laterals.0."),
            (r"^decoder\.p3\.skip_conv\.", "net.laterals.1."),
            (r"^decoder\.p2\.skip_conv\.", "net.laterals.2."),
            (r"^decoder\.seg_blocks\.(\d)\.block\.(\d)\.block\.", r"net.towers.\1.\2."),
            (r"^segmentation_head\.0\.", "net.classifier."),
        ),
        signature=("decoder.p5.weight", "decoder.seg_blocks.3.block.0.block.0.weight", "segmentation_head.0.weight"),
        classifier="segmentation_head.0.weight",
        infer=_fpn_widths,
        needs_backbone=True,
    )


@register
def unet() -> KeyMap:
    return KeyMap(
        name="smp:unet",
        doc="smp Unet: not convertible",
        signature=("decoder.blocks.0.conv1.0.weight", "segmentation_head.0.weight"),
        unsupported=(
            "smp's Unet has a fifth decoder block at full resolution (no skip), fixed widths 256..16 and a 3x3 "
            "classifier; segcli's unet stops at stride 2 with a 1x1 classifier"
        ),
    )


@register
def deeplabv3plus() -> KeyMap:
    return KeyMap(
        name="smp:deeplabv3plus",
        doc="smp DeepLabV3Plus: not convertible",
        signature=("decoder.aspp.0.convs.0.0.weight", "decoder.block1.0.weight"),
        unsupported=(
            "smp's DeepLabV3Plus adds a separable 3x3 conv after ASPP, runs ASPP rates 12/24/36 at output "
            "stride 16 and fuses with one conv; segcli's deeplabv3plus has no conv after ASPP, rates 6/12/18 "
            "there and two fuse convs"
        ),
    )
