"""The loss registry: each loss registers its class (or a builder function) and the dataclass of its options.

A loss module imports ``LOSSES`` from here (never the package ``__init__``) and declares, in its own
file, a frozen dataclass of its options with :func:`segcli.options.opt` fields::

    @dataclass(frozen=True)
    class FocalOptions:  # its docstring heads the [loss.focal] table in docs/config.md
        gamma: float = opt(2.0, "focusing exponent", minimum=0.0)

    @LOSSES.register("focal", options=FocalOptions)
    class FocalLoss(LabelLoss):
        def __init__(self, num_classes: int, ignore_index: int = 255, weight=None, gamma: float = 2.0):
            super().__init__(ignore_index, weight)  # losses.common.LabelLoss keeps both
            ...

It is built with every field of its options as a keyword argument, plus whichever of ``num_classes``,
``ignore_index`` and ``weight`` (class weights) its signature names. Presets set the options in the
loss's own table (``[loss.focal] gamma = 3.0``), validated against the dataclass when they load.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch.nn as nn

from segcli.registry import Registry


@dataclass(frozen=True)
class NoOptions:
    """This loss has no options."""


@dataclass(frozen=True)
class LossInfo:
    """What a loss declares when it registers: the dataclass of its options, and whether it compares the model
    with a teacher (``teacher=True``: called as ``loss(logits, target, teacher_logits)``, see ``distill.py``)."""

    options: type = NoOptions
    teacher: bool = False


LOSSES: Registry[Callable[..., nn.Module]] = Registry("loss", info=LossInfo)


def loss_options(name: str) -> type:
    """The options dataclass of loss ``name`` (unknown names raise the registry's UserError)."""
    return LOSSES.info(name).options
