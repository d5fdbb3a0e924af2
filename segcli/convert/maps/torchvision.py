"""torchvision's segmentation models (``torchvision.models.segmentation``) → segcli.

What matches, checked by building both and comparing outputs (tests/test_convert_maps.py):

- ``fcn_resnet50/101`` → ``fcn`` on timm's ResNet (same layers and key names as torchvision's) at output
  stride 8, ``decoder_channels = 512``. torchvision's head has one 3x3 conv unit, segcli's two: the
  second is filled with an identity conv (exact, since a ReLU follows a ReLU).
- ``deeplabv3_resnet50/101`` → ``deeplabv3`` at output stride 8 (ASPP rates 12/24/36 on both sides),
  ``decoder_channels = 256``. torchvision's image-pool branch has a BatchNorm, segcli's a biased conv:
  the BatchNorm is folded into the conv (exact in inference; fine-tuning continues without that BN).
- ``lraspp_mobilenet_v3_large`` → ``lraspp`` on ``torchvision:mobilenet_v3_large`` (torchvision's
  dilated MobileNetV3 tapped where torchvision taps it; timm's differs in where it dilates and which
  block it reads); the gate's conv gets a zero bias.

What does not: ``deeplabv3_mobilenet_v3_large`` (see its entry). The auxiliary heads
(``aux_classifier.*``) are dropped: segcli's auxiliary heads are built differently.
"""

from __future__ import annotations

from segcli.convert.maps.registry import KeyMap, chain, fold_bn, identity_conv_bn, register, zero_bias

RESNET_BACKBONE = (r"^backbone\.", "net.encoder.body.")
AUX = (r"^aux_classifier\.",)
R50 = ("backbone.layer4.2.conv3.weight",)
R101_ONLY = "backbone.layer3.22.conv1.weight"


def _fcn(depth: int) -> KeyMap:
    return KeyMap(
        name=f"torchvision:fcn_resnet{depth}",
        doc=f"torchvision FCN-ResNet{depth} → fcn (resnet{depth}, output stride 8, decoder_channels 512)",
        model={"name": "fcn", "backbone": f"resnet{depth}", "output_stride": 8, "decoder_channels": 512},
        rules=(
            RESNET_BACKBONE,
            (r"^classifier\.0\.", "net.convs.0.0."),
            (r"^classifier\.1\.", "net.convs.0.1."),
            (r"^classifier\.4\.", "net.head.2."),
        ),
        drop=AUX,
        signature=(*R50, "classifier.4.weight", "classifier.0.weight") + ((R101_ONLY,) if depth == 101 else ()),
        absent=(R101_ONLY,) if depth == 50 else (),
        classifier="classifier.4.weight",
        transform=identity_conv_bn("net.convs.1", 512),
    )


def _deeplabv3(depth: int) -> KeyMap:
    return KeyMap(
        name=f"torchvision:deeplabv3_resnet{depth}",
        doc=f"torchvision DeepLabV3-ResNet{depth} → deeplabv3 (resnet{depth}, output stride 8, decoder_channels 256)",
        model={"name": "deeplabv3", "backbone": f"resnet{depth}", "output_stride": 8, "decoder_channels": 256},
        rules=(
            RESNET_BACKBONE,
            (r"^classifier\.0\.convs\.([0-3])\.", r"net.aspp.branches.\1."),
            (r"^classifier\.0\.convs\.4\.1\.", "net.aspp.branches.4.1.0."),
            (r"^classifier\.0\.convs\.4\.2\.", "@pool_bn."),
            (r"^classifier\.0\.project\.([01])\.", r"net.aspp.project.0.\1."),
            (r"^classifier\.1\.", "net.conv.0."),
            (r"^classifier\.2\.", "net.conv.1."),
            (r"^classifier\.4\.", "net.head.2."),
        ),
        drop=AUX,
        signature=(*R50, "classifier.0.convs.0.0.weight") + ((R101_ONLY,) if depth == 101 else ()),
        absent=(R101_ONLY,) if depth == 50 else (),
        classifier="classifier.4.weight",
        transform=fold_bn("@pool_bn", "net.aspp.branches.4.1.0"),
    )


@register
def fcn_resnet50() -> KeyMap:
    return _fcn(50)


@register
def fcn_resnet101() -> KeyMap:
    return _fcn(101)


@register
def deeplabv3_resnet50() -> KeyMap:
    return _deeplabv3(50)


@register
def deeplabv3_resnet101() -> KeyMap:
    return _deeplabv3(101)


@register
def lraspp_mobilenet_v3_large() -> KeyMap:
    return KeyMap(
        name="torchvision:lraspp_mobilenet_v3_large",
        doc="torchvision LR-ASPP-MobileNetV3-Large → lraspp (torchvision:mobilenet_v3_large, output stride 16)",
        model={"name": "lraspp", "backbone": "torchvision:mobilenet_v3_large", "decoder_channels": 128},
        rules=(
            (r"^backbone\.", "net.encoder.body."),
            (r"^classifier\.cbr\.", "net.branch."),
            (r"^classifier\.scale\.1\.", "net.gate.1."),
            (r"^classifier\.low_classifier\.", "net.cls_low."),
            (r"^classifier\.high_classifier\.", "net.cls_high."),
        ),
        signature=("backbone.16.0.weight", "classifier.cbr.0.weight", "classifier.scale.1.weight"),
        classifier="classifier.low_classifier.weight",
        transform=chain(zero_bias("net.gate.1.weight")),
    )


@register
def deeplabv3_mobilenet_v3_large() -> KeyMap:
    return KeyMap(
        name="torchvision:deeplabv3_mobilenet_v3_large",
        doc="torchvision DeepLabV3-MobileNetV3-Large: not convertible",
        signature=("backbone.16.0.weight", "classifier.0.convs.0.0.weight"),
        unsupported=(
            "torchvision's DeepLabV3-MobileNetV3 runs ASPP rates 12/24/36 at output stride 16, segcli's deeplabv3 "
            "6/12/18 there, so its weights would compute something else; use lraspp_mobilenet_v3_large, or "
            "deeplabv3_resnet50/101"
        ),
    )
