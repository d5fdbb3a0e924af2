"""Read TOML with file/line errors and write the small subset of TOML that segcli produces."""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from segcli.errors import PresetError


def load_toml(path: str | os.PathLike, error: type[Exception] = PresetError) -> dict[str, Any]:
    """Parse a TOML file; invalid TOML raises ``error`` naming the file and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: file not found") from None
    except UnicodeDecodeError as e:
        raise error(f"{path}: not UTF-8 text (byte {e.start}); save it as UTF-8") from None
    except OSError as e:
        raise error(f"{path}: cannot read ({e.strerror})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise error(f"{path}: invalid TOML: {e}") from None


def parse_toml_value(text: str) -> Any:
    """Parse one TOML value (``3``, ``0.1``, ``true``, ``[1, 2]``, ``"x"``); bare words stay strings."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _scalar(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_scalar(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_scalar(x)}" for k, x in v.items()) + " }"
    if v is None:
        raise TypeError("TOML has no null; leave the key out instead")
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def _key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() else json.dumps(k)


def dumps_toml(data: dict[str, Any], comments: dict[str, str] | None = None) -> str:
    """Serialise nested dicts: top-level scalars first, then one ``[table]`` per dict (None skipped)."""
    lines: list[str] = []

    def emit(table: dict[str, Any], prefix: str) -> None:
        subtables = []
        for k, v in table.items():
            if v is None:
                continue
            if isinstance(v, dict):
                subtables.append((k, v))
                continue
            lines.append(f"{_key(k)} = {_scalar(v)}")
        for k, v in subtables:
            name = f"{prefix}{_key(k)}"
            lines.append("")
            if comments and name in comments:
                lines.append(f"# {comments[name]}")
            lines.append(f"[{name}]")
            emit(v, f"{name}.")

    emit(data, "")
    return "\n".join(lines).lstrip("\n") + "\n"
