"""Optimisers and per-iteration learning-rate schedules built from a preset."""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from segcli.config.schema import OptimConfig, ScheduleConfig


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: weights with decay; norm layers and biases without (the usual recipe)."""
    decay, no_decay = [], []
    for module in model.modules():
        is_norm = isinstance(module, (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm))
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            (no_decay if is_norm or name == "bias" or p.ndim <= 1 else decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    groups = param_groups(model, cfg.weight_decay)
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)
    b1, b2 = (tuple(cfg.betas) + (0.9, 0.999))[:2]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(b1, b2))


def lr_factor(cfg: ScheduleConfig, step: int, total: int, peak: float) -> float:
    """Multiplier of the peak lr at iteration ``step`` of ``total``: linear warmup, then the schedule."""
    if cfg.warmup_iters and step < cfg.warmup_iters:
        return cfg.warmup_factor + (1 - cfg.warmup_factor) * step / cfg.warmup_iters
    if cfg.name == "constant":
        return 1.0
    span = max(1, total - cfg.warmup_iters)
    t = min(1.0, max(0, step - cfg.warmup_iters) / span)
    floor = cfg.min_lr / peak if peak > 0 else 0.0
    return floor + (1 - floor) * math.pow(1 - t, cfg.power)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: ScheduleConfig, total_iters: int, peak_lr: float):
    """A LambdaLR stepped once per iteration."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(cfg, step, total_iters, peak_lr))
