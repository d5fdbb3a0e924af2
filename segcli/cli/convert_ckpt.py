"""`seg convert-ckpt IN OUT [--from SOURCE] [--check PRESET_WEIGHTS_OR_RUN] ...`: checkpoints into segcli and out."""

from __future__ import annotations

from pathlib import Path

import typer

from segcli.cli._common import JsonOpt, examples_for, out, print_json, table
from segcli.errors import UserError


def _floats(text: str | None, option: str) -> tuple[float, ...] | None:
    if not text:
        return None
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise UserError(
            f"{option} {text!r}: expected comma-separated numbers in [0, 1], e.g. 0.485,0.456,0.406"
        ) from None
    return values


def _list_maps(as_json: bool) -> None:
    from segcli.convert.maps import MAPS

    rows = []
    for name in MAPS.names():
        km = MAPS.get(name)()
        rows.append([name, km.model.get("name", "-") if not km.unsupported else "-", km.unsupported or km.doc])
    if as_json:
        print_json([{"source": r[0], "model": r[1], "notes": r[2]} for r in rows])
        return
    out.print(table("key maps (--from)", ["source", "segcli model", "notes"], rows))


def convert_cmd(
    src: Path = typer.Argument(None, help="Checkpoint to read: .safetensors, or .pth/.pt/.ckpt/.bin (tensors only)."),
    dst: Path = typer.Argument(None, help="File to write: .safetensors (segcli weights) or, with --to pth, .pth."),
    source: str = typer.Option(
        None,
        "--from",
        help="Key map of the source library, e.g. torchvision:lraspp_mobilenet_v3_large (default: detect).",
    ),
    check: str = typer.Option(
        None,
        "--check",
        help="Preset, segcli weights or run directory whose model the result must fit (key-diff report).",
    ),
    backbone: str = typer.Option(
        None, "--backbone", help="timm encoder name where the source does not record it (smp)."
    ),
    rename: list[str] = typer.Option([], "--rename", help="REGEX=REPLACEMENT on every key (repeatable, in order)."),
    drop: list[str] = typer.Option([], "--drop", help="Remove keys matching REGEX (repeatable)."),
    key: str = typer.Option(
        None, "--key", help="Entry of the checkpoint holding the weights (default: state_dict, model, module, ema)."
    ),
    strip: bool = typer.Option(False, "--strip", help="Keep model weights only: drop optimizer, scheduler, epoch, ..."),
    half: bool = typer.Option(False, "--half", help="Store floating-point weights as float16."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Report what would be written; write nothing."),
    classes: str = typer.Option(None, "--classes", help="Class names, comma-separated."),
    num_classes: int = typer.Option(None, "--num-classes", min=1, help="Number of classes (names class_0, ...)."),
    data: Path = typer.Option(None, "--data", help="segcli dataset whose classes, palette and ignore_index to record."),
    mean: str = typer.Option(None, "--mean", help="Input mean per channel in [0, 1] (default: the model's preset)."),
    std: str = typer.Option(None, "--std", help="Input std per channel in [0, 1] (default: the model's preset)."),
    to: str = typer.Option("segcli", "--to", help="segcli (self-describing .safetensors) or pth (plain state dict)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT if it exists."),
    list_maps: bool = typer.Option(False, "--list-maps", help="List the key maps (--from) and exit."),
    as_json: bool = JsonOpt,
) -> None:
    """Convert a checkpoint into a segcli weights file (or a plain state dict), every key accounted for."""
    from segcli.convert import ConvertOptions, TargetOptions, convert

    if list_maps:
        _list_maps(as_json)
        return
    if src is None or dst is None:
        raise UserError("give IN and OUT: seg convert-ckpt model.pth model.safetensors (or --list-maps)")
    keys = ConvertOptions(source=source, key=key, rename=rename, drop=drop, strip=strip)
    fit = TargetOptions(
        check=check,
        backbone=backbone,
        classes=[c.strip() for c in classes.split(",") if c.strip()] if classes else None,
        num_classes=num_classes,
        data=data,
        mean=_floats(mean, "--mean"),
        std=_floats(std, "--std"),
    )
    report = convert(src, dst, keys, fit, to=to, half=half, dry_run=dry_run, overwrite=overwrite)
    if as_json:
        print_json(report.to_dict())
    else:
        _print(report)
    if dry_run and not report.ok:
        raise typer.Exit(2)


def _names(keys: list[str], n: int = 6) -> str:
    return ", ".join(keys[:n]) + (f", ... ({len(keys)})" if len(keys) > n else "")


def _print(r) -> None:  # noqa: ANN001 - ConvertReport
    rows = [
        ["source", r.source],
        ["key map", r.key_map or "none"],
        ["unwrapped", " > ".join(r.unwrapped) or "top level"],
    ]
    if r.left_behind:
        rows.append(["left behind", _names(r.left_behind)])
    if r.stripped_prefixes:
        rows.append(["prefixes removed", ", ".join(f"{p} ({n} keys)" for p, n in r.stripped_prefixes.items())])
    rows += [["renamed", str(r.renamed)], ["dropped", _names(r.dropped) or "none"]]
    if r.filled:
        rows.append(["filled from the model", _names(r.filled)])
    if r.model:
        rows += [
            ["model", r.model],
            ["missing", _names(r.missing) or "none"],
            ["unexpected", _names(r.unexpected) or "none"],
            ["shape-mismatched", _names(r.mismatched, 3) or "none"],
        ]
    rows += [["tensors", f"{r.tensors} ({r.dtype})"], ["written", r.out if r.written else "no (dry run)"]]
    out.print(table("convert-ckpt", ["", ""], rows))


def register(app: typer.Typer) -> None:
    app.command("convert-ckpt", epilog=examples_for("convert-ckpt"))(convert_cmd)
