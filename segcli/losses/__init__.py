"""Losses: a registry of builders, all with one contract (stated here once, for every class below).

Shape: logits (N, C, H, W) float, target (N, H, W) int64 with values in [0, C) or ``ignore_index``;
returns a scalar. Pixels at ``ignore_index`` never count: changing only them leaves every loss unchanged.
Distillation terms (registered with ``teacher=True``, :mod:`segcli.losses.distill`) also take the teacher's
logits, of the same shape: ``loss(logits, target, teacher)``.

Adding a loss is one new file that registers its builder and options dataclass with
``@LOSSES.register("name", options=...)`` (from :mod:`segcli.losses.registry`) plus its name in the
import line below. Nothing here reads presets (``segcli.core.factory`` maps ``[loss]`` onto
:func:`build_loss`).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from segcli.losses import (  # noqa: F401 - importing a loss module registers it
    cross_entropy,
    distill,
    focal,
    hard_mining,
    lovasz,
    overlap,
)
from segcli.losses.combo import CombinedLoss
from segcli.losses.registry import LOSSES, LossInfo, NoOptions, loss_options

__all__ = ["LOSSES", "CombinedLoss", "LossInfo", "NoOptions", "build_loss", "build_term", "loss_options"]


def build_term(
    name: str, num_classes: int, ignore_index: int = 255, weight: torch.Tensor | None = None, options: Any = None
) -> torch.nn.Module:
    """One registered loss; ``options`` is its options dataclass or a mapping of some of its fields.

    The builder gets every option as a keyword argument, plus those of ``num_classes``, ``ignore_index``
    and ``weight`` (the class weights) that it takes.
    """
    builder, cls = LOSSES.get(name), loss_options(name)
    if not isinstance(options, cls):
        options = cls(**(options or {}))
    params = inspect.signature(builder).parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    common = {"num_classes": num_classes, "ignore_index": ignore_index, "weight": weight}
    common = {k: v for k, v in common.items() if takes_any or k in params}
    return builder(**common, **dataclasses.asdict(options))


def build_loss(
    terms: Sequence[str],
    num_classes: int,
    ignore_index: int = 255,
    weight: torch.Tensor | None = None,
    *,
    term_weights: Sequence[float] = (),
    options: Mapping[str, Any] | None = None,
) -> CombinedLoss:
    """The weighted sum of ``terms`` (weights default to 1.0 each); ``options`` maps a term to its options.

    It is called as ``loss(logits, target)``, or ``loss(logits, target, teacher_logits)`` when a term
    distils; call ``loss.set_progress(step, total)`` every iteration (terms with a schedule, such as ``topk``,
    use it).
    """
    options = options or {}
    modules = [build_term(t, num_classes, ignore_index, weight, options.get(t)) for t in terms]
    teacher = tuple(LOSSES.info(t).teacher for t in terms)
    return CombinedLoss(terms, modules, tuple(term_weights) or tuple(1.0 for _ in terms), teacher)
