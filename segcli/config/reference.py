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


def render_markdown() -> str:
    """Every section and key of a preset with type, default and meaning, as Markdown."""
    out = [
        "# Preset reference",
        "",
        "Generated from `segcli/config/schema.py` by `python -m segcli.config.reference`; do not edit.",
        "",
        'A preset is a TOML file. `extends = "base.toml"` (or a list) deep-merges other files first,',
        "relative to the preset. Any key can be overridden on the command line as `section.key=value`,",
        "for example `seg train presets/quickstart.toml train.epochs=3 data.root=/data/shapes`.",
        "",
    ]
    hints = typing.get_type_hints(Preset)
    for sec in dataclasses.fields(Preset):
        cls = hints[sec.name]
        out += [
            f"## [{sec.name}]",
            "",
            (cls.__doc__ or "").strip(),
            "",
            "| key | type | default | meaning |",
            "| --- | --- | --- | --- |",
        ]
        sub_hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            doc = f.metadata.get("doc", "")
            lo, hi = f.metadata.get("minimum"), f.metadata.get("maximum")
            if lo is not None or hi is not None:
                doc += f" (range: {'' if lo is None else lo}..{'' if hi is None else hi})"
            out.append(f"| `{f.name}` | {_type_name(sub_hints[f.name])} | `{_default(f.default)}` | {doc} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(render_markdown(), end="")
