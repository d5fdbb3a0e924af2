"""What every command shares: the prediction protocol's options parsed into one object, sizes and scales with
errors naming the option, tables, JSON, undecodable file names, and flags shown without a value placeholder."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import typer
from cli_helpers import user_error
from typer.testing import CliRunner

from segcli.cli._common import (
    Amp,
    SegGroup,
    _Console,
    examples,
    fmt,
    hw,
    print_json,
    printable,
    progress_bar,
    protocol_choices,
    scales,
    table,
    with_protocol,
    workers,
)
from segcli.cli.app import run
from segcli.errors import UserError
from segcli.infer import ProtocolChoices


@pytest.mark.parametrize("args", [["--help"], ["train", "--help"], ["eval", "--help"], ["infer", "--help"]])
def test_flags_show_no_value_placeholder(args: list[str], capsys: pytest.CaptureFixture) -> None:
    assert run(args) == 0
    out = capsys.readouterr().out
    assert "<bool>" not in out and "BOOLEAN" not in out
    assert "--help" in out


OPTION_CASES: dict[str, tuple[Callable[[Path, Path, Path], list], tuple[str, ...]]] = {
    "eval --amp": (lambda w, d, t: ["eval", w, "--data", d, "--amp", "fp32"], ("'fp32'",)),
    "infer --amp": (lambda w, d, t: ["infer", w, d / "images" / "val", "--out", t / "o", "--amp", "x"], ("'x'",)),
}


@pytest.mark.parametrize("case", list(OPTION_CASES))
def test_bad_option(case: str, weights: Path, data: Path, tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    make, needles = OPTION_CASES[case]
    user_error(capfd, make(weights, data, tmp_path), *needles)


def test_printable_shows_undecodable_bytes_escaped() -> None:
    name = b"bad\xff.png".decode("utf-8", "surrogateescape")
    assert printable(name) == "bad\\xff.png"
    assert printable("café.png") == "café.png"  # valid text is left alone
    buffer = io.StringIO()
    _Console(file=buffer, width=200).print(f"wrote {name}")  # a plain rich console fails on the surrogate
    assert buffer.getvalue().strip() == "wrote bad\\xff.png"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("512,1024", (512, 1024)),
        ("512", (512, 512)),
        ("64x32", (64, 32)),
        (" 64 X 32 ", (64, 32)),
        (" 8 , 9 ", (8, 9)),
        (None, None),
    ],
)
def test_hw_parses_height_and_width(value: str | None, expected: tuple[int, int] | None) -> None:
    assert hw(value, "--tile") == expected


@pytest.mark.parametrize("value", ["0,4", "a,b", "1,2,3", "-1", "", "0x5", "64by96", "1x2x3"])
def test_hw_rejects_a_bad_size_naming_the_option(value: str) -> None:
    with pytest.raises(UserError) as info:
        hw(value, "--stride")
    assert str(info.value).startswith(f"--stride {value}: give H,W as two whole numbers > 0")


def test_scales_parse_factors_and_reject_what_is_not_one() -> None:
    assert scales("0.75,1,1.25") == (0.75, 1.0, 1.25)
    assert scales("1,,2") == (1.0, 2.0)
    assert scales(None) is None
    for bad in ("", "a,1", "0,1", "1,-2"):
        with pytest.raises(UserError, match=r"^--tta-scales .*: give comma-separated factors > 0"):
            scales(bad)
    with pytest.raises(UserError, match="^--scales x:"):
        scales("x", option="--scales")


def test_protocol_choices_parse_every_option() -> None:
    chosen = protocol_choices(Amp.bf16, "64", True, "32,48", None, None, "1,2", 3)
    assert chosen == ProtocolChoices(
        size=(64, 64), slide=True, tile=(32, 48), stride=None, tta=None, tta_scales=(1.0, 2.0), amp="bf16", batch_size=3
    )
    assert protocol_choices(None, None, None, None, None, None, None, None) == ProtocolChoices()


def test_with_protocol_turns_the_options_into_one_protocol() -> None:
    """The command sees one ``protocol``; the command line has --amp, --size, ... and its own --batch-size."""
    seen: dict[str, Any] = {}

    @with_protocol(batch_size=typer.Option(5, "--batch-size", min=1))
    def cmd(name: str = typer.Argument(...), protocol: Any = None) -> None:
        seen.update(name=name, protocol=protocol)

    app = typer.Typer()
    app.command()(cmd)
    app.command("other")(lambda: None)
    argv = ["x", "--amp", "fp16", "--size", "40,60", "--whole", "--tile", "16", "--no-tta", "--tta-scales", "1.5"]
    res = CliRunner().invoke(app, ["cmd", *argv])
    assert res.exit_code == 0, res.output
    assert seen == {
        "name": "x",
        "protocol": ProtocolChoices(
            size=(40, 60), slide=False, tile=(16, 16), tta=False, tta_scales=(1.5,), amp="fp16", batch_size=5
        ),
    }
    assert CliRunner().invoke(app, ["cmd", "x", "--batch-size", "0"]).exit_code == 2
    res = CliRunner().invoke(app, ["cmd", "x", "--size", "big"])
    assert isinstance(res.exception, UserError) and "--size big" in str(res.exception)


def test_fmt_and_table() -> None:
    assert fmt(0.5) == "0.5000" and fmt(1 / 3, 2) == "0.33" and fmt(float("nan")) == "nan"
    assert fmt(7) == "7" and fmt("road") == "road"
    t = table("t", ["class", "iou", "mixed"], [["road", 0.5, 1], ["car", float("nan"), "-"]])
    assert [c.justify for c in t.columns] == ["left", "right", "left"]  # numbers right, text (or a mix) left
    assert list(t.columns[1].cells) == ["0.5000", "nan"]
    assert [c.justify for c in table("empty", ["a"], []).columns] == ["left"]


def test_print_json_writes_strict_json(capsys: pytest.CaptureFixture) -> None:
    print_json({"mIoU": float("nan"), "path": Path("a/b"), "n": (1, 2)})
    out = capsys.readouterr().out
    assert json.loads(out) == {"mIoU": None, "path": "a/b", "n": [1, 2]} and "NaN" not in out


def test_seg_group_lists_its_order_first() -> None:
    class Group(SegGroup):
        order = ("b", "a")

    app = typer.Typer(cls=Group)
    for name in ("c", "a", "b"):
        app.command(name)(lambda: None)
    group = typer.main.get_command(app)
    assert group.list_commands(None) == ["b", "a", "c"]  # the order, then the rest as added


def test_progress_bar_off_the_terminal_takes_updates_silently(capsys: pytest.CaptureFixture) -> None:
    with progress_bar("counting") as progress:
        progress(1, 3)
        progress(2, None)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(("value", "expected"), [("0", 0), ("3", 3), ("auto", "auto"), (" AUTO ", "auto")])
def test_workers_reads_a_count_or_auto(value: str, expected: int | str) -> None:
    assert workers(value) == expected


@pytest.mark.parametrize("value", ["-1", "two", "1.5", ""])
def test_workers_rejects_anything_else(value: str) -> None:
    with pytest.raises(UserError, match=r"--workers .*: give a whole number >= 0 \(0 = in this process\) or auto"):
        workers(value)


def test_examples_ends_help_with_one_command_a_line() -> None:
    text = examples("seg a", "seg b")
    assert text.startswith("Examples:") and text.splitlines()[-1].strip() == "seg b"


def test_examples_come_from_the_table_and_a_missing_command_is_named() -> None:
    from segcli.cli._common import examples_for

    assert examples_for("infer").startswith("Examples:\n\n  seg infer ")
    assert examples_for("prepare no-such-converter", missing_ok=True) == ""
    with pytest.raises(KeyError, match="no examples for 'no-such-command'"):
        examples_for("no-such-command")


def test_choice_types_offer_what_the_engine_accepts() -> None:
    from segcli.core.runtime import AMP_MODES

    assert tuple(m.value for m in Amp) == AMP_MODES and Amp("bf16") is Amp.bf16 and isinstance(Amp.none, str)
