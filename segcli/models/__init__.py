"""Models: a registry of decoders on timm encoders and networks with their own backbone, and the
Segmenter wrapper that normalises input.

Adding a model is one new file that registers its builder with ``@MODELS.register("name")`` (from
:mod:`segcli.models.registry`) plus its name in the import line below. Builders take the number of
classes and keyword options (``backbone=``, ``decoder_channels=``, ...); nothing here reads presets
(``segcli.core.factory`` maps a preset's ``[model]`` table onto these options).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from segcli.errors import PresetError, UserError
from segcli.models import (  # noqa: F401 - importing a model module registers it
    bifpn,
    bisenetv1,
    bisenetv2,
    ddrnet,
    deeplabv3,
    deeplabv3plus,
    duc_hdc,
    enet,
    fcn,
    fpn,
    fpn_smp,
    gcn,
    lraspp,
    panet,
    pointrend,
    pspnet,
    segformer,
    segnet,
    sfnet,
    unet,
    upernet,
)
from segcli.models.registry import MODELS, ModelInfo, model_options, supported_options

__all__ = ["MODELS", "ModelInfo", "Segmenter", "build_model", "model_options", "supported_options"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Segmenter(nn.Module):
    """Network plus its input normalisation: takes images in [0, 255] (uint8 or float), gives logits.

    ``mean``/``std`` hold one value per input channel (in [0, 1] units, multiplied by 255 here), so their
    length is the number of channels the network takes (``in_channels``: 3 for RGB, 4 for RGB + near infrared).
    Keeping mean/std inside the module makes checkpoints and exported models self-contained.
    In training mode a network may return a dict (``out`` plus auxiliary logits).
    ``prior``: the last channel is the previous video frame's mask (``model.prior = "mask"``); an input without
    it (a still image, one channel fewer) gets the empty prior, zeros: no previous frame.
    """

    def __init__(self, net: nn.Module, mean: tuple[float, ...], std: tuple[float, ...], prior: bool = False) -> None:
        super().__init__()
        self.net = net
        self.prior = prior
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1) * 255.0)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1) * 255.0)

    @property
    def in_channels(self) -> int:
        """The number of input channels (one per mean/std value)."""
        return int(self.mean.shape[1])

    def forward(self, x: torch.Tensor):  # noqa: ANN201 - Tensor, or dict in training mode
        if self.prior and x.shape[1] == self.mean.shape[1] - 1:  # a still image: no previous frame
            x = torch.cat([x, x.new_zeros((x.shape[0], 1, *x.shape[2:]))], dim=1)
        if x.shape[1] != self.mean.shape[1] and not torch.jit.is_tracing():
            raise UserError(f"the model takes {self.in_channels}-channel images, got {x.shape[1]} channels")
        x = (x.float() - self.mean) / self.std
        return self.net(x)


def build_model(
    name: str,
    num_classes: int,
    *,
    mean: tuple[float, ...] = IMAGENET_MEAN,
    std: tuple[float, ...] = IMAGENET_STD,
    prior: bool = False,
    **options: Any,
) -> Segmenter:
    """The registered network ``name`` built with ``options``, wrapped in a Segmenter (mean/std in [0, 1]).

    The network takes ``len(mean)`` input channels (``in_channels``, which ``options`` may also give; it must
    agree): 3 values for RGB, N for N-channel images. Every registered network takes ``in_channels``.
    ``prior``: the last of them is a video's previous mask (see :class:`Segmenter`).
    """
    channels = int(options.pop("in_channels", len(mean)))
    if len(mean) != channels or len(std) != channels:
        raise PresetError(
            f"model.mean and model.std need one value per input channel ({channels}); got {len(mean)} and {len(std)}"
        )
    if channels != 3:
        accepted = model_options(name)
        if accepted is not None and "in_channels" not in accepted:
            raise PresetError(f"data.channels = {channels}: model {name!r} takes RGB images only (3 channels)")
        options["in_channels"] = channels
    return Segmenter(MODELS.get(name)(num_classes, **options), mean, std, prior)
