"""``seg train --resume RUN --extend train.epochs=N``: a longer schedule for a finished or stopped run.

A bare key (``epochs=N``, ``time_budget=1h``) is read as the full one, as in ``seg train``'s ``key=value``.

Only the key that decides the run's length can grow (``train.epochs``, ``train.iters`` or
``train.time_budget``, whichever the run uses); every other key of a run stays as it was.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

from segcli.config.keys import short_key
from segcli.config.schema import Preset, TrainConfig, parse_duration
from segcli.errors import PresetError, UserError

__all__ = ["EXTENDABLE", "Extension", "extend_preset", "length_key"]

EXTENDABLE = ("train.epochs", "train.iters", "train.time_budget")


@dataclass(frozen=True)
class Extension:
    """One key made larger: ``train.epochs`` from 2 to 3."""

    key: str
    old: str
    new: str

    def describe(self) -> str:
        return f"extended {self.key} from {self.old} to {self.new}"


def length_key(t: TrainConfig) -> str:
    """The key that decides how long a run is (a time budget wins, then iters, then epochs)."""
    if t.time_budget:
        return "train.time_budget"
    return "train.iters" if t.iters else "train.epochs"


def _magnitude(key: str, text: str) -> float:
    if key == "train.time_budget":
        return parse_duration(text)
    try:
        return int(text)
    except ValueError:
        raise PresetError(f"--extend {key}={text}: not a whole number (for example --extend {key}=20)") from None


def extend_preset(p: Preset, items: Iterable[str], source: str) -> tuple[Preset, list[Extension]]:
    """``p`` with each ``KEY=VALUE`` of ``items`` applied; a UserError names a key that cannot grow."""
    changes: list[Extension] = []
    for item in items:
        key, sep, value = (s.strip() for s in item.partition("="))
        if not sep or not key or not value:
            raise UserError(f"--extend {item!r} is not KEY=VALUE (for example --extend train.epochs=20)")
        key = key if "." in key else short_key(key) or key  # `epochs=20` as on the command line of `seg train`
        if key not in EXTENDABLE:
            raise UserError(
                f"--extend {key}: only {', '.join(EXTENDABLE)} can be extended; other keys of a run stay as they were"
            )
        active = length_key(p.train)
        if key != active:
            raise UserError(f"--extend {key}: {source} sets the run's length with {active}; extend {active} instead")
        name = key.split(".", 1)[1]
        old = getattr(p.train, name)
        if _magnitude(key, value) <= _magnitude(key, str(old)):
            raise UserError(f"--extend {key}={value}: must be larger than the run's {key} = {old}")
        new = value if key == "train.time_budget" else int(value)
        p = dataclasses.replace(p, train=dataclasses.replace(p.train, **{name: new}))
        changes.append(Extension(key, str(old), str(new)))
    return p, changes
