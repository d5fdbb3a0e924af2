"""`seg infer WEIGHTS_OR_RUN INPUTS... --out DIR`."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import Progress

from segcli.cli._common import Amp, AmpOpt, DeviceOpt, JsonOpt, err, out, print_json


def infer_cmd(
    weights: Path = typer.Argument(..., help="Weights (.safetensors) or a run directory."),
    inputs: list[str] = typer.Argument(..., help="Image files, folders or glob patterns."),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Output folder (masks/ and overlays/ inside)."),
    device: str = DeviceOpt,
    amp: Amp = AmpOpt,
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing output files."),
    skip_existing: bool = typer.Option(
        False, "--skip-existing", help="Keep existing output files, write the missing ones (continue a stopped run)."
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Predict masks: palette PNGs (ids readable back) and colour overlays."""
    from segcli.engine.predictor import predict

    with Progress(console=err, transient=True, disable=not err.is_terminal) as progress:
        task = progress.add_task("predicting", total=None)

        def step(i: int, n: int, src: Path) -> None:
            progress.update(task, total=n, completed=i + 1, description=f"predicting {src.name}")

        res = predict(
            weights,
            inputs,
            out_dir,
            device=device,
            amp=amp.value,
            overwrite=overwrite,
            on_image=step,
            skip_existing=skip_existing,
        )
    if as_json:
        print_json(res.to_dict())
        return
    if res.skipped:
        out.print(f"{len(res.skipped)} image(s) already done, skipped (--skip-existing)")
    out.print(
        f"{len(res.outputs)} image(s) → masks in [bold]{res.out_dir / 'masks'}[/], "
        f"overlays in [bold]{res.out_dir / 'overlays'}[/]"
    )


def register(app: typer.Typer) -> None:
    app.command("infer", no_args_is_help=True)(infer_cmd)
