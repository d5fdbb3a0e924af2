"""DUC-HDC (Wang et al., "Understanding Convolution for Semantic Segmentation", WACV 2018).

Two parts, both following the official MXNet implementation, TuSimple/TuSimple-DUC
(``tusimple_duc/networks/resnet.py``: ``get_resnet_hdc``; ``tusimple_duc/networks/network_duc_hdc.py``:
``get_symbol_duc_hdc``):

* **HDC** (hybrid dilated convolution): the timm ResNet is built at output stride 8 (timm removes the strides of
  its last two stages and dilates them 2 and 4), then the dilation and padding of every 3x3 convolution of those
  two stages are reset to the reference's rates, so that consecutive rates have no common factor and the stacked
  receptive field has no holes ("gridding"). res4 (``layer3``) cycles 1, 2, 5, 9 (on ResNet-101: 1, 2, 5, 9, ...,
  1, 2, 5 over 23 blocks), res5 (``layer4``) cycles 5, 9, 17. The cycle runs over the stage's 3x3 convolutions in
  order: one per Bottleneck block (the paper's networks), two per BasicBlock (resnet18/34), so consecutive
  convolutions still get different rates.
* **DUC** (dense upsampling convolution): the stride-8 feature goes through four parallel 3x3 convolutions with
  dilation 6, 12, 18 and 24 (the reference's ``aspp_num=4, aspp_stride=6``), each giving ``num_classes * 8 * 8``
  channels (with bias, no norm or activation); their sum is rearranged by ``pixel_shuffle(8)`` into full-resolution
  logits. The channel order (class, row in the cell, column in the cell) is the reference's reshape, so its
  weights map one to one.

Any input size: timm's ResNet rounds stride-2 outputs up, so the shuffled map is ``8 * ceil(H / 8)`` high and is
cropped at the top left to the input, the same place the reference's test code keeps after padding the image's
bottom and right to a multiple of 8 (``pack_output`` resizes, should a backbone round down instead).

Departures, and why:

* The first 3x3 convolution of res4 has rate 1 here, 2 in the reference (its other 25 rates are the ones here).
  The reference's ResNet strides in the 1x1 convolution of res4a (Caffe style), so that block's 3x3 ran at stride
  16 and needs rate 2 to keep its pretrained sampling; timm's ResNet strides in the 3x3 convolution itself, whose
  sampling is unchanged at rate 1 once the stride is removed (timm's own output stride 8 keeps it at 1). It is
  also the plain cycle, and on resnet18 a leading 2 would leave holes at the edge of the receptive field.
* The reference's ResNet-101 has a three-convolution stem (64, 64, 128 channels) and res2 takes 128 channels;
  timm's ``resnet101`` has the 7x7 stem and takes 64, so it has 123,776 fewer parameters (0.09% of the model at
  19 classes; the test states both counts).
* Cell size: the network code's default (``cell_cap=64``) predicts at full resolution, which is what is built
  here; the repository's training config sets ``cell_width=2`` (16 channels per class, labels and prediction at
  stride 2, bilinearly resized to the image at test time), the released 65 M-parameter model.
* ``model.dropout`` (default 0.1) is a Dropout2d before the DUC convolutions and ``model.attention = "scse"`` an
  SCSE block there, as segcli's classifier heads do; the reference has neither (set ``dropout = 0`` for it).
  ``model.decoder_channels`` is unused (DUC has no intermediate width); ``model.separable`` is rejected (the DUC
  convolutions are the classifier).
* Backbones: timm's ResNet family only (BasicBlock / Bottleneck: resnet*, resnext*, seresnet*, wide_resnet*,
  ecaresnet*, ...); any other backbone is a PresetError naming it. Output stride 8 only (DUC upsamples by 8).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
from timm.models.resnet import BasicBlock, Bottleneck

from segcli.errors import PresetError
from segcli.models.base import EncoderDecoder
from segcli.models.registry import MODELS

STRIDE = 8  # output stride of the dilated backbone = DUC's upsampling factor
HDC_RES4 = (1, 2, 5, 9)  # layer3 (res4): cycled over its 3x3 convolutions
HDC_RES5 = (5, 9, 17)  # layer4 (res5)
DUC_RATES = (6, 12, 18, 24)  # the reference's aspp_num=4, aspp_stride=6
SUPPORTED = "timm's ResNet family (BasicBlock/Bottleneck blocks: resnet*, resnext*, seresnet*, wide_resnet*, ...)"


def hdc_rates(cycle: Sequence[int], n: int) -> list[int]:
    """The rates of ``n`` consecutive 3x3 convolutions: ``cycle`` repeated."""
    return [cycle[i % len(cycle)] for i in range(n)]


def stage_convs(stage: nn.Module) -> list[nn.Conv2d]:
    """The 3x3 convolutions of a ResNet stage's blocks, in order (the 1x1 shortcut convs are left out)."""
    return [m for m in stage.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]


