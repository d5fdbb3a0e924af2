"""`seg crop-by-mask DIR --out DIR2 [--classes A,B] [--margin 0.1] [--square] [--size 512]`."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from segcli.cli._common import JsonOpt, err, examples_for, out, print_json, progress_bar, table
from segcli.cli.check import split_list


def crop_cmd(
    root: Path = typer.Argument(..., help="Source dataset folder."),
    out_dir: Path = typer.Option(
        ..., "--out", "-o", help="New (or empty) folder for the cropped dataset; an interrupted crop there is finished."
    ),
    classes: str = typer.Option(None, "--classes", help="Comma-separated class names (default: all but class 0)."),
    margin: float = typer.Option(0.1, "--margin", help="Margin on each side, as a fraction of the box size."),
    square: bool = typer.Option(False, "--square", help="Make crops square (padding: ignore_index / black)."),
    size: int = typer.Option(None, "--size", help="Resize so the long side is SIZE pixels (masks nearest)."),
    split: list[str] = typer.Option(None, "--split", help="Split(s) to crop (repeat or comma-separate; default all)."),
    as_json: bool = JsonOpt,
) -> None:
    """Crop every image and mask to the bounding box of the chosen classes; write a new dataset."""
    from segcli.data.crop import CropOptions, crop_by_mask

    names = [c.strip() for c in classes.split(",") if c.strip()] if classes else None
    options = CropOptions(classes=names, margin=margin, square=square, size=size, splits=split_list(split))
    with progress_bar("cropping", disable=as_json) as progress:
        res = crop_by_mask(root, out_dir, options, progress=progress)
    if as_json:
        print_json(res.to_dict())
        return
    skipped_per_split = {s: sum(k.startswith(f"{s}/") for k in res.skipped) for s in res.written}
    out.print(
        table(
            f"crops around {', '.join(res.classes)}",
            ["split", "written", "skipped (no such class)"],
            [[s, n, skipped_per_split[s]] for s, n in res.written.items()],
        )
    )
    if res.skipped:
        shown = ", ".join(res.skipped[:10]) + (f" ... (+{len(res.skipped) - 10})" if len(res.skipped) > 10 else "")
        err.print(f"[yellow]skipped[/] {len(res.skipped)} image(s) without the classes: {escape(shown)}")
    out.print(f"dataset written to [bold]{escape(str(res.out))}[/]")


def register(app: typer.Typer) -> None:
    app.command("crop-by-mask", no_args_is_help=True, epilog=examples_for("crop-by-mask"))(crop_cmd)
