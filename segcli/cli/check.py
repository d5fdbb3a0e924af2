"""`seg check DIR [--split S] [--sample N] [--stats] [--json]`: lint a dataset folder (exit 2 on errors); with
``--stats``, also record the images' per-channel mean/std in its dataset.toml."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from segcli.cli._common import JsonOpt, examples_for, out, print_json


def split_list(values: list[str] | None) -> list[str] | None:
    """``--split a --split b`` or ``--split a,b`` as one list (None when not given)."""
    if not values:
        return None
    return [s.strip() for v in values for s in v.split(",") if s.strip()]


def check_cmd(
    root: Path = typer.Argument(..., help="Dataset folder (dataset.toml, images/<split>/, masks/<split>/)."),
    split: list[str] = typer.Option(None, "--split", help="Split(s) to check (repeat or comma-separate; default all)."),
    sample: int = typer.Option(None, "--sample", min=1, help="Decode only N random pairs per split (default all)."),
    stats: bool = typer.Option(
        False,
        "--stats",
        help="Also compute the per-channel mean/std of the images (the first --split, default train) and record "
        "them with the channel count in dataset.toml (model.mean/std = auto use them for N-channel data).",
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Find data problems: palette/RGB masks, 0/255 binary masks, raw Cityscapes ids, bad values, sizes, files."""
    from segcli.data.lint import lint_dataset, summarise

    findings = lint_dataset(root, split_list(split), sample=sample)
    counts = summarise(findings)
    recorded = _record_stats(root, (split_list(split) or ["train"])[0], sample) if stats else None
    if as_json:
        extra = {"stats": recorded} if recorded is not None else {}
        print_json(
            {"root": str(root), "sample": sample, **counts, "findings": [f.to_dict() for f in findings], **extra}
        )
    else:
        for f in findings:
            colour = "red" if f.severity == "error" else "yellow"
            out.print(f"[bold {colour}]{f.severity}[/] [bold]{f.code}[/]: {escape(f.message)}")
            for path in f.files:
                out.print(f"    {escape(path)}")
            if f.files and f.count > len(f.files):
                out.print(f"    ... {f.count - len(f.files)} more")
            out.print(f"    [cyan]fix:[/] {escape(f.fix)}")
        scope = f"{sample} sampled pairs per split" if sample else "every file"
        verdict = f"{counts['errors']} error(s), {counts['warnings']} warning(s)"
        if not findings:
            verdict = "[green]no problems found[/]"
        out.print(f"{escape(str(root))}: {verdict} ({scope} checked)")
        if recorded is not None:
            out.print(
                f"{escape(str(root))}/dataset.toml: {recorded['channels']} channels, mean {recorded['mean']}, "
                f"std {recorded['std']} ({recorded['split']} split)"
            )
    if counts["errors"]:
        raise typer.Exit(2)


def _record_stats(root: Path, split: str, sample: int | None) -> dict:
    """Per-channel statistics of ``split`` (``sample`` evenly spaced images, default all) written to dataset.toml."""
    from segcli.data.format import write_channel_stats
    from segcli.data.stats import channel_stats

    channels, mean, std = channel_stats(root, split, max_images=sample)
    write_channel_stats(root, channels, mean, std)
    return {"split": split, "channels": channels, "mean": list(mean), "std": list(std)}


def register(app: typer.Typer) -> None:
    app.command("check", no_args_is_help=True, epilog=examples_for("check"))(check_cmd)
