"""`seg eval WEIGHTS_OR_RUN [--data DIR] [--split val]`."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any

import typer

from segcli.cli._common import Absent, DeviceOpt, JsonOpt, ModelArg, examples_for, out, print_json, table, with_protocol


class Weights(str, Enum):
    """Which of a run's weights to evaluate."""

    best = "best"
    last = "last"
    ema = "ema"


@with_protocol(
    batch_size=typer.Option(None, "--batch-size", min=1, help="Images per batch (default: preset's eval)."), crf=True
)
def eval_cmd(
    weights: Path = ModelArg,
    data: Path = typer.Option(None, "--data", help="Dataset folder (default: the one the model was trained on)."),
    split: str = typer.Option("val", "--split", help="Split to evaluate."),
    device: str = DeviceOpt,
    protocol: Any = None,  # the prediction protocol's options (with_protocol)
    absent: Absent = typer.Option(
        None, "--absent", help="IoU of a class absent from both GT and prediction (default: the preset's eval)."
    ),
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
    worst: int = typer.Option(0, "--worst", min=0, help="List the K images with the lowest mIoU (overlays too)."),
    boundary_tolerance: int = typer.Option(
        2, "--boundary-tolerance", min=0, metavar="PX", help="Pixel tolerance of the boundary F-score."
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Metrics over a split from one confusion matrix: pixel acc, mAcc, mIoU, fwIoU, mDice, per class; and the
    boundary F-score.

    Under torchrun (``torchrun --nproc-per-node N -m segcli eval RUN``) each process evaluates a shard and
    the confusion matrices are summed; rank 0 writes the report."""
    from segcli.infer import EvalOptions, evaluate

    options = EvalOptions(
        weights=weights_choice.value if weights_choice is not None else None,
        absent=absent.value if absent is not None else None,
        workers=workers,
        out=report,
        worst=worst,
        boundary_tolerance=boundary_tolerance,
    )
    res = evaluate(weights, data, split, device=device, protocol=protocol, options=options)
    if res.rank != 0:  # under torchrun rank 0 alone reports
        return
    if as_json:
        print_json(res.to_dict())
        return
    m = res.metrics
    out.print(f"data: {res.data_root} ({m['images']} images)", markup=False, highlight=False, soft_wrap=True)
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
                *([[f"boundary F ({m['boundary']['tolerance']} px)", m["boundary_f"]]] if "boundary" in m else []),
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
    if m.get("calibration"):
        c = m["calibration"]
        out.print(f"ECE: {c['ece']:.4f} ({c['bins']} bins over {c['pixels']} labelled pixels; seg calibrate fits it)")
    out.print(f"protocol: {m.get('protocol')}")
    out.print(f"conventions: {m['conventions']}")
    out.print(f"report: [bold]{res.report}[/]")
    if m.get("confusion_png"):
        out.print(f"confusion matrix: [bold]{m['confusion_png']}[/]")
    if m.get("reliability_png"):
        out.print(f"reliability diagram: [bold]{m['reliability_png']}[/]")


def register(app: typer.Typer) -> None:
    app.command("eval", no_args_is_help=True, epilog=examples_for("eval"))(eval_cmd)
