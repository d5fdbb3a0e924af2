"""SegNet (Badrinarayanan, Kendall and Cipolla, TPAMI 2017): a VGG16-BN encoder whose max-pooling indices drive
the upsampling of a mirrored decoder.

Layers follow the authors' Caffe model (https://github.com/alexgkendall/SegNet-Tutorial, Models/segnet_train.prototxt):

* encoder: the 13 3x3 conv-BN-ReLU layers of VGG16 in five blocks (64 x2, 128 x2, 256 x3, 512 x3, 512 x3), each
  block closed by a 2x2 / stride-2 max-pool that keeps its argmax indices;
* decoder: five stages from the deepest, each opened by max-unpooling with the indices of the matching encoder
  pool, then 3x3 conv-BN-ReLU layers (512 512 512 | 512 512 256 | 256 256 128 | 128 64 | 64): 12 layers;
* classifier: a 3x3 convolution to the classes (Caffe's ``conv1_1_D``), no BN.

Any input size works, as in the Caffe model: the pools round up (Caffe's pooling, ``ceil_mode``), so an odd side
keeps its last row or column, and each unpooling restores the exact size the encoder had before that pool
(Caffe's ``upsample_h``/``upsample_w``; ``output_size`` here), so the logits come out at the input size without
padding or resizing. The unpooling is written as a scatter of the pooled values to their indices (the same
numbers as ``F.max_unpool2d``): torch's ONNX exporter cannot give MaxUnpool a symbolic output size, the scatter
exports with height and width left dynamic.

Departures, each with its reason:

* no bias in the convolutions followed by BN (redundant under BN; 7,936 parameters fewer than the Caffe model);
* the encoder starts from random weights (the paper initialises it from ImageNet VGG16): a network with its
  own backbone takes no ``model.pretrained`` in segcli;
* optional SCSE (``attention``) and dropout (``dropout``) before the classifier, as every segcli head has; the
  paper has neither, so its preset sets ``dropout = 0``.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from segcli.models.base import pack_output
from segcli.models.blocks import SCSE, ConvBNReLU
from segcli.models.registry import MODELS

# VGG16's convolution widths per block (encoder), and the decoder's per stage from the deepest (Caffe's *_D layers).
ENCODER = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))
DECODER = ((512, 512, 512), (512, 512, 256), (256, 256, 128), (128, 64), (64,))


def unpool(x: torch.Tensor, idx: torch.Tensor, size: torch.Size | tuple[int, int]) -> torch.Tensor:
    """Max-unpooling: each value of ``x`` goes back to where its pool took it from (``idx``, flat positions in the
    ``size`` map), zeros elsewhere; ``F.max_unpool2d(x, idx, 2, 2, output_size=size)`` as a scatter (see above)."""
    n, c = x.shape[:2]
    out = x.new_zeros((n, c, size[0] * size[1]))
    return out.scatter(2, idx.flatten(2), x.flatten(2)).view(n, c, size[0], size[1])


def _convs(cin: int, widths: tuple[int, ...]) -> nn.Sequential:
    layers = []
    for cout in widths:
        layers.append(ConvBNReLU(cin, cout, 3))
        cin = cout
    return nn.Sequential(*layers)


@MODELS.register(
    "segnet",
    timm_encoder=False,
    rejects=("separable", "decoder_channels"),
    paper=(
        "Badrinarayanan, Kendall and Cipolla, SegNet: A Deep Convolutional Encoder-Decoder Architecture for "
        "Image Segmentation, TPAMI 2017"
    ),
    reference="https://github.com/alexgkendall/SegNet-Tutorial (Models/segnet_train.prototxt)",
)
class SegNet(nn.Module):
    """VGG16-BN encoder (pool indices kept), mirrored decoder (max-unpool + conv-BN-ReLU), 3x3 classifier."""

    head_modules = ("decoder", "classifier")  # optim.head_lr_mult: everything after the VGG16 encoder

    def __init__(
        self, num_classes: int, *, attention: str = "none", dropout: float = 0.1, in_channels: int = 3
    ) -> None:
        super().__init__()
        blocks, cin = [], in_channels
        for widths in ENCODER:
            blocks.append(_convs(cin, widths))
            cin = widths[-1]
        self.encoder = nn.ModuleList(blocks)
        stages = []
        for widths in DECODER:
            stages.append(_convs(cin, widths))
            cin = widths[-1]
        self.decoder = nn.ModuleList(stages)
        self.classifier = nn.Sequential(
            SCSE(cin) if attention == "scse" else nn.Identity(),
            nn.Dropout2d(dropout) if dropout > 0 else nn.Identity(),
            nn.Conv2d(cin, num_classes, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        pools = []  # (indices, size before the pool) of each encoder block
        for block in self.encoder:
            x = block(x)
            before = x.shape[-2:]
            x, idx = F.max_pool2d(x, 2, 2, ceil_mode=True, return_indices=True)
            pools.append((idx, before))
        for stage, (idx, before) in zip(self.decoder, reversed(pools)):
            x = stage(unpool(x, idx, before))
        return pack_output(self, self.classifier(x), [], size)
