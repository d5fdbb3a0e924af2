"""Generate the config reference (docs/config.md) from the schema, so it never drifts.

Run ``python -m segcli.config.reference > docs/config.md`` after changing the schema.
"""

from __future__ import annotations

import dataclasses
import typing

from segcli.config.load import _type_name
from segcli.config.schema import Preset


def _default(value: object) -> str:
    if isinstance(value, tuple):
        return "[" + ", ".join(repr(v) if isinstance(v, str) else str(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


def _rows(cls: type) -> list[str]:
    """The key table of one schema or options dataclass (the per-term tables field is left out)."""
    out = ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.metadata.get("tables") or dataclasses.is_dataclass(hints[f.name]):
            continue
        doc = f.metadata.get("doc", "")
        lo, hi = f.metadata.get("minimum"), f.metadata.get("maximum")
        if lo is not None or hi is not None:
            doc += f" (range: {'' if lo is None else lo}..{'' if hi is None else hi})"
        out.append(f"| `{f.name}` | {_type_name(hints[f.name])} | `{_default(f.default)}` | {doc} |")
    return out


def _loss_tables() -> list[str]:
    """One section per registered loss: its ``[loss.<term>]`` table, from the options it registered."""
    from segcli.losses import LOSSES, loss_options

    out = []
    for name in LOSSES.names():
        cls = loss_options(name)
        out += [f"### [loss.{name}]", "", " ".join((cls.__doc__ or "").split()), ""]
        out += (_rows(cls) if dataclasses.fields(cls) else ["No options."]) + [""]
    return out


def render_markdown() -> str:
    """Every section and key of a preset with type, default and meaning, as Markdown."""
    out = [
        "# Preset reference",
        "",
        "Generated from `segcli/config/schema.py` and the options each loss registers by",
        "`python -m segcli.config.reference`; do not edit.",
        "",
        'A preset is a TOML file. `extends = "base.toml"` (or a list) deep-merges other files first,',
        "relative to the preset. Any key can be overridden on the command line as `section.key=value`,",
        "for example `seg train presets/quickstart.toml train.epochs=3 data.root=/data/shapes`.",
        "",
    ]
    hints = typing.get_type_hints(Preset)
    for sec in dataclasses.fields(Preset):
        cls = hints[sec.name]
        out += [f"## [{sec.name}]", "", " ".join((cls.__doc__ or "").split()), "", *_rows(cls), ""]
        for sub in dataclasses.fields(cls):  # nested tables: [train.distill]
            sub_cls = typing.get_type_hints(cls)[sub.name]
            if dataclasses.is_dataclass(sub_cls):
                doc = " ".join((sub_cls.__doc__ or "").split())
                out += [f"### [{sec.name}.{sub.name}]", "", doc, "", *_rows(sub_cls), ""]
        if sec.name == "loss":
            out += _loss_tables()
    return "\n".join(out)


if __name__ == "__main__":
    print(render_markdown(), end="")
