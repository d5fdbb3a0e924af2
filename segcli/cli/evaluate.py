"""`seg eval WEIGHTS_OR_RUN [--data DIR] [--split val]`."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from segcli.cli._common import (
    Absent,
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
    hw,
    out,
    print_json,
    scales,
    table,
)


class Weights(str, Enum):
    """Which of a run's weights to evaluate."""

    best = "best"
    last = "last"
    ema = "ema"


def eval_cmd(
    weights: Path = typer.Argument(
        ..., help="Weights (.safetensors), a run directory, or an exported .onnx/.torchscript model."
    ),
    data: Path = typer.Option(None, "--data", help="Dataset folder (default: the one the model was trained on)."),
    split: str = typer.Option("val", "--split", help="Split to evaluate."),
    device: str = DeviceOpt,
    batch_size: int = typer.Option(None, "--batch-size", min=1, help="Images per batch (default: preset's eval)."),
    absent: Absent = typer.Option(
        None, "--absent", help="IoU of a class absent from both GT and prediction (default: the preset's eval)."
    ),
    amp: Amp = AmpOpt,
    workers: str = typer.Option(
        "auto",
        "--workers",
        metavar="N|auto",
        help="Data-loading worker processes (0 = load in this process; auto = the usable cores less one, "
        "shared among torchrun's processes).",
    ),
    report: Path = typer.Option(None, "--out", help="Where to write the JSON report (default: inside the run)."),
    weights_choice: Weights = typer.Option(
        None, "--weights", help="Which weights of a run: best, last or ema (default: best, else last)."
    ),
    size: str = SizeOpt,
    slide: bool = SlideOpt,
    tile: str = TileOpt,
    stride: str = StrideOpt,
    tta: bool = TtaOpt,
    tta_scales: str = TtaScalesOpt,
    worst: int = typer.Option(0, "--worst", min=0, help="List the K images with the lowest mIoU (overlays too)."),
    as_json: bool = JsonOpt,
) -> None:
    """Metrics over a split from one confusion matrix: pixel acc, mAcc, mIoU, fwIoU, mDice, per class.

    Under torchrun (``torchrun --nproc-per-node N -m segcli eval RUN``) each process evaluates a shard and
    the confusion matrices are summed; rank 0 writes the report."""
    from segcli.infer import evaluate

    res = evaluate(
        weights,
        data,
        split,
        device=device,
        batch_size=batch_size,
        absent=absent.value if absent is not None else None,
        amp=amp.value if amp is not None else None,
        num_workers=workers,
        out=report,
        size=hw(size, "--size"),
        weights=weights_choice.value if weights_choice is not None else None,
        slide=slide,
        tile=hw(tile, "--tile"),
        stride=hw(stride, "--stride"),
        tta=tta,
        tta_scales=scales(tta_scales),
        worst=worst,
    )
    if res.rank != 0:  # under torchrun rank 0 alone reports
        return
    if as_json:
        print_json(res.to_dict())
        return
    m = res.metrics
    out.print(
        table(
            f"{res.split}: {m['images']} images, {m['pixels']} labelled pixels",
            ["metric", "value"],
            [
                ["pixel accuracy", m["pixel_accuracy"]],
                ["mean accuracy", m["mean_accuracy"]],
                ["mIoU", m["mIoU"]],
                ["fwIoU", m["fwIoU"]],
                ["mean Dice", m["mean_dice"]],
            ],
        )
    )
    out.print(
        table(
            "per class",
            ["class", "IoU", "precision", "recall", "Dice", "pixels"],
            [[c["class"], c["iou"], c["precision"], c["recall"], c["dice"], c["pixels"]] for c in m["per_class"]],
        )
    )
    if m.get("worst"):
        out.print(
            table(
                f"worst {len(m['worst'])} images",
                ["image", "mIoU", "overlay"],
                [[w["image"], w["mIoU"], w["overlay"]] for w in m["worst"]],
            )
        )
    out.print(f"protocol: {m.get('protocol')}")
    out.print(f"conventions: {m['conventions']}")
    out.print(f"report: [bold]{res.report}[/]")
    if m.get("confusion_png"):
        out.print(f"confusion matrix: [bold]{m['confusion_png']}[/]")


def register(app: typer.Typer) -> None:
    app.command("eval", no_args_is_help=True)(eval_cmd)
