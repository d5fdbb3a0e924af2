"""What every command shares: consoles, --json output, tables, the verbose flag."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import Enum
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from typer.core import TyperGroup

from segcli.io_utils import dumps_json, printable

if TYPE_CHECKING:  # pragma: no cover
    from segcli.infer import ProtocolChoices


class _Console(Console):
    """A rich console that prints file names which are not valid UTF-8 instead of failing on them."""

    def print(self, *objects: Any, **kwargs: Any) -> None:
        super().print(*(printable(o) if isinstance(o, str) else o for o in objects), **kwargs)


# Figures and tables go to stdout; progress and messages to stderr, so `--json` output stays clean.
out = _Console(highlight=False, soft_wrap=True)
err = _Console(stderr=True, highlight=False, soft_wrap=True)


class _State:
    verbose: bool = False


state = _State()


def _hide_flag_metavars(command: Any, ctx: Any) -> None:
    """On/off flags take no value: show no ``<bool>`` placeholder after them in the help."""
    for param in command.get_params(ctx):
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""


class SegGroup(TyperGroup):
    """A command group that lists its commands in ``order`` (then the rest as added), flags without
    a value placeholder. Used for `seg` and its sub-groups (`seg prepare`, `seg presets`)."""

    order: tuple[str, ...] = ()

    def list_commands(self, ctx: Any) -> list[str]:
        rank = {name: i for i, name in enumerate(self.order)}
        return sorted(self.commands, key=lambda n: rank.get(n, len(rank)))

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)
        for param in params:
            if getattr(param, "is_flag", False) and param.metavar is None:
                param.metavar = ""
        return params

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            _hide_flag_metavars(command, ctx)
        return command


def choices(name: str, values: tuple[str, ...], doc: str) -> Any:
    """A typer choice type with one member per value (member names: the values with ``-`` as ``_``); the values
    are the engine's list of what it accepts (tests/cli/test__common.py checks each against it)."""
    made = Enum(name, {v.replace("-", "_"): v for v in values}, type=str, module=__name__)
    made.__doc__ = doc
    return made


# core.runtime.AMP_MODES (not imported here: it loads torch, and `seg --help` should not)
Amp = choices(
    "Amp", ("auto", "none", "bf16", "fp16"), "Autocast of eval/infer: auto = bf16 where native, else fp16 on CUDA."
)


class Absent(str, Enum):
    """IoU of a class absent from both ground truth and prediction."""

    nan = "nan"
    zero = "zero"
    one = "one"


DeviceOpt = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N.")
ModelArg = typer.Argument(..., help="Weights (.safetensors), a run directory, or an exported .onnx/.torchscript model.")
AmpOpt = typer.Option(
    None,
    "--amp",
    help="Autocast: auto (bf16 where native), none, bf16, or fp16 (CUDA only); default: the training run's train.amp.",
)

SizeOpt = typer.Option(
    None, "--size", metavar="H,W|HxW|N", help="Resize inputs to H,W before the model (default: preset's)."
)
SlideOpt = typer.Option(None, "--slide/--whole", help="Sliding-window or whole-image prediction (default: preset's).")
TileOpt = typer.Option(None, "--tile", metavar="H,W", help="Sliding-window size (default: preset's eval.tile).")
StrideOpt = typer.Option(None, "--stride", metavar="H,W", help="Sliding-window step (default: 2/3 of --tile).")
TtaOpt = typer.Option(
    None, "--tta/--no-tta", help="Test-time augmentation: eval.tta_scales and flips, probabilities averaged."
)

TtaScalesOpt = typer.Option(
    None, "--tta-scales", metavar="S,S,...", help="TTA scale factors, e.g. 0.75,1,1.25 (implies --tta)."
)
CrfOpt = typer.Option(
    None,
    "--crf/--no-crf",
    help="Refine with the dense CRF of [eval.crf] (DeepLab's: bilateral and Gaussian kernels, 10 mean-field "
    "iterations; docs/inference.md); default: eval.crf.enabled.",
)
CrfParamsOpt = typer.Option(
    None,
    "--crf-params",
    metavar="KEY=V,...",
    help="eval.crf keys over the model preset's, e.g. bi_w=1,pos_w=0 (implies --crf): bi_w, bi_xy_std, "
    "bi_rgb_std, pos_w, pos_xy_std, iterations.",
)


