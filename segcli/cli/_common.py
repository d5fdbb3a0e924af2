"""What every command shares: consoles, --json output, tables, the verbose flag."""

from __future__ import annotations

import math
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from segcli.io_utils import dumps_json

# Figures and tables go to stdout; progress and messages to stderr, so `--json` output stays clean.
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class _State:
    verbose: bool = False


state = _State()

JsonOpt = typer.Option(False, "--json", help="Print one JSON object on stdout instead of tables.")


def print_json(obj: Any) -> None:
    """One JSON object on stdout (NaN → null)."""
    typer.echo(dumps_json(obj))


def fmt(v: Any, digits: int = 4) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.{digits}f}"
    return str(v)


def table(title: str, columns: list[str], rows: list[list[Any]]) -> Table:
    t = Table(title=title, title_justify="left")
    for i, c in enumerate(columns):
        numeric = bool(rows) and all(isinstance(r[i], (int, float)) for r in rows)
        t.add_column(c, justify="right" if numeric else "left")
    for r in rows:
        t.add_row(*[fmt(v) for v in r])
    return t
