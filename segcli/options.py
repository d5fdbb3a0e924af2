"""Declaring options: one field with a default, a one-line doc and optional numeric bounds.

Dependency-free, so the preset schema (:mod:`segcli.config.schema`) and the option dataclasses that
losses declare in their own files share it without the losses importing the config package.
"""

from __future__ import annotations

from dataclasses import field
from typing import Any


def opt(default: Any, doc: str, *, minimum: float | None = None, maximum: float | None = None) -> Any:
    """A dataclass field: default, one-line doc, optional numeric bounds (checked when a preset loads)."""
    meta = {"doc": doc, "minimum": minimum, "maximum": maximum}
    if isinstance(default, (list, dict)):
        raise TypeError("use tuples for sequence defaults; presets are immutable")
    return field(default=default, metadata=meta)
