"""`seg check DIR [--split S] [--sample N] [--json]`: lint a dataset folder (exit 2 on errors)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from segcli.cli._common import JsonOpt, examples_for, out, print_json


def split_list(values: list[str] | None) -> list[str] | None:
    """``--split a --split b`` or ``--split a,b`` as one list (None when not given)."""
    if not values:
        return None
    return [s.strip() for v in values for s in v.split(",") if s.strip()]


def check_cmd(
    root: Path = typer.Argument(..., help="Dataset folder (dataset.toml, images/<split>/, masks/<split>/)."),
    split: list[str] = typer.Option(None, "--split", help="Split(s) to check (repeat or comma-separate; default all)."),
    sample: int = typer.Option(None, "--sample", min=1, help="Decode only N random pairs per split (default all)."),
    as_json: bool = JsonOpt,
) -> None:
    """Find data problems: palette/RGB masks, 0/255 binary masks, raw Cityscapes ids, bad values, sizes, files."""
    from segcli.data.lint import lint_dataset, summarise

    findings = lint_dataset(root, split_list(split), sample=sample)
    counts = summarise(findings)
    if as_json:
        print_json({"root": str(root), "sample": sample, **counts, "findings": [f.to_dict() for f in findings]})
    else:
        for f in findings:
            colour = "red" if f.severity == "error" else "yellow"
            out.print(f"[bold {colour}]{f.severity}[/] [bold]{f.code}[/]: {escape(f.message)}")
            for path in f.files:
                out.print(f"    {escape(path)}")
            if f.files and f.count > len(f.files):
                out.print(f"    ... {f.count - len(f.files)} more")
            out.print(f"    [cyan]fix:[/] {escape(f.fix)}")
        scope = f"{sample} sampled pairs per split" if sample else "every file"
        verdict = f"{counts['errors']} error(s), {counts['warnings']} warning(s)"
        if not findings:
            verdict = "[green]no problems found[/]"
        out.print(f"{escape(str(root))}: {verdict} ({scope} checked)")
    if counts["errors"]:
        raise typer.Exit(2)


def register(app: typer.Typer) -> None:
    app.command("check", no_args_is_help=True, epilog=examples_for("check"))(check_cmd)
