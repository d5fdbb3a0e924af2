"""Losses: a registry of builders. Every loss takes logits (N, C, H, W) and ids (N, H, W) and
honours ``ignore_index``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn as nn

from segcli.config.schema import LossConfig
from segcli.config.toml_io import load_toml
from segcli.errors import PresetError
from segcli.registry import Registry

LOSSES: Registry[Callable[..., nn.Module]] = Registry("loss")


def resolve_class_weights(
    value: tuple[float, ...] | str, num_classes: int, base: str | os.PathLike = "."
) -> torch.Tensor | None:
    """``loss.class_weights``: a list, or a TOML file from `seg class-weights` (key ``weights``)."""
    if isinstance(value, str):
        if not value:
            return None
        path = Path(value) if Path(value).is_absolute() else Path(base) / value
        raw = load_toml(path)
        weights = raw.get("weights")
        if not isinstance(weights, list) or not all(isinstance(w, (int, float)) for w in weights):
            raise PresetError(f"{path}: needs a 'weights' list of numbers (written by `seg class-weights`)")
        value = tuple(float(w) for w in weights)
        where = str(path)
    else:
        where = "loss.class_weights"
    if not value:
        return None
    if len(value) != num_classes:
        raise PresetError(f"{where}: {len(value)} class weights given for {num_classes} classes")
    if any(w < 0 for w in value):
        raise PresetError(f"{where}: class weights must be >= 0")
    return torch.tensor(value, dtype=torch.float32)


def _register_all() -> None:
    from segcli.losses import cross_entropy  # noqa: F401


def build_loss(cfg: LossConfig, num_classes: int, ignore_index: int, class_weights: torch.Tensor | None) -> nn.Module:
    """The loss named ``cfg.name`` configured from the preset."""
    _register_all()
    return LOSSES.get(cfg.name)(cfg=cfg, num_classes=num_classes, ignore_index=ignore_index, weight=class_weights)