def _stage(body: nn.Module, name: str) -> nn.Module:
    try:
        return body.get_submodule(name)
    except AttributeError:  # timm's feature wrappers register "a.b" as "a_b"
        return body.get_submodule(name.replace(".", "_"))


def apply_hdc(body: nn.Module, backbone: str) -> list[list[int]]:
    """Set the HDC dilation rates on the last two stages of a timm ResNet built at output stride 8.

    Returns the rates set, per stage. Raises a PresetError for backbones without ResNet blocks.
    """
    info = getattr(body, "feature_info", None)
    names = info.module_name()[-2:] if info is not None else []
    stages = [_stage(body, n) for n in names]
    for name, stage in zip(names, stages):
        blocks = list(stage.children()) if isinstance(stage, nn.Sequential) else [stage]
        bad = sorted({type(b).__name__ for b in blocks if not isinstance(b, (BasicBlock, Bottleneck))})
        if bad or not stage_convs(stage):
            raise PresetError(
                f"model.backbone = {backbone!r}: model 'duc_hdc' sets hybrid dilation rates on the 3x3 convolutions "
                f"of ResNet blocks, and this backbone's stage {name!r} is made of {', '.join(bad) or 'no such'} "
                f"blocks; supported: {SUPPORTED}"
            )
    if len(stages) != 2:
        raise PresetError(f"model.backbone = {backbone!r}: model 'duc_hdc' needs two dilated stages; {SUPPORTED}")
    set_rates = []
    for stage, cycle in zip(stages, (HDC_RES4, HDC_RES5)):
        convs = stage_convs(stage)
        rates = hdc_rates(cycle, len(convs))
        for conv, r in zip(convs, rates):
            if conv.stride != (1, 1):  # timm removed the strides at output stride 8; anything else is not a ResNet
                raise PresetError(f"model.backbone = {backbone!r}: a strided 3x3 convolution in a dilated stage")
            conv.dilation = (r, r)
            conv.padding = (r, r)
        set_rates.append(rates)
    return set_rates


class DUC(nn.Module):
    """Dense upsampling convolution: parallel dilated 3x3 convs to ``num_classes * r * r`` channels, summed, then
    ``pixel_shuffle(r)`` (channel ``c * r * r + i * r + j`` becomes pixel ``(i, j)`` of class ``c``'s r x r cell)."""

    def __init__(self, cin: int, num_classes: int, upscale: int = STRIDE, rates: Sequence[int] = DUC_RATES) -> None:
        super().__init__()
        cout = num_classes * upscale * upscale
        self.branches = nn.ModuleList(nn.Conv2d(cin, cout, 3, padding=r, dilation=r) for r in rates)
        self.shuffle = nn.PixelShuffle(upscale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.branches[0](x)
        for branch in self.branches[1:]:
            y = y + branch(x)
        return self.shuffle(y)


@MODELS.register(
    "duc_hdc",
    strides=(STRIDE,),
    rejects=("separable",),
    paper="Wang et al., Understanding Convolution for Semantic Segmentation, WACV 2018",
    reference="https://github.com/TuSimple/TuSimple-DUC (tusimple_duc/networks/network_duc_hdc.py, resnet.py)",
)
class DUCHDC(EncoderDecoder):
    """HDC-dilated ResNet at output stride 8 → (SCSE) → dropout → DUC (4 dilated convs, pixel shuffle by 8)."""

    default_stride = STRIDE

    def build_decoder(self, num_classes: int) -> None:
        encoder = self.encoder
        if encoder.reductions[-1] != STRIDE:
            raise PresetError(
                f"model 'duc_hdc' works at output stride {STRIDE} only (DUC upsamples by {STRIDE}); backbone "
                f"{encoder.name!r} gives {encoder.reductions[-1]} here. Leave model.output_stride at 0 or 8, "
                f"backbones: {SUPPORTED}"
            )
        if self.opts.separable:
            raise PresetError("model.separable = true: model 'duc_hdc' does not support it (DUC is the classifier)")
        self.hdc_rates = apply_hdc(encoder.body, encoder.name)
        cin = encoder.channels[-1]
        self.pre = nn.Sequential(self.opts.attend(cin), self.opts.drop())
        self.duc = DUC(cin, num_classes)

    def decode(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return self.duc(self.pre(feats[-1])), []

    def forward(self, x: torch.Tensor):  # noqa: ANN201 - Tensor, or dict in training mode
        feats = self.encoder(x)
        logits, aux = self.decode(feats)
        logits = logits[..., : x.shape[-2], : x.shape[-1]]  # 8 * ceil(H / 8) x 8 * ceil(W / 8) → the input's size
        return self.finish(logits, aux, feats, x)
