"""`seg browse DATA [--preset P] [--split S] [--n N] [--out DIR]`: grids of images with their masks overlaid."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from segcli.cli._common import JsonOpt, examples_for, out, print_json


def browse_cmd(
    data: Path = typer.Argument(..., help="Dataset folder in the segcli format (dataset.toml, images/, masks/)."),
    preset: str = typer.Option(
        None, "--preset", help="Show the samples after this preset's training augmentation (name or .toml)."
    ),
    split: str = typer.Option(None, "--split", help="Split to show (default: the preset's train split, else train)."),
    n: int = typer.Option(16, "--n", min=1, help="Images to show, spread evenly over the split."),
    out_dir: Path = typer.Option(None, "--out", help="Folder for the pages (default: browse/<dataset name>)."),
    cols: int = typer.Option(4, "--cols", min=1, help="Tiles per row."),
    rows: int = typer.Option(4, "--rows", min=1, help="Rows per page (more images make more pages)."),
    tile: int = typer.Option(256, "--tile", min=16, help="Tile size in pixels (images fitted, aspect kept)."),
    alpha: float = typer.Option(0.5, "--alpha", min=0.0, max=1.0, help="Mask opacity over the image."),
    seed: int = typer.Option(0, "--seed", help="Augmentation seed (sample i uses seed + i)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace pages already in --out."),
    as_json: bool = JsonOpt,
) -> None:
    """Look at a dataset: images with masks overlaid and a legend, optionally as the model sees them."""
    from segcli.report import PageLayout, browse

    layout = PageLayout(cols=cols, rows=rows, tile=tile, alpha=alpha)
    res = browse(data, preset, split, n=n, out=out_dir, overwrite=overwrite, layout=layout, seed=seed)
    if as_json:
        print_json(res.to_dict())
        return
    what = "after the training augmentation" if res.augmented else "as stored"
    out.print(f"{res.images} {escape(res.split)} images {what} on {len(res.files)} page(s):")
    for f in res.files:
        out.print(f"  [bold]{escape(str(f))}[/]")


def register(app: typer.Typer) -> None:
    app.command("browse", no_args_is_help=True, epilog=examples_for("browse"))(browse_cmd)
