"""Preset files written on the fly, shared by the tests of segcli.config."""

from __future__ import annotations

from pathlib import Path


def write(path: Path, text: str) -> Path:
    """``text`` into ``path`` (its folders made): a preset file, or a file a preset names."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
