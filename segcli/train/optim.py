"""Optimisers (parameter groups) and learning-rate schedules built from a preset.

Schedules are functions of training progress t in [0, 1] (iterations done / total, or elapsed /
budget for time-budgeted runs) with a linear warmup over the first iterations. The trainer sets
every group's lr to ``group["base_lr"] * factor`` once per iteration, so no scheduler state needs
saving and a time budget anneals exactly like an iteration count.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from segcli.config.schema import OptimConfig, ScheduleConfig
from segcli.models.base import head_parameters
from segcli.models.encoder import TimmEncoder
from segcli.train.padam import Padam

_NORMS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm)


def param_groups(model: nn.Module, cfg: OptimConfig) -> list[dict]:
    """Up to six groups: backbone/decoder/head × decay/no-decay.

    Parameters inside a :class:`TimmEncoder` get ``lr * backbone_lr_mult``; the model's head
    (:func:`segcli.models.base.head_parameters`) gets ``lr * head_lr_mult``, and is part of the decoder
    group when that is 1; the rest gets ``lr``. Norm-layer weights and biases get no weight decay when
    ``no_decay_norm_bias`` is on (the usual recipe).
    """
    backbone_ids = {id(p) for m in model.modules() if isinstance(m, TimmEncoder) for p in m.parameters()}
    head_ids = {id(p) for p in head_parameters(model)} - backbone_ids if cfg.head_lr_mult != 1.0 else set()
    groups: dict[tuple[int, bool], list[nn.Parameter]] = {}
    seen: set[int] = set()
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            no_decay = cfg.no_decay_norm_bias and (isinstance(module, _NORMS) or name == "bias" or p.ndim <= 1)
            part = 0 if id(p) in backbone_ids else (2 if id(p) in head_ids else 1)
            groups.setdefault((part, no_decay), []).append(p)
    out = []
    for (part, no_decay), params in sorted(groups.items()):
        lr = cfg.lr * (cfg.backbone_lr_mult, 1.0, cfg.head_lr_mult)[part]
        out.append(
            {
                "params": params,
                "lr": lr,
                "base_lr": lr,
                "weight_decay": 0.0 if no_decay else cfg.weight_decay,
                "name": f"{('backbone', 'decoder', 'head')[part]}{'_no_decay' if no_decay else ''}",
            }
        )
    return out


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg)
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)
    b1, b2 = cfg.betas
    if cfg.name == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, betas=(b1, b2))
    if cfg.name == "padam":
        return Padam(groups, lr=cfg.lr, betas=(b1, b2), partial=cfg.partial)
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(b1, b2))


def lr_factor(cfg: ScheduleConfig, step: int, progress: float, peak: float) -> float:
    """Multiplier of the peak lr after ``step`` iterations at progress ``progress`` in [0, 1]."""
    t = min(max(progress, 0.0), 1.0)
    floor = cfg.min_lr / peak if peak > 0 else 0.0
    if cfg.name == "poly":
        f = floor + (1 - floor) * (1 - t) ** cfg.power
    elif cfg.name == "cosine":
        f = floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))
    elif cfg.name == "onecycle":
        if t < cfg.pct_start:
            f = cfg.warmup_factor + (1 - cfg.warmup_factor) * t / cfg.pct_start
        else:
            u = (t - cfg.pct_start) / max(1e-12, 1 - cfg.pct_start)
            f = floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * u))
    elif cfg.name == "step":
        f = cfg.gamma ** sum(t >= m for m in cfg.milestones)
    else:  # constant
        f = 1.0
    if cfg.warmup_iters and step < cfg.warmup_iters and cfg.name != "onecycle":
        f *= cfg.warmup_factor + (1 - cfg.warmup_factor) * step / cfg.warmup_iters
    if cfg.warmup_fraction and t < cfg.warmup_fraction and cfg.name != "onecycle":
        f *= cfg.warmup_factor + (1 - cfg.warmup_factor) * t / cfg.warmup_fraction
    return f


def batch_lr_scale(cfg: OptimConfig, batch_size: int) -> float:
    """``optim.scale_lr_with_batch``: the lr multiplier for global batch ``batch_size`` against
    ``optim.lr_batch_size`` (1 when off: the recipe's lr is used as given)."""
    if cfg.scale_lr_with_batch == "none":
        return 1.0
    ratio = batch_size / cfg.lr_batch_size
    return ratio if cfg.scale_lr_with_batch == "linear" else math.sqrt(ratio)


def set_lr(optimizer: torch.optim.Optimizer, factor: float) -> float:
    """Apply ``factor`` to every group's base lr; returns the first group's new lr."""
    for g in optimizer.param_groups:
        g["lr"] = g["base_lr"] * factor
    return optimizer.param_groups[0]["lr"]
