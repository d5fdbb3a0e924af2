"""`seg prepare NAME ...`: convert a dataset into the segcli format (one sub-command per dataset)."""

from __future__ import annotations

from pathlib import Path

import typer

from segcli.cli._common import JsonOpt, err, out, print_json, table

prepare_app = typer.Typer(
    help="Convert a dataset into the segcli format (images/, masks/, dataset.toml).",
    no_args_is_help=True,
)


def show_summary(root: Path, as_json: bool, extra: dict | None = None) -> None:
    """Print images per split and pixel share per class of a prepared dataset."""
    from segcli.data.stats import dataset_summary

    summary = dataset_summary(root)
    if extra:
        summary.update(extra)
    if as_json:
        print_json(summary)
        return
    out.print(
        table(
            f"{summary['name']}: images per split", ["split", "images"], [[s, n] for s, n in summary["images"].items()]
        )
    )
    share = summary["pixel_share"]
    out.print(
        table("pixel share per class (all splits, ignore excluded)", ["class", "share"], [[c, share[c]] for c in share])
    )
    out.print(f"dataset written to [bold]{root}[/]")


@prepare_app.command("shapes")
def shapes(
    out_dir: Path = typer.Option(..., "--out", "-o", help="Folder to write the dataset to."),
    train: int = typer.Option(300, help="Number of training images."),
    val: int = typer.Option(100, help="Number of validation images."),
    size: int = typer.Option(128, help="Image side length in pixels."),
    seed: int = typer.Option(0, help="Random seed (same seed, same dataset)."),
    force: bool = typer.Option(False, "--force", help="Regenerate files that already exist."),
    as_json: bool = JsonOpt,
) -> None:
    """Built-in synthetic dataset of textured shapes (5 classes, some ignore pixels)."""
    from segcli.data.prepare.shapes import prepare_shapes

    with err.status("generating shapes..."):
        res = prepare_shapes(out_dir, train=train, val=val, size=size, seed=seed, force=force)
    if res.skipped and not as_json:
        err.print(f"{out_dir}: already prepared, nothing to do (--force regenerates)")
    show_summary(res.root, as_json, {"skipped": res.skipped})


def register(app: typer.Typer) -> None:
    app.add_typer(prepare_app, name="prepare")