def crf_params(value: str | None) -> dict[str, float] | None:
    """``--crf-params "bi_w=1,pos_w=0"`` → {"bi_w": 1.0, "pos_w": 0.0}; a bad value is a UserError naming it (the
    engine checks the keys and their ranges)."""
    from segcli.errors import UserError

    if value is None:
        return None
    out: dict[str, float] = {}
    for item in value.split(","):
        key, sep, number = item.partition("=")
        try:
            out[key.strip()] = float(number)
        except ValueError:
            sep = ""
        if not sep or not key.strip():
            raise UserError(f"--crf-params {value}: give KEY=NUMBER pairs, e.g. --crf-params bi_w=1,pos_w=0")
    return out


def scales(value: str | None, option: str = "--tta-scales") -> tuple[float, ...] | None:
    """``"0.75,1,1.25"`` → (0.75, 1.0, 1.25); a bad value is a UserError naming ``option``."""
    from segcli.errors import UserError

    if value is None:
        return None
    try:
        out = tuple(float(p) for p in value.split(",") if p.strip())
    except ValueError:
        out = ()
    if not out or min(out) <= 0:
        raise UserError(f"{option} {value}: give comma-separated factors > 0, e.g. {option} 0.75,1,1.25")
    return out


def hw(value: str | None, option: str) -> tuple[int, int] | None:
    """The one reader of every ``--size``-like option: ``"512,1024"``, ``"512x1024"`` or one number for a square
    (``"512"``) → (512, 1024) / (512, 512); a bad value is a UserError naming ``option``."""
    from segcli.errors import UserError

    if value is None:
        return None
    parts = [p.strip() for p in value.lower().replace("x", ",").split(",")]
    try:
        nums = [int(p) for p in parts]
    except ValueError:
        nums = []
    if len(nums) == 1:
        nums *= 2
    if len(nums) != 2 or min(nums) < 1:
        raise UserError(
            f"{option} {value}: give H,W as two whole numbers > 0 (or HxW, or one number for a square), "
            f"e.g. {option} 512,1024"
        )
    return nums[0], nums[1]


SIZE_METAVAR = "H,W|HxW|N"


def workers(value: str) -> int | str:
    """``--workers N|auto``, the same on every command: N worker processes or threads besides this process,
    0 = all the work in this process, auto = chosen from the usable cores. A bad value is a UserError."""
    from segcli.errors import UserError

    text = value.strip().lower()
    if text == "auto":
        return "auto"
    if not text.isdigit():
        raise UserError(f"--workers {value}: give a whole number >= 0 (0 = in this process) or auto")
    return int(text)


WORKERS_HELP = "Workers besides this process (0 = all in this process; auto = from the usable cores)."


def protocol_choices(
    amp: Amp | None,
    size: str | None,
    slide: bool | None,
    tile: str | None,
    stride: str | None,
    tta: bool | None,
    tta_scales: str | None,
    batch_size: int | None,
) -> ProtocolChoices:
    """The prediction protocol the command line asks for (None: the checkpoint preset's), its values parsed."""
    from segcli.infer import ProtocolChoices

    return ProtocolChoices(
        size=hw(size, "--size"),
        slide=slide,
        tile=hw(tile, "--tile"),
        stride=hw(stride, "--stride"),
        tta=tta,
        tta_scales=scales(tta_scales),
        amp=amp.value if amp is not None else None,
        batch_size=batch_size,
    )


