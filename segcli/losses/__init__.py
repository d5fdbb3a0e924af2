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
from segcli.errors import PresetError, UserError
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


def valid_mask(target: torch.Tensor, ignore_index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(valid, safe_target)``: which pixels count, and the target with ignored pixels set to class 0.

    ``safe_target`` can be used for indexing (gather, one-hot); results at ignored pixels must be masked out.
    """
    valid = target != ignore_index
    return valid, torch.where(valid, target, torch.zeros_like(target))


def one_hot_valid(target: torch.Tensor, num_classes: int, ignore_index: int) -> torch.Tensor:
    """(N, C, H, W) bool: pixel belongs to class c and is not ignored (all False at ignored pixels)."""
    classes = torch.arange(num_classes, device=target.device).view(1, num_classes, *([1] * (target.dim() - 1)))
    return (target.unsqueeze(1) == classes) & (target != ignore_index).unsqueeze(1)


def weighted_class_mean(per_class: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """Mean over classes, or ``sum(w * x) / sum(w)`` with class weights (0 when all weights are 0)."""
    if weight is None:
        return per_class.mean()
    return (per_class * weight).sum() / weight.sum().clamp_min(torch.finfo(per_class.dtype).tiny)


def _register_all() -> None:
    import segcli.losses.cross_entropy  # noqa: F401
    import segcli.losses.focal  # noqa: F401
    import segcli.losses.hard_mining  # noqa: F401
    import segcli.losses.lovasz  # noqa: F401
    import segcli.losses.overlap  # noqa: F401


def build_loss(cfg: LossConfig, num_classes: int, ignore_index: int, class_weights: torch.Tensor | None) -> nn.Module:
    """One module computing the weighted sum of ``cfg.terms``, configured from the preset.

    It is called as ``loss(logits, target)``; the trainer calls ``loss.set_progress(step, total)`` every
    iteration (terms with a schedule, such as ``topk``, use it).
    """
    from segcli.losses.combo import CombinedLoss

    _register_all()
    if not cfg.terms:
        raise PresetError(f"loss.terms is empty; name at least one of: {', '.join(LOSSES.names())}")
    dupes = sorted({t for t in cfg.terms if cfg.terms.count(t) > 1})
    if dupes:
        raise PresetError(f"loss.terms lists {', '.join(dupes)} more than once; list each once and use term_weights")
    weights = cfg.term_weights or tuple(1.0 for _ in cfg.terms)
    if len(weights) != len(cfg.terms):
        raise PresetError(
            f"loss.term_weights has {len(weights)} values for {len(cfg.terms)} loss.terms {list(cfg.terms)}; "
            "give one weight per term or leave it empty"
        )
    if any(w < 0 for w in weights):
        raise PresetError(f"loss.term_weights = {list(weights)}: weights must be >= 0")
    modules: list[nn.Module] = []
    for name in cfg.terms:
        try:
            builder = LOSSES.get(name)
        except UserError as e:
            raise PresetError(f"loss.terms: {e}") from None
        modules.append(builder(cfg=cfg, num_classes=num_classes, ignore_index=ignore_index, weight=class_weights))
    return CombinedLoss(cfg.terms, modules, weights)
