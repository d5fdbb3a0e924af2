"""`seg class-weights DIR --method ...`: per-class loss weights written to a TOML file."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from segcli.cli._common import JsonOpt, err, examples_for, out, print_json, progress_bar, table


def class_weights_cmd(
    root: Path = typer.Argument(..., help="Dataset folder."),
    method: str = typer.Option(..., "--method", "-m", help="inv | inv-sqrt | inv-log | effective-num | median-freq."),
    split: str = typer.Option("train", "--split", help="Split to count."),
    beta: float = typer.Option(0.999, "--beta", help="effective-num: beta in (0, 1)."),
    out_file: Path = typer.Option(None, "--out", "-o", help="TOML file (default <DIR>/class_weights_<method>.toml)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output file."),
    force: bool = typer.Option(False, "--force", hidden=True, help="Old name of --overwrite."),
    no_normalize: bool = typer.Option(False, "--no-normalize", help="Keep raw weights (default: mean 1 over present)."),
    workers: int = typer.Option(2, "--workers", min=0, help="Worker processes besides this one (0 = in this process)."),
    as_json: bool = JsonOpt,
) -> None:
    """Class weights (inverse frequency, ENet log, effective number, median frequency) for loss.class_weights."""
    from segcli.data.class_weights import WeightOptions, class_weights

    options = WeightOptions(split=split, beta=beta, normalize=not no_normalize, workers=workers)
    with progress_bar("counting pixels", disable=as_json) as progress:
        res = class_weights(root, method, options, out=out_file, force=overwrite or force, progress=progress)
    if res.missing:
        err.print(
            f"[yellow]warning:[/] {len(res.missing)} class(es) have no pixels in {res.split!r} and get weight 0: "
            f"{escape(', '.join(res.missing))}"
        )
    if as_json:
        print_json(res.to_dict())
        return
    total = max(sum(res.pixels), 1)
    rows = [[c, n, n / total, w] for c, n, w in zip(res.classes, res.pixels, res.weights)]
    title = f"{res.method} weights over {res.split!r} ({res.images} images; {res.normalization})"
    out.print(table(title, ["class", "pixels", "share", "weight"], rows))
    out.print(f'written to [bold]{escape(str(res.out))}[/] (use loss.class_weights = "{escape(str(res.out))}")')


def register(app: typer.Typer) -> None:
    app.command("class-weights", no_args_is_help=True, epilog=examples_for("class-weights"))(class_weights_cmd)
