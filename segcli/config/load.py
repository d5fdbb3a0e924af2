"""Load presets: TOML files with ``extends``, ``key=value`` overrides, strict typed validation.

After the types and ranges, :func:`segcli.config.validate.validate_preset` checks everything else
(registry names, cross-field rules, durations, files), so a preset that loads is one the engine runs.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union

from segcli.config.keys import expand_short_keys, suggest_key
from segcli.config.schema import MOVED_KEYS, AugmentConfig, MetaConfig, ModelConfig, Preset, _loss_options
from segcli.config.toml_io import dumps_toml, load_toml, parse_toml_value
from segcli.config.validate import CLI, resolve_length, resolve_normalisation, validate_preset, where
from segcli.errors import PresetError, UserError
from segcli.registry import did_you_mean

MAX_INT = 2**53  # an integer key without its own maximum: beyond this a typo or pasted number would fail late


def presets_dir() -> Path:
    """The bundled presets: the repository's ``presets/`` in a checkout, else the installed copy."""
    here = Path(__file__).resolve().parent.parent
    for cand in (here.parent / "presets", here / "_presets"):
        if cand.is_dir():
            return cand
    return here.parent / "presets"


def list_presets() -> list[Path]:
    """Every bundled preset file (``_base/`` excluded)."""
    d = presets_dir()
    return sorted(d.glob("*.toml")) if d.is_dir() else []


def resolve_preset_path(name_or_path: str | os.PathLike) -> Path:
    """A path to an existing file, or the name of a bundled preset (``quickstart``)."""
    p = Path(name_or_path)
    if p.is_file():
        return p
    if p.suffix == ".toml" or len(p.parts) > 1:
        if (presets_dir() / p.name).is_file() and not p.exists():
            return presets_dir() / p.name
        raise PresetError(f"{p}: preset file not found")
    cand = presets_dir() / f"{p.name}.toml"
    if cand.is_file():
        return cand
    names = [q.stem for q in list_presets()]
    raise PresetError(
        f"preset {str(name_or_path)!r} not found{did_you_mean(str(name_or_path), names)}; "
        f"bundled presets: {', '.join(names) or 'none'} (or give a path to a .toml file)"
    )


