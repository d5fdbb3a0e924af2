"""`seg report RUN_DIR [--worst K] [--no-eval] [--device D]`: the run's self-contained report.html."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from segcli.cli._common import DeviceOpt, JsonOpt, err, examples_for, out, print_json


def report_cmd(
    run_dir: Path = typer.Argument(..., help="A run directory (runs/<name>/<N>)."),
    worst: int = typer.Option(8, "--worst", min=0, help="Validation images with the lowest mIoU to show (0: none)."),
    evaluate: bool = typer.Option(
        True, "--eval/--no-eval", help="Evaluate the best weights over the val split (per-class table, worst images)."
    ),
    device: str = DeviceOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Write <run>/report.html: preset, environment, timings, metrics per class, plots, worst images (one file)."""
    from segcli.report import build_report

    res = build_report(run_dir, worst=worst, evaluate=evaluate, device=device)
    if as_json:
        print_json(res.to_dict())
        return
    for section, reason in res.missing.items():
        err.print(f"[yellow]not available[/] {escape(section)}: {escape(reason)}")
    out.print(f"report: [bold]{escape(str(res.path))}[/]")


def register(app: typer.Typer) -> None:
    app.command("report", no_args_is_help=True, epilog=examples_for("report"))(report_cmd)
