"""`seg infer WEIGHTS_OR_RUN INPUTS... --out DIR`."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer
from rich.progress import Progress

from segcli.cli._common import (
    Amp,
    AmpOpt,
    DeviceOpt,
    JsonOpt,
    SizeOpt,
    SlideOpt,
    StrideOpt,
    TileOpt,
    TtaOpt,
    TtaScalesOpt,
    err,
    hw,
    out,
    print_json,
    scales,
)


class ProbsFormat(str, Enum):
    """How ``--save probs`` writes probabilities."""

    auto = "auto"
    npy = "npy"
    png = "png"


def infer_cmd(
    weights: Path = typer.Argument(
        ..., help="Weights (.safetensors), a run directory, or an exported .onnx/.torchscript model."
    ),
    inputs: list[str] = typer.Argument(
        ..., help="Image or video files, folders, glob patterns; - reads paths from stdin."
    ),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Output folder (masks/, overlays/, ids/, probs/ inside)."),
    device: str = DeviceOpt,
    amp: Amp = AmpOpt,
    save: str = typer.Option(
        "mask,overlay", "--save", help="What to write, comma-separated: mask, overlay, ids, probs."
    ),
    alpha: float = typer.Option(0.5, "--alpha", min=0.0, max=1.0, help="Overlay opacity of the class colours."),
    alpha_bg: float = typer.Option(
        None, "--alpha-bg", min=0.0, max=1.0, help="Overlay opacity of class 0 (0 = background untinted)."
    ),
    legend: bool = typer.Option(
        False, "--legend/--no-legend", help="Overlays get a strip below naming the classes present (images only)."
    ),
    probs_format: ProbsFormat = typer.Option(
        ProbsFormat.auto,
        "--probs-format",
        help="--save probs as: npy (float16, classes first), png (8-bit: the foreground of a binary model, "
        "else one PNG per class), auto (png for a two-class model, else npy).",
    ),
    size: str = SizeOpt,
    slide: bool = SlideOpt,
    tile: str = TileOpt,
    stride: str = StrideOpt,
    tta: bool = TtaOpt,
    tta_scales: str = TtaScalesOpt,
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Images per forward pass."),
    workers: int = typer.Option(0, "--workers", min=0, help="Decode/encode threads (0 = up to 8, one per core)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing output files."),
    skip_existing: bool = typer.Option(
        False, "--skip-existing", help="Keep existing output files, write the missing ones (continue a stopped run)."
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Predict masks: palette PNGs (ids readable back), colour overlays, raw ids, probabilities; videos too."""
    from segcli.infer import predict

    with Progress(console=err, transient=True, disable=not err.is_terminal) as progress:
        task = progress.add_task("predicting", total=None)

        def step(i: int, n: int, src: Path) -> None:
            rate = progress.tasks[0].speed
            speed = f" {rate:.1f} images/s" if rate else ""
            progress.update(task, total=n, completed=i + 1, description=f"predicting {src.name}{speed}")

        res = predict(
            weights,
            inputs,
            out_dir,
            device=device,
            amp=amp.value if amp is not None else None,
            overwrite=overwrite,
            on_image=step,
            skip_existing=skip_existing,
            size=hw(size, "--size"),
            save=save,
            alpha=alpha,
            alpha_bg=alpha_bg,
            slide=slide,
            tile=hw(tile, "--tile"),
            stride=hw(stride, "--stride"),
            tta=tta,
            tta_scales=scales(tta_scales),
            batch_size=batch_size,
            workers=workers,
            legend=legend,
            probs_format=probs_format.value,
        )
    if as_json:
        print_json(res.to_dict())
        return
    if res.skipped:
        out.print(f"{len(res.skipped)} image(s) already done, skipped (--skip-existing)")
    d = res.to_dict()
    out.print(
        f"{d['images']} input(s) in {d['seconds']} s ({d['images_per_second']} images/s) → [bold]{res.out_dir}[/]"
    )


def register(app: typer.Typer) -> None:
    app.command("infer", no_args_is_help=True)(infer_cmd)
