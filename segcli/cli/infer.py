"""`seg infer WEIGHTS_OR_RUN INPUTS... --out DIR`."""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Any

import typer
from rich.progress import Progress

from segcli.cli._common import DeviceOpt, JsonOpt, ModelArg, err, examples_for, out, print_json, with_protocol
from segcli.cli._common import workers as parse_workers

LOADING = "loading model..."


class WallRate:
    """The progress text of ``seg infer``: ``predicting NAME n/total R images/s``, the rate being images done over
    the wall time since the command started (model loading included), as the closing line counts it. A rate
    over the last few updates is meaningless here: a batch's images are reported within microseconds."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock, self.t0 = clock, clock()

    def describe(self, done: int, total: int, src: Path) -> str:
        seconds = self.clock() - self.t0
        rate = f" {done / seconds:.3g} images/s" if seconds > 0 else ""
        return f"predicting {src.name} {done}/{total}{rate}"


class ProbsFormat(str, Enum):
    """How ``--save probs`` writes probabilities."""

    auto = "auto"
    npy = "npy"
    png = "png"


@with_protocol(batch_size=typer.Option(8, "--batch-size", min=1, help="Images per forward pass."), crf=True)
def infer_cmd(
    weights: Path = ModelArg,
    inputs: list[str] = typer.Argument(
        ..., help="Image or video files, folders, glob patterns; - reads paths from stdin."
    ),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Output folder (masks/, overlays/, ids/, probs/ inside)."),
    device: str = DeviceOpt,
    save: str = typer.Option(
        "mask,overlay",
        "--save",
        help="What to write, comma-separated: mask, overlay, ids, probs, uncertainty (entropy map).",
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
    protocol: Any = None,  # the prediction protocol's options (with_protocol)
    workers: str = typer.Option(
        "auto",
        "--workers",
        metavar="N|auto",
        help="Decode/encode threads besides this one (0 = all in this process; auto = up to 8, one per core).",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing output files."),
    skip_existing: bool = typer.Option(
        False, "--skip-existing", help="Keep existing output files, write the missing ones (continue a stopped run)."
    ),
    tiled: bool = typer.Option(
        None,
        "--tiled/--no-tiled",
        help="Predict images band by band into tiled TIFF masks, never holding a whole image "
        "(default: images over --tiled-above).",
        show_default=False,
    ),
    tiled_above: int = typer.Option(
        8192, "--tiled-above", metavar="N", min=1, help="Images with more than N x N pixels are predicted tiled."
    ),
    sequence: bool = typer.Option(
        False,
        "--sequence",
        help="The images are the frames of one clip, in order (a folder: by name): predicted as a video's frames "
        "(a prior model gets each frame's previous mask) and their flicker reported.",
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Predict masks: palette PNGs (ids readable back), colour overlays, raw ids, probabilities; videos too."""
    from segcli.infer import OutputOptions, predict

    output = OutputOptions(
        save=save,
        alpha=alpha,
        alpha_bg=alpha_bg,
        legend=legend,
        probs_format=probs_format.value,
        overwrite=overwrite,
        skip_existing=skip_existing,
        tiled=tiled,
        tiled_above=tiled_above,
        sequence=sequence,
    )
    rate = WallRate(time.perf_counter)
    with Progress(console=err, transient=True, disable=not err.is_terminal) as progress:
        task = progress.add_task(LOADING, total=None)  # until the first image is done

        def step(i: int, n: int, src: Path) -> None:
            progress.update(task, total=n, completed=i + 1, description=rate.describe(i + 1, n, src))

        res = predict(
            weights,
            inputs,
            out_dir,
            device=device,
            protocol=protocol,
            output=output,
            workers=parse_workers(workers),
            on_image=step,
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
    for o in d["outputs"]:
        if "tiled" in o:
            out.print(tiled_line(o), markup=False, highlight=False)
    clips = [(o["input"], o) for o in d["outputs"] if "flicker" in o]
    clips += [("image sequence", d["sequence"])] if "sequence" in d else []
    for name, clip in clips:
        out.print(flicker_line(name, clip), markup=False, highlight=False)


def flicker_line(name: str, clip: dict[str, Any]) -> str:
    """``NAME: N frames, flicker F`` (the share of pixels whose class changes between consecutive frames)."""
    value = "n/a (one frame)" if clip["flicker"] is None else f"{clip['flicker']:.4f}"
    prior = ", previous mask fed as the prior" if clip.get("prior") else ""
    return f"{name}: {clip['frames']} frames, flicker {value} (pixels changing class frame to frame{prior})"


def tiled_line(entry: dict[str, Any]) -> str:
    """``NAME: H x W tiled, N windows, ... → mask`` for an image predicted band by band."""
    t = entry["tiled"]
    geo = f", {len(t['geotags'])} georeferencing tags copied" if t["geotags"] else ""
    big = " (BigTIFF)" if t["bigtiff"] else ""
    where = entry.get("mask") or entry.get("ids")
    return (
        f"{entry['input']}: {t['size'][0]} x {t['size'][1]} predicted tiled ({t['windows']} windows of "
        f"{t['tile'][0]}x{t['tile'][1]}, read: {t['read']}{geo}) -> {where}{big}"
    )


def register(app: typer.Typer) -> None:
    app.command("infer", no_args_is_help=True, epilog=examples_for("infer"))(infer_cmd)
