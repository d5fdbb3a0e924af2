"""Heads shared by the decoders: the FCN classifier head and the auxiliary heads on encoder stages."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn as nn

from segcli.errors import PresetError
from segcli.models.blocks import ConvBNReLU, DecoderOpts


class FCNHead(nn.Sequential):
    """conv3x3-BN-ReLU → dropout → 1x1 classifier: the classic FCN / auxiliary head."""

    def __init__(self, cin: int, num_classes: int, mid: int | None = None, dropout: float = 0.1) -> None:
        mid = mid or max(cin // 4, 32)
        super().__init__(
            ConvBNReLU(cin, mid, 3),
            nn.Dropout2d(dropout) if dropout > 0 else nn.Identity(),
            nn.Conv2d(mid, num_classes, 1),
        )


class ClassifierHead(nn.Sequential):
    """Optional attention → dropout → 1x1 classifier on top of a decoder's last map.

    ``init="xavier"`` starts the classifier as smp's ``SegmentationHead`` (Xavier-uniform weights, zero bias)
    instead of PyTorch's default (uniform within 1/sqrt(fan_in), weights and bias). A decoder whose last map is
    narrow asks for it: AdamW moves each weight by about the learning rate per step, so the logits of a classifier
    on 16 channels (U-Net's full-resolution level) grow 8x slower than on FPN's 128, and from the default start
    they stay small for hundreds of steps (see :class:`~segcli.models.unet.UNet`). On a wide map the larger start
    only adds noise: FPN on membrane, 2 minutes, scored 0.008 mIoU lower with it on both seeds (docs/budget.md).
    """

    def __init__(
        self, cin: int, num_classes: int, opts: DecoderOpts, init: Literal["default", "xavier"] = "default"
    ) -> None:
        classifier = nn.Conv2d(cin, num_classes, 1)
        if init == "xavier":
            nn.init.xavier_uniform_(classifier.weight)
            nn.init.zeros_(classifier.bias)
        super().__init__(opts.attend(cin), opts.drop(), classifier)


def resolve_stages(stages: tuple[int, ...], n_stages: int, backbone: str) -> list[int]:
    """Validate ``model.aux_stages`` against the encoder (negative indices count from the end)."""
    out = []
    for s in stages:
        if not -n_stages <= s < n_stages:
            raise PresetError(
                f"model.aux_stages contains {s}, but backbone {backbone!r} has {n_stages} feature stages "
                f"(valid indices 0..{n_stages - 1} or negative from the end)"
            )
        out.append(s % n_stages)
    return out


class AuxHeads(nn.Module):
    """One FCN head per selected encoder stage; used only in training mode."""

    def __init__(self, channels: list[int], stages: list[int], num_classes: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.stages = list(stages)
        self.heads = nn.ModuleList(FCNHead(channels[i], num_classes, dropout=dropout) for i in self.stages)

    def __len__(self) -> int:
        return len(self.stages)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        return [h(feats[i]) for h, i in zip(self.heads, self.stages)]
