"""`seg train PRESET [key=value ...]`, `seg train --resume RUN_DIR [--extend train.epochs=N]`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn
from rich.text import Text

from segcli.cli._common import JsonOpt, err, examples_for, fmt, out, print_json, table
from segcli.cli.flags import train_overrides
from segcli.config.keys import short_key
from segcli.core.callbacks import Callback, IterStats, RunStart, ValEnd
from segcli.report import ProgressLines, ProgressMeter, fmt_bytes, fmt_duration, validation_lines


class TrainFields(ProgressColumn):
    """The training bar's figures (loss and its running mean, lr, images/s, data wait, memory, ETA); nothing on
    the validation's bar."""

    def render(self, task: Task) -> Text:
        f = task.fields
        if f.get("val"):
            return Text("")
        return Text(f"loss {f['loss']} lr {f['lr']} {f['ips']} img/s data {f['wait']} mem {f['mem']} ETA {f['eta']}")


class RichProgress(Callback):
    """The console: a live display on a terminal (epoch, iteration, loss and its running mean, per term, lr,
    images/s, data-wait share, ETA for the epoch and the run, peak memory); plain lines every
    ``train.log_every`` iterations otherwise (CI, nohup, pipes). Under torchrun only rank 0 shows anything."""

    def __init__(self, quiet: bool = False, live: bool | None = None) -> None:
        self.quiet = quiet or os.environ.get("RANK", "0") != "0"
        self.live = err.is_terminal if live is None else live
        self.progress: Progress | None = None
        self.task: Any = None
        self.val_task: Any = None  # the validation's bar while one runs
        self.iters = 1
        self.meter = ProgressMeter()
        self.lines: ProgressLines | None = None

    def on_train_start(self, start: RunStart) -> None:
        if self.quiet:
            return
        epochs, iters_per_epoch, first_epoch = start.epochs, start.iters_per_epoch, start.first_epoch
        self.iters, self.epochs = iters_per_epoch, epochs
        self.meter.start(start)
        err.print(f"run directory: [bold]{start.run.path}[/]")
        if not self.live:
            self.lines = ProgressLines(lambda t: err.print(t, markup=False, highlight=False), start.log_every or 20)
            self.lines.on_train_start(start)
            return
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TrainFields(),
            TimeElapsedColumn(),
            console=err,
        )
        self.progress.start()
        first = min(first_epoch + 1, epochs) if epochs else first_epoch + 1  # a finished run: not "5/4"
        self.task = self.progress.add_task(
            f"epoch {first}/{epochs or '?'} it 0/{iters_per_epoch}",
            total=epochs * iters_per_epoch if epochs else None,  # None: a time-budgeted run
            completed=first_epoch * iters_per_epoch + start.first_iter,
            epoch=first,
            epochs=epochs or "?",
            it=0,
            iters=iters_per_epoch,
            loss="-",
            lr="-",
            ips="-",
            wait="-",
            mem="-",
            eta="-",
        )

    def on_iter_stats(self, stats: IterStats) -> None:
        if self.lines is not None:
            self.lines.on_iter_stats(stats)
        if self.progress is None:
            return
        f = self.meter.update(stats)
        self.meter.reset_window()
        terms = "".join(f" {k} {v:.3f}" for k, v in f["terms"].items())
        self.progress.update(
            self.task,
            description=f"epoch {f['epoch']}/{f['epochs']} it {f['it']}/{f['iters']}",
            completed=stats.epoch * self.iters + stats.it + 1,
            epoch=f["epoch"],
            it=f["it"],
            loss=f"{f['loss']:.4f} (mean {f['loss_mean']:.4f}){terms}",
            lr=f"{f['lr']:.2e}",
            ips=f"{f['images_per_s']:.1f}",
            wait=f"{f['data_wait']:.0%}",
            mem=fmt_bytes(f["memory"]),
            eta=f"{fmt_duration(f['eta_epoch'])} (run {fmt_duration(f['eta_run'])})",
        )

    def on_val_progress(self, done: int, total: int) -> None:
        """A second bar while validating: images scored of the split (this process's share under torchrun)."""
        if self.progress is None:
            return
        if self.val_task is None:
            self.val_task = self.progress.add_task("validating", total=total, completed=done, val=True)
        self.progress.update(self.val_task, completed=done, description=f"validating {done}/{total} images")
        if done >= total:
            self.progress.remove_task(self.val_task)
            self.val_task = None

    def on_val_end(self, val: ValEnd) -> None:
        if self.lines is not None:
            self.lines.on_val_end(val)
        elif self.progress is not None:
            for line in validation_lines(val):
                self.progress.console.print(line, markup=False, highlight=False)

    def on_epoch_end(self, epoch: int, row: dict[str, Any], improved: bool) -> None:
        if "mIoU" in row and not self.quiet:
            err.print(
                f"epoch {epoch + 1}/{self.epochs or '?'}: loss {row['train_loss']:.4f}  val mIoU {fmt(row['mIoU'])}  "
                f"pixel acc {fmt(row['pixel_accuracy'])}  ({row['seconds']:.1f}s)"
            )

    def on_message(self, text: str) -> None:
        if not self.quiet:
            err.print(text)

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def train_cmd(
    preset: str = typer.Argument(None, help="Preset file or bundled preset name (see `seg presets list`)."),
    overrides: list[str] = typer.Argument(None, help="key=value overrides, e.g. train.epochs=3 optim.lr=0.01"),
    resume: Path = typer.Option(None, "--resume", help="Continue the run in this run directory."),
    extend: list[str] = typer.Option(
        None,
        "--extend",
        metavar="KEY=VALUE",
        help="With --resume: a longer schedule (train.epochs, train.iters or train.time_budget); repeatable.",
    ),
    devices: int = typer.Option(
        None,
        "--devices",
        min=1,
        help="Train on N processes of this machine (N GPUs, or N CPU processes with gloo) through torch's elastic "
        "launcher; data.batch_size stays the global batch. Several nodes: run torchrun on each (docs/distributed.md).",
    ),
    budget: str = typer.Option(
        None,
        "--budget",
        metavar="DURATION",
        help="Train for this wall time (e.g. 15m) with the auto recipe: train.time_budget=DURATION train.auto=true "
        "(crop, batch, lr and schedule chosen from probed step times; docs/budget.md).",
    ),
    epochs: int = typer.Option(None, "--epochs", min=1, help="Passes over the training split (train.epochs)."),
    device: str = typer.Option(None, "--device", help="auto, cpu, cuda, cuda:N or mps (train.device)."),
    batch_size: int = typer.Option(None, "--batch-size", min=1, help="Images per training batch (data.batch_size)."),
    name: str = typer.Option(
        None, "--name", help="Run name: the run goes to runs/NAME/N (train.name; default: the preset's name)."
    ),
    data: str = typer.Option(None, "--data", help="Dataset folder in the segcli format (data.root)."),
    as_json: bool = JsonOpt,
) -> None:
    """Train a model from a preset; prints the run directory at the end.

    Any preset key can be set as key=value (train.epochs=3); a key whose name is unique may be given bare
    (epochs=3, device=cpu, batch_size=8, name=mine, imgsz=256 for augment.crop_size)."""
    import os

    from segcli.config.schema import METRIC_KEYS
    from segcli.core.rundir import RunDir
    from segcli.errors import TrainingInterrupted, UserError
    from segcli.train import train

    if resume is None and preset is None:
        raise UserError("give a preset (e.g. `seg train quickstart`) or --resume RUN_DIR")
    common = {"epochs": epochs, "device": device, "batch_size": batch_size, "name": name, "data": data}
    if resume is not None and any(v is not None for v in common.values()):
        given = ", ".join("--" + k.replace("_", "-") for k, v in common.items() if v is not None)
        raise UserError(f"{given}: --resume continues a run as it was; to lengthen it use --extend train.epochs=N")
    overrides = [*(overrides or []), *train_overrides(common)]
    if budget is not None:
        if resume is not None:
            raise UserError(
                "--budget starts a new run; to lengthen a run use --resume RUN --extend train.time_budget=D"
            )
        overrides = [*(overrides or []), f"train.time_budget={budget}", "train.auto=true"]
    loaded = None
    if resume is None:  # the preset is loaded and validated here, once, and handed to train() as it is
        from segcli.train import training_preset  # as segcli.train(...) in Python loads it

        loaded = training_preset(preset, overrides or [])
        _print_notes(loaded)
        if devices is None and "WORLD_SIZE" not in os.environ:
            devices = loaded.preset.train.devices
    if devices and devices > 1 and "WORLD_SIZE" not in os.environ:  # not already under torchrun
        from segcli.core.distributed import launch

        args = ["train", *([preset] if preset else []), *(overrides or [])]
        args += ["--resume", str(resume)] if resume is not None else []
        args += [a for e in extend or [] for a in ("--extend", e)]
        raise typer.Exit(launch(devices, args + (["--json"] if as_json else [])))
    if resume is not None and preset is not None:
        # `seg train --resume RUN` has no preset; anything else positional is an override.
        overrides = [preset, *(overrides or [])]
        preset = None
    reporter = RichProgress()
    try:
        if loaded is not None:
            result = train(loaded, callbacks=[reporter], extend=extend or [])
        else:
            result = train(None, overrides or [], resume=resume, callbacks=[reporter], extend=extend or [])
    except TrainingInterrupted as e:  # handled here: click would turn it into a bare "Aborted"
        reporter.stop()
        err.print(str(e), markup=False, highlight=False, soft_wrap=True)  # one line, however long
        raise typer.Exit(e.exit_code) from None
    finally:
        reporter.stop()
    hint = _name_hint(loaded)
    if hint and os.environ.get("RANK", "0") == "0":
        err.print(hint, markup=False, highlight=False)
    if as_json:
        print_json(result.to_dict())
        return
    best, last = result.best, result.last
    rows = [[k, best.get(k, float("nan")), last.get(k, float("nan"))] for k in METRIC_KEYS]
    out.print(
        table(
            f"validation (best epoch {best.get('epoch', '-')}, last epoch {last.get('epoch', '-')})",
            ["metric", "best", "last"],
            rows,
        )
    )
    iters = result.last.get("iterations", 0)
    out.print(f"trained {result.epochs} epoch(s), {iters} iterations, in {result.seconds:.0f}s")
    out.print(f"run directory: [bold]{result.run_dir}[/]")
    report = RunDir(result.run_dir).report
    if report.is_file():
        out.print(f"report: [bold]{report}[/]")


def _print_notes(loaded: Any) -> None:
    """The short keys read as full ones (``epochs=3 read as train.epochs=3``)."""
    if os.environ.get("RANK", "0") == "0":
        for note in loaded.notes:
            err.print(f"note: {note}", markup=False, highlight=False)


def _name_hint(loaded: Any) -> str | None:
    """Where a run of the user's own data (data.root given) without a name was filed, and how to name it."""
    t = loaded.preset.train if loaded is not None else None
    if t is None or t.name or not any(o.startswith(short_key("data") + "=") for o in loaded.overrides):
        return None
    where = f"{t.out_dir}/{loaded.stem}/N"
    return f"note: runs without a name go to {where}; --name NAME (or name=NAME) files them under {t.out_dir}/NAME/N"


def register(app: typer.Typer) -> None:
    app.command("train", no_args_is_help=True, epilog=examples_for("train"))(train_cmd)
