"""Metric loggers chosen by ``train.loggers``: csv always, TensorBoard and Weights & Biases on request.

Each logger is a :class:`~segcli.engine.callbacks.Callback` in its own module, registered in
:data:`LOGGERS` with the package it needs and the segcli extra that installs it, so a preset naming a
logger whose package is missing fails when it loads with the ``pip install`` line to run. The modules
import their packages (torch's SummaryWriter, wandb) only when training starts. The trainer adds
:func:`make_loggers`' callbacks on rank 0 only, so under torchrun one process logs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segcli.engine.callbacks import Callback
from segcli.errors import PresetError
from segcli.extras import install_hint, package_available
from segcli.registry import Registry, did_you_mean


@dataclass(frozen=True)
class LoggerInfo:
    """What a logger needs installed: the import name and the segcli extra that provides it."""

    package: str = ""
    extra: str = ""


LOGGERS: Registry[Callable[[], Callback | None]] = Registry("logger", info=LoggerInfo)


@LOGGERS.register("csv")
def _csv() -> None:
    """metrics.csv, which every run writes (the trainer owns it): nothing to add."""
    return None


def logger_problems(names: Iterable[str], check_packages: bool = True) -> list[str]:
    """One message per unknown logger name or (with ``check_packages``) missing package, in order."""
    found = []
    for name in names:
        if name not in LOGGERS:
            found.append(
                f"train.loggers: unknown logger {name!r}{did_you_mean(name, LOGGERS.names())}; "
                f"valid: {', '.join(LOGGERS.names())}"
            )
            continue
        info = LOGGERS.info(name)
        if check_packages and info.package and not package_available(info.package):
            found.append(
                f"train.loggers: {name!r} needs the {info.package} package, which is not installed; "
                f"{install_hint(info.extra)} (or remove {name!r} from train.loggers)"
            )
    return found


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
    return [cb for cb in (LOGGERS.get(n)() for n in names) if cb is not None]


from segcli.engine.loggers import tensorboard as _tensorboard  # noqa: E402, F401  (registers "tensorboard")
from segcli.engine.loggers import wandb as _wandb  # noqa: E402, F401  (registers "wandb")