def _read_with_extends(path: Path, origin: dict[str, str], stack: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Load ``path``, deep-merging the files it ``extends`` (relative to it) underneath."""
    path = path.resolve()
    if path in stack:
        chain = " -> ".join(str(p) for p in (*stack, path))
        raise PresetError(f"{path}: 'extends' forms a cycle: {chain}")
    raw = load_toml(path)
    if not raw:
        raise PresetError(
            f"{path}: preset file is empty; start from `seg presets show quickstart > {path.name}` and edit it"
        )
    ext = raw.pop("extends", [])
    bases = [ext] if isinstance(ext, str) else ext
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise PresetError(f"{path}: 'extends' must be a file name or a list of file names")
    merged: dict[str, Any] = {}
    for base in bases:
        base_path = path.parent / base
        if not base_path.is_file():
            raise PresetError(f"{path}: extends {base!r}, but {base_path} does not exist")
        _deep_merge(merged, _read_with_extends(base_path, origin, (*stack, path)))
    _record_origin(raw, str(path), origin)
    _deep_merge(merged, raw)
    return merged


def _record_origin(raw: dict[str, Any], source: str, origin: dict[str, str], prefix: str = "") -> None:
    for k, v in raw.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            _record_origin(v, source, origin, key + ".")
        else:
            origin[key] = source


def _deep_merge(dst: dict[str, Any], src: dict[str, Any]) -> None:
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            _deep_merge(dst[k], v)
        else:
            dst[k] = v


@dataclass(frozen=True)
class _CliText:
    """An override value as typed on the command line (kept raw for str fields)."""

    text: str


def parse_overrides(items: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``["train.epochs=3", "data.root=/x"]`` → nested dict of raw values."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise PresetError(f"override {item!r} is not key=value (for example train.epochs=3 or data.root=/path)")
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise PresetError(f"override {item!r} conflicts with an earlier override of {part!r}")
        node[parts[-1]] = _CliText(value.strip())
    return out


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is tuple:
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    return {int: "integer", float: "number", str: "string", bool: "true/false"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


class _Mismatch(Exception):
    pass


def _coerce(value: Any, tp: Any) -> Any:
    """Return ``value`` as type ``tp`` or raise _Mismatch."""
    if isinstance(value, _CliText):
        if tp is str:
            return value.text
        value = parse_toml_value(value.text)
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return _coerce(value, arg)
            except _Mismatch:
                continue
        raise _Mismatch
    if origin is Literal:
        if value in typing.get_args(tp) and type(value) is type(typing.get_args(tp)[0]):
            return value
        raise _Mismatch
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise _Mismatch
        (elem,) = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return tuple(_coerce(v, elem) for v in value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _Mismatch
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise _Mismatch
    if tp is str:
        if isinstance(value, str):
            return value
        raise _Mismatch
    if dataclasses.is_dataclass(tp):
        if isinstance(value, dict):
            return value  # handled by _build
        raise _Mismatch
    raise TypeError(f"unsupported schema type {tp!r}")


def _show(value: Any) -> str:
    if isinstance(value, _CliText):
        return repr(value.text)
    return repr(value) if not isinstance(value, dict) else "a table"


def _build(cls: type, raw: dict[str, Any], origin: dict[str, str], prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    tables = next((f for f in fields.values() if f.metadata.get("tables")), None)
    kwargs: dict[str, Any] = {}
    built_tables: list[tuple[str, Any]] = []
    for key, value in raw.items():
        dotted = f"{prefix}{key}"
        at = where(origin, dotted)
        if dotted in MOVED_KEYS:
            raise PresetError(f"{at}: {_moved(dotted)}")
        if tables is not None and (key not in fields or key == tables.name) and isinstance(value, dict):
            built_tables.append((key, _build_table(tables, key, value, origin, dotted)))
            continue
        if key not in fields or fields[key] is tables:
            options = [f"{prefix}{k}" for k, f in fields.items() if f is not tables]
            what = "section" if not prefix else "key"
            extra = f"; options of a term go in its table [{prefix}<term>]" if tables is not None else ""
            raise PresetError(
                f"{at}: unknown {what} {dotted!r}{suggest_key(dotted, options)}; valid: {', '.join(options)}{extra}"
            )
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, dict):
                raise PresetError(f"{at}: {dotted!r} must be a table [{dotted}], got {_show(value)}")
            kwargs[key] = _build(tp, value, origin, dotted + ".")
            continue
        section = prefix.rstrip(".") or "top level"
        try:
            coerced = _coerce(value, tp)
        except _Mismatch:
            raise PresetError(
                f"{at}: [{section}] {key} = {_show(value)} has the wrong type; expected {_type_name(tp)}"
            ) from None
        meta = fields[key].metadata
        lo, hi = meta.get("minimum"), meta.get("maximum")
        if isinstance(coerced, float) and not math.isfinite(coerced):  # nan passes every comparison
            raise PresetError(f"{at}: [{section}] {key} = {coerced!r} must be a finite number")
        if isinstance(coerced, (int, float)) and not isinstance(coerced, bool):
            if (lo is not None and coerced < lo) or (hi is not None and coerced > hi):
                bounds = f">= {lo}" if hi is None else (f"<= {hi}" if lo is None else f"in [{lo}, {hi}]")
                raise PresetError(f"{at}: [{section}] {key} = {coerced!r} is out of range; must be {bounds}")
        if isinstance(coerced, int) and not isinstance(coerced, bool) and abs(coerced) > MAX_INT:
            raise PresetError(f"{at}: [{section}] {key} = {coerced} is out of range; must be at most {MAX_INT:,}")
        kwargs[key] = coerced
    if built_tables:
        kwargs[tables.name] = tuple(sorted(built_tables, key=lambda kv: kv[0]))
    try:
        return cls(**kwargs)
    except ValueError as e:  # an options dataclass's own cross-field check (__post_init__)
        section = prefix.rstrip(".") or "top level"
        raise PresetError(f"{where(origin, section)}: [{section}] {e}") from None


def _build_table(
    tables: dataclasses.Field, key: str, value: dict[str, Any], origin: dict[str, str], dotted: str
) -> Any:
    """A ``[section.<name>]`` table checked against the options dataclass registered for ``name``."""
    try:
        options_cls = tables.metadata["tables"](key)
    except UserError as e:
        raise PresetError(f"{where(origin, dotted)}: table [{dotted}]: {e}") from None
    return _build(options_cls, value, origin, dotted + ".")


def _moved(dotted: str) -> str:
    """``loss.focal_gamma moved to [loss.focal] gamma; on the command line: loss.focal.gamma=...``"""
    section = dotted.rsplit(".", 1)[0]
    (term, key), *more = MOVED_KEYS[dotted]
    also = f" (and {', '.join(f'[{section}.{t}] {k}' for t, k in more)})" if more else ""
    return f"{dotted} moved to [{section}.{term}] {key}{also}; on the command line: {section}.{term}.{key}=..."


def _migrate_moved_keys(raw: dict[str, Any]) -> None:
    """Move the flat keys of a preset written before they moved into the tables of the terms it uses."""
    for dotted, targets in MOVED_KEYS.items():
        section, key = dotted.rsplit(".", 1)
        table = raw.get(section)
        if not isinstance(table, dict) or key not in table:
            continue
        value = table.pop(key)
        for term, option in targets:
            if term in table.get("terms", ("ce",)):
                table.setdefault(term, {}).setdefault(option, value)


def preset_meta(name_or_path: str | os.PathLike) -> MetaConfig:
    """The ``[meta]`` table of a preset (``extends`` merged, types checked) without validating the rest, so
    listing presets needs neither their files nor the model registry."""
    origin: dict[str, str] = {}
    path = resolve_preset_path(name_or_path)
    raw = _read_with_extends(path, origin).get("meta", {})
    if not isinstance(raw, dict):
        raise PresetError(f"{path}: 'meta' must be a table [meta]")
    return _build(MetaConfig, raw, origin, "meta.")


@dataclass(frozen=True)
class PresetSummary:
    """What a preset trains, as `seg presets list` shows it: the model, its backbone ("" when the model has its
    own), whether the backbone starts pretrained, and the training crop."""

    model: str
    backbone: str
    pretrained: bool
    crop: tuple[int, ...]


def preset_summary(name_or_path: str | os.PathLike) -> PresetSummary:
    """Model, backbone and crop of a preset (``extends`` merged, the schema's defaults where it sets none) without
    validating the rest, as :func:`preset_meta` reads its ``[meta]``."""
    from segcli.models import MODELS

    raw = _read_with_extends(resolve_preset_path(name_or_path), {})
    model, augment = raw.get("model", {}), raw.get("augment", {})
    name = str(model.get("name", ModelConfig.name))
    own = name in MODELS and not MODELS.info(name).timm_encoder
    return PresetSummary(
        model=name,
        backbone="" if own else str(model.get("backbone", ModelConfig.backbone)),
        pretrained=not own and bool(model.get("pretrained", ModelConfig.pretrained) or model.get("pretrained_file")),
        crop=tuple(augment.get("crop_size", AugmentConfig.crop_size)),
    )


@dataclass(frozen=True)
class LoadedPreset:
    """A validated preset, where it came from, and a note per short override key read as a full one
    (``epochs=3 read as train.epochs=3``) for the caller to show."""

    preset: Preset
    path: Path | None
    overrides: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def stem(self) -> str:
        return self.path.stem if self.path else "preset"


def load_preset(
    name_or_path: str | os.PathLike | None, overrides: list[str] | tuple[str, ...] = (), *, check_files: bool = True
) -> LoadedPreset:
    """Resolve, merge ``extends``, apply overrides and validate. ``None`` starts from the defaults.

    An override may name a key by its short name (``epochs=3``, ``imgsz=256``: :mod:`segcli.config.keys`).
    ``check_files=False`` (showing a preset) leaves out the files it names: a class-weights file made from the
    dataset need not exist to read the recipe; training reports it when it starts. Packages are always checked."""
    origin: dict[str, str] = {}
    path = resolve_preset_path(name_or_path) if name_or_path is not None else None
    raw = _read_with_extends(path, origin) if path else {}
    overrides, notes = expand_short_keys(overrides)
    cli = parse_overrides(overrides)
    _record_origin(cli, CLI, origin)
    _deep_merge(raw, cli)
    preset = _build(Preset, raw, origin, "")
    source = str(path) if path else CLI
    validate_preset(preset, origin, default=source, check_files=check_files, check_packages=True)
    preset = dataclasses.replace(
        preset,
        train=resolve_length(preset.train, origin, source),
        model=resolve_normalisation(preset.model, preset.data.channels, preset.data.root),
    )
    return LoadedPreset(preset=_with_term_tables(preset), path=path, overrides=tuple(overrides), notes=tuple(notes))


def preset_from_dict(
    raw: dict[str, Any], source: str = "checkpoint", *, check_files: bool = False, resuming: bool = False
) -> Preset:
    """Validate an already-parsed preset dict (for example one stored in a checkpoint).

    The files it names (class weights, pretrained backbone) are not checked unless ``check_files``:
    a checkpoint's model does not need them. Flat keys that have since moved (``loss.ohem_thresh``)
    are moved into their tables, so older checkpoints still load.
    """
    raw = copy.deepcopy(raw)
    _migrate_moved_keys(raw)
    origin: dict[str, str] = {}
    _record_origin(raw, source, origin)
    preset = _build(Preset, raw, origin, "")
    validate_preset(preset, origin, check_files=check_files, default=source, resuming=resuming)
    preset = dataclasses.replace(  # resolved: the budget wins; mean/std "auto" (none before it existed) → numbers
        preset, train=resolve_length(preset.train), model=resolve_normalisation(preset.model, preset.data.channels)
    )
    return _with_term_tables(preset)


def _with_term_tables(preset: Preset) -> Preset:
    """Give every term in ``loss.terms`` its table, with the defaults where the preset has none, so the
    resolved preset (a run's preset.toml, a checkpoint's metadata) records every option in force."""
    loss = preset.loss
    have = dict(loss.tables)
    missing = {t: _loss_options(t)() for t in loss.terms if t not in have}
    if not missing:
        return preset
    tables = tuple(sorted({**have, **missing}.items()))
    return dataclasses.replace(preset, loss=dataclasses.replace(loss, tables=tables))


def _to_dict(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if f.metadata.get("tables"):
            out.update({name: dataclasses.asdict(options) for name, options in value})
        elif dataclasses.is_dataclass(value):
            out[f.name] = _to_dict(value)
        else:
            out[f.name] = value
    return out


def preset_to_dict(preset: Preset) -> dict[str, Any]:
    """The preset as nested dicts, as in TOML: a term's options are the table ``loss.<term>``."""
    return _to_dict(preset)


def preset_to_toml(preset: Preset, header: str = "") -> str:
    """The fully resolved preset as TOML (loads back to an equal Preset)."""
    docs = {f.name: " ".join((f.metadata.get("doc") or "").split()) for f in dataclasses.fields(Preset)}
    text = dumps_toml(preset_to_dict(preset), comments=docs)
    return (f"# {header}\n" if header else "") + text
