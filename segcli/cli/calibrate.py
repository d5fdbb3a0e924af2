"""`seg calibrate WEIGHTS_OR_RUN [--data DIR] [--per-class]`: temperature scaling, stored in the weights."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any

import typer

from segcli.cli._common import DeviceOpt, JsonOpt, examples_for, out, print_json, table, with_protocol


class Weights(str, Enum):
    """Which of a run's weights to calibrate."""

    best = "best"
    last = "last"
    ema = "ema"


@with_protocol(
    batch_size=typer.Option(None, "--batch-size", min=1, help="Unused: the fit predicts one image at a time.")
)
def calibrate_cmd(
    weights: Path = typer.Argument(..., help="Weights (.safetensors) or a run directory."),
    data: Path = typer.Option(None, "--data", help="Dataset folder (default: the preset's data.root)."),
    split: str = typer.Option(None, "--split", help="Split to fit on (default: the preset's data.val_split)."),
    per_class: bool = typer.Option(False, "--per-class", help="One temperature a class (may change some argmax)."),
    max_pixels: int = typer.Option(1_000_000, "--max-pixels", min=1, help="Labelled pixels sampled for the fit."),
    weights_choice: Weights = typer.Option(
        None, "--weights", help="Which weights of a run: best, last or ema (default: best, else last)."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Fit and report; leave the weights unchanged."),
    reset: bool = typer.Option(False, "--reset", help="Remove a stored temperature (back to the raw logits)."),
    device: str = DeviceOpt,
    protocol: Any = None,  # the prediction protocol's options (with_protocol)
    as_json: bool = JsonOpt,
) -> None:
    """Fit temperature scaling on the val split and store it in the weights' metadata.

    From then on seg eval (its ECE), seg infer --save probs/uncertainty, TTA averaging and seg export use the
    calibrated probabilities; a single temperature leaves every mask unchanged."""
    from segcli.infer import CalibrateOptions, calibrate

    options = CalibrateOptions(
        per_class=per_class,
        split=split,
        max_pixels=max_pixels,
        weights=weights_choice.value if weights_choice is not None else None,
        dry_run=dry_run,
        reset=reset,
    )
    res = calibrate(weights, data, device, protocol, options)
    if as_json:
        print_json(res.to_dict())
        return
    if reset:
        out.print(f"temperature removed from [bold]{res.weights}[/]" if res.written else "dry run: nothing removed")
        return
    t = res.temperature
    shown = f"{t[0]:.4f}" if len(t) == 1 else ", ".join(f"{v:.3f}" for v in t)
    out.print(
        table(
            f"{res.split}: {res.images} images, {res.pixels} labelled pixels (temperature {shown})",
            ["", "ECE (15 bins)", "NLL"],
            [
                ["before", res.before["ece"], res.before["nll"]],
                ["after", res.after["ece"], res.after["nll"]],
            ],
        )
    )
    where = f"stored in [bold]{res.weights}[/]" if res.written else "dry run: the weights are unchanged"
    out.print(f"temperature {shown}: {where}")


def register(app: typer.Typer) -> None:
    app.command("calibrate", no_args_is_help=True, epilog=examples_for("calibrate"))(calibrate_cmd)
