"""Metric loggers chosen by ``train.loggers``: csv always, TensorBoard and Weights & Biases on request.

Each logger is a :class:`~segcli.core.callbacks.Callback` in its own module, listed in
:data:`segcli.config.loggers.LOGGERS` with the package it needs and the segcli extra that installs it, so a
preset naming a logger whose package is missing fails when it loads with the ``pip install`` line to run. The
modules import their packages (torch's SummaryWriter, wandb) only when training starts. The trainer adds
:func:`make_loggers`' callbacks on rank 0 only, so under torchrun one process logs.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from segcli.config.loggers import LOGGERS, logger_problems
from segcli.core.callbacks import Callback
from segcli.errors import PresetError


def flat_preset(preset: Any) -> dict[str, bool | int | float | str]:
    """The resolved preset as ``{"optim.lr": 0.001, ...}``; lists become their text (hyperparameter tables)."""
    from segcli.config.load import preset_to_dict

    out: dict[str, bool | int | float | str] = {}

    def walk(d: dict[str, Any], prefix: str) -> None:
        for k, v in d.items():
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.")
            else:
                out[prefix + k] = (
                    v if isinstance(v, (bool, int, float, str)) else str(list(v) if isinstance(v, tuple) else v)
                )

    walk(preset_to_dict(preset), "")
    return out


def plot_images(plots_dir: Path, epoch: int) -> dict[str, Path]:
    """The pictures the plots callback drew for a validation in 0-based ``epoch`` that exist (tag → file).

    Loggers run after the plots callback, so these are this validation's; the curves are left out
    (the loggers draw their own from the scalars).
    """
    files = {
        "confusion_matrix": plots_dir / "confusion_matrix.png",
        "samples": plots_dir / f"samples_epoch{epoch + 1:03d}.png",
    }
    return {tag: f for tag, f in files.items() if f.is_file()}


def make_loggers(names: Iterable[str]) -> list[Callback]:
    """The callbacks for ``train.loggers`` (a PresetError naming the extra when a package is missing)."""
    names = list(dict.fromkeys(names))
    problems = logger_problems(names)
    if problems:
        raise PresetError(problems[0])
    out = []
    for name in names:
        info = LOGGERS.get(name)
        if info.module:
            out.append(getattr(importlib.import_module(info.module), info.cls)())
    return out
