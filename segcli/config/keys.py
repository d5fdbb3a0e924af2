"""Short spellings of preset keys: bare leaf names (``epochs=3``), the words of the YOLO-style command line
(``imgsz=256``, ``batch=8``) and the "did you mean" of an unknown key, which prefers a key with the same leaf.

A bare key that is the leaf name of exactly one preset key (``epochs`` → ``train.epochs``) resolves to it, and
so does one listed in :data:`SHORT_KEYS`; each resolution is reported as a note, so nothing is guessed silently.
The Python API and the command line both call :func:`expand_short_keys` through ``load_preset``.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import re
import typing

from segcli.config.schema import Preset

# Short names that are not a unique leaf, or are another tool's word for a preset key: name → dotted key.
SHORT_KEYS: dict[str, str] = {
    "batch_size": "data.batch_size",  # eval.batch_size too: a training batch is meant
    "batch": "data.batch_size",
    "imgsz": "augment.crop_size",  # the YOLO tool's training size: one number is a square crop
    "name": "train.name",  # the run's name (model.name is the architecture)
    "data": "data.root",
    "workers": "data.num_workers",
}

# Keys whose value is a [height, width] pair: a short key there also takes one number, H,W or HxW.
_PAIR_KEYS = frozenset({"augment.crop_size"})
_PAIR = re.compile(r"\s*(\d+)\s*(?:[xX,]\s*(\d+))?\s*")


@functools.cache
def preset_keys() -> tuple[str, ...]:
    """Every dotted leaf key of the preset schema (``train.epochs``, ...), loss term tables excluded."""
    return tuple(_keys(Preset, ""))


def _keys(cls: type, prefix: str) -> list[str]:
    """The dotted leaf keys below ``cls`` (nested tables such as ``train.distill`` followed into)."""
    keys: list[str] = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.metadata.get("tables"):
            continue
        keys += (
            _keys(hints[f.name], f"{prefix}{f.name}.") if dataclasses.is_dataclass(hints[f.name]) else [prefix + f.name]
        )
    return keys


def _leaf(dotted: str) -> str:
    return dotted.rsplit(".", 1)[-1]


def short_key(name: str) -> str | None:
    """The dotted key a bare ``name`` stands for, or None (a section name, an ambiguous or unknown leaf)."""
    if name in SHORT_KEYS:
        return SHORT_KEYS[name]
    same = [k for k in preset_keys() if _leaf(k) == name]
    return same[0] if len(same) == 1 else None


def _pair_value(value: str) -> str:
    m = _PAIR.fullmatch(value)
    if not m:
        return value
    h = m.group(1)
    return f"[{h}, {m.group(2) or h}]"


def expand_short_keys(overrides: list[str] | tuple[str, ...]) -> tuple[list[str], list[str]]:
    """``["epochs=3", "train.seed=1"]`` → (``["train.epochs=3", "train.seed=1"]``, one note per bare key read
    as a full key). Sections (``train=3``) and unknown names are left for the loader to reject."""
    sections = {f.name for f in dataclasses.fields(Preset)}
    out: list[str] = []
    notes: list[str] = []
    for item in overrides:
        key, sep, value = item.partition("=")
        name = key.strip()
        target = short_key(name) if sep and name and "." not in name and name not in sections else None
        if target is None and sep and name == "data":  # `data=DIR`: the YOLO tool's dataset argument
            target = SHORT_KEYS["data"]
        if target is None:
            out.append(item)
            continue
        if target in _PAIR_KEYS:
            value = _pair_value(value)
        out.append(f"{target}={value}")
        notes.append(f"{item.strip()} read as {target}={value.strip()}")
    return out, notes


def suggest_key(dotted: str, options: list[str] | tuple[str, ...]) -> str:
    """' (did you mean "x"?)' for an unknown ``dotted`` key, '' when nothing is close.

    In order: a short key of that leaf name (``data.batch`` → data.batch_size), the one key elsewhere with the
    same leaf (``data.epochs`` → train.epochs), a key of the same section that starts with the leaf or has it as
    a word (``train.epoch`` → train.epochs), the closest of ``options``, the closest leaf of any key
    (``epoch`` → train.epochs)."""
    leaf = _leaf(dotted)
    named = short_key(leaf) if leaf != "name" else None  # `loss.name`: train.name would mislead
    if named is not None and named != dotted:
        return f' (did you mean "{named}"?)'
    words = [o for o in options if _leaf(o).startswith(leaf) or leaf in _leaf(o).split("_")]
    close = difflib.get_close_matches(dotted, words, n=1, cutoff=0.0) or difflib.get_close_matches(
        dotted, list(options), n=1, cutoff=0.6
    )
    if not close:
        leaves = {_leaf(k): k for k in reversed(preset_keys())}
        near = difflib.get_close_matches(leaf, list(leaves), n=1, cutoff=0.75)
        close = [leaves[near[0]]] if near else []
    return f' (did you mean "{close[0]}"?)' if close else ""
