"""docs/config.md, rendered from the schema (segcli/config/reference.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from segcli.config.reference import render_markdown
from segcli.config.schema import Preset
from segcli.losses import LOSSES

ROOT = Path(__file__).resolve().parents[2]


def test_config_reference_is_up_to_date() -> None:
    doc = ROOT / "docs" / "config.md"
    assert doc.is_file(), "run: python -m segcli.config.reference > docs/config.md"
    assert doc.read_text() == render_markdown(), (
        "docs/config.md is stale: python -m segcli.config.reference > docs/config.md"
    )


def test_every_section_key_and_loss_table_is_documented() -> None:
    doc = render_markdown()
    for section in dataclasses.fields(Preset):
        assert f"## [{section.name}]\n" in doc
        for f in dataclasses.fields(section.default_factory):
            if dataclasses.is_dataclass(f.default_factory):  # a nested table: [train.distill]
                assert f"### [{section.name}.{f.name}]\n" in doc
                assert all(f"| `{g.name}` |" in doc for g in dataclasses.fields(f.default_factory))
            elif not f.metadata.get("tables"):
                assert f"| `{f.name}` |" in doc, f"{section.name}.{f.name}"
    for name in LOSSES.names():
        assert f"### [loss.{name}]\n" in doc
    assert doc.index("## [loss]") < doc.index(f"### [loss.{LOSSES.names()[0]}]") < doc.index("## [optim]")


def test_rows_show_type_default_and_range() -> None:
    doc = render_markdown()
    assert "| `epochs` | integer | `10` | " in doc and "(range: 1..)" in doc
    assert "| `reported_miou` | number | `0.0` | " in doc and "(range: 0.0..100.0)" in doc
    assert "| `mean` | list of number or one of 'auto' | `\"auto\"` |" in doc
    assert "| `terms` | list of string | `['ce']` |" in doc
