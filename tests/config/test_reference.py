"""docs/config.md, rendered from the schema (segcli/config/reference.py)."""

from __future__ import annotations

from pathlib import Path

from segcli.config.reference import render_markdown

ROOT = Path(__file__).resolve().parents[2]


def test_config_reference_is_up_to_date() -> None:
    doc = ROOT / "docs" / "config.md"
    assert doc.is_file(), "run: python -m segcli.config.reference > docs/config.md"
    assert doc.read_text() == render_markdown(), (
        "docs/config.md is stale: python -m segcli.config.reference > docs/config.md"
    )
