"""The metric loggers ``train.loggers`` may name, what each needs installed, and the module that implements it.

This is the one place that knows the names: preset validation checks them here (no import of the logger
code, which lives above the config in :mod:`segcli.report.loggers`), and the trainer builds them from here.
Adding a logger is its module in ``segcli/report/loggers/`` (a class named in ``cls``) plus one line below.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from segcli.extras import missing
from segcli.registry import Registry, did_you_mean


@dataclass(frozen=True)
class LoggerInfo:
    """What a logger needs installed (import name, segcli extra) and where its callback class is."""

    package: str = ""
    extra: str = ""
    module: str = ""  # "" = nothing to build (csv: metrics.csv is the trainer's own)
    cls: str = ""


LOGGERS: Registry[LoggerInfo] = Registry("logger")
for _name, _info in {
    "csv": LoggerInfo(),
    "tensorboard": LoggerInfo("tensorboard", "tensorboard", "segcli.report.loggers.tensorboard", "TensorBoardLogger"),
    "wandb": LoggerInfo("wandb", "wandb", "segcli.report.loggers.wandb", "WandbLogger"),
}.items():
    LOGGERS.register(_name)(_info)


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
        info = LOGGERS.get(name)
        if check_packages and info.package:
            problem = missing(
                info.package, info.extra, f"train.loggers: {name!r}", f"remove {name!r} from train.loggers"
            )
            if problem:
                found.append(problem)
    return found
