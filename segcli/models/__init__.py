"""Models: a registry of decoders on timm encoders, and the Segmenter wrapper that normalises input.

Adding a model is one new file with a ``@MODELS.register("name")`` builder plus one import line
in ``_register_all``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn

from segcli.config.schema import ModelConfig
from segcli.registry import Registry

MODELS: Registry[Callable[[ModelConfig, int], nn.Module]] = Registry("model")


class Segmenter(nn.Module):
    """Network plus its input normalisation: takes RGB in [0, 255] (uint8 or float), gives logits.

    Keeping mean/std inside the module makes checkpoints and exported models self-contained.
    In training mode a network may return a dict (``out`` plus auxiliary logits).
    """

    def __init__(self, net: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1) * 255.0)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1) * 255.0)

    def forward(self, x: torch.Tensor):  # noqa: ANN201 - Tensor, or dict in training mode
        x = (x.float() - self.mean) / self.std
        return self.net(x)


def _register_all() -> None:
    from segcli.models import (  # noqa: F401
        bisenetv1,
        bisenetv2,
        ddrnet,
        deeplabv3,
        deeplabv3plus,
        enet,
        fcn,
        fpn,
        lraspp,
        pspnet,
        segformer,
        unet,
        upernet,
    )


def build_model(cfg: ModelConfig, num_classes: int) -> Segmenter:
    """Build the registered network named ``cfg.name`` wrapped in a Segmenter."""
    _register_all()
    net = MODELS.get(cfg.name)(cfg, num_classes)
    return Segmenter(net, cfg.mean, cfg.std)