# The prediction protocol's options, the same on every command that predicts: (parameter, type, option).
_PROTOCOL_OPTIONS = (
    ("amp", Amp, AmpOpt),
    ("size", str, SizeOpt),
    ("slide", bool, SlideOpt),
    ("tile", str, TileOpt),
    ("stride", str, StrideOpt),
    ("tta", bool, TtaOpt),
    ("tta_scales", str, TtaScalesOpt),
)


def with_protocol(batch_size: Any, crf: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A command that takes the prediction protocol's options (--amp, --size, --slide/--whole, --tile, --stride,
    --tta/--no-tta, --tta-scales, ``batch_size``, its own --batch-size option, and with ``crf`` --crf/--no-crf and
    --crf-params) in place of its ``protocol`` parameter, and receives them as that one ``protocol``
    (:func:`protocol_choices`)."""
    crf_options = (("crf", bool, CrfOpt), ("crf_params", str, CrfParamsOpt)) if crf else ()
    options = (*_PROTOCOL_OPTIONS, ("batch_size", int, batch_size), *crf_options)

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        hints = typing.get_type_hints(command)
        params: list[inspect.Parameter] = []
        for p in inspect.signature(command).parameters.values():
            if p.name == "protocol":
                params += [inspect.Parameter(n, p.kind, default=opt, annotation=t) for n, t, opt in options]
            else:
                params.append(p.replace(annotation=hints.get(p.name, p.annotation)))

        @functools.wraps(command)
        def run(**kwargs: Any) -> Any:
            chosen = {name: kwargs.pop(name) for name, _, _ in options}
            crf = {"crf": chosen.pop("crf", None), "crf_params": crf_params(chosen.pop("crf_params", None))}
            return command(**kwargs, protocol=dataclasses.replace(protocol_choices(**chosen), **crf))

        run.__signature__ = inspect.Signature(params, return_annotation=None)  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in params}
        return run

    return decorate


JsonOpt = typer.Option(False, "--json", help="Print one JSON object on stdout instead of tables.")


def examples(*commands: str) -> str:
    """The epilog that ends a command's ``--help``: "Examples:" and one command per line (typer's rich help
    joins single line breaks, so the lines are separated by blank ones)."""
    return "Examples:\n\n" + "\n\n".join(f"  {c}" for c in commands)


@functools.cache
def _example_table() -> dict[str, list[str]]:
    from importlib.resources import files

    from segcli.config.toml_io import tomllib

    return tomllib.loads(files("segcli.cli").joinpath("examples.toml").read_text(encoding="utf-8"))


def examples_for(command: str, missing_ok: bool = False) -> str:
    """The examples epilog of ``seg COMMAND`` from ``cli/examples.toml`` ("" for one without, when
    ``missing_ok``)."""
    lines = _example_table().get(command)
    if lines is None:
        if missing_ok:
            return ""
        raise KeyError(f"cli/examples.toml has no examples for {command!r}")
    return examples(*lines)


def print_json(obj: Any) -> None:
    """One JSON object on stdout (NaN → null)."""
    typer.echo(dumps_json(obj))


def fmt(v: Any, digits: int = 4) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.{digits}f}"
    return str(v)


def table(title: str, columns: list[str], rows: list[list[Any]]) -> Table:
    t = Table(title=title, title_justify="left")
    for i, c in enumerate(columns):
        numeric = bool(rows) and all(isinstance(r[i], (int, float)) for r in rows)
        t.add_column(c, justify="right" if numeric else "left")
    for r in rows:
        t.add_row(*[fmt(v) for v in r])
    return t


@contextmanager
def progress_bar(label: str, disable: bool = False) -> Iterator[Callable[[int, int | None], None]]:
    """A transient bar on stderr; yields the ``progress(advance, total)`` callback the engine takes."""
    columns = (TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    # Off when stderr is not a terminal: there a transient bar only leaves an empty line behind.
    with Progress(*columns, console=err, transient=True, disable=disable or not err.is_terminal) as bar:
        task = bar.add_task(label, total=None)
        yield lambda n, total: bar.update(task, advance=n, total=total)
