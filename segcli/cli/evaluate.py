"""`seg eval WEIGHTS_OR_RUN [--data DIR] [--split val]`."""

from __future__ import annotations

from pathlib import Path

import typer

from segcli.cli._common import JsonOpt, out, print_json, table


def eval_cmd(
    weights: Path = typer.Argument(..., help="Weights (.safetensors) or a run directory."),
    data: Path = typer.Option(None, "--data", help="Dataset folder (default: the one the model was trained on)."),
    split: str = typer.Option("val", "--split", help="Split to evaluate."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    batch_size: int = typer.Option(None, "--batch-size", min=1, help="Images per batch (default: preset's eval)."),
    absent: str = typer.Option(
        None, "--absent", help="IoU of a class absent from both GT and prediction: nan|zero|one."
    ),
    amp: str = typer.Option("none", "--amp", help="Autocast: none, bf16 (CPU/CUDA) or fp16 (CUDA)."),
    workers: int = typer.Option(0, "--workers", min=0, help="Data-loading workers."),
    report: Path = typer.Option(None, "--out", help="Where to write the JSON report (default: inside the run)."),
    as_json: bool = JsonOpt,
) -> None:
    """Metrics over a split from one confusion matrix: pixel acc, mAcc, mIoU, fwIoU, mDice, per class."""
    from segcli.engine.evaluator import evaluate
    from segcli.errors import UserError

    if absent not in (None, "nan", "zero", "one"):
        raise UserError(f"--absent {absent!r}: choose nan, zero or one")
    if amp not in ("auto", "none", "bf16", "fp16"):
        raise UserError(f"--amp {amp!r}: choose auto, none, bf16 or fp16")
    res = evaluate(
        weights,
        data,
        split,
        device=device,
        batch_size=batch_size,
        absent=absent,
        amp=amp,
        num_workers=workers,
        out=report,
    )
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
    out.print(f"conventions: {m['conventions']}")
    out.print(f"report: [bold]{res.report}[/]")


def register(app: typer.Typer) -> None:
    app.command("eval", no_args_is_help=True)(eval_cmd)
