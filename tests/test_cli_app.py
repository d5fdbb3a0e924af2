"""The root command: help order, flags, usage errors as one red line with exit 2, --version, -v."""

from __future__ import annotations

import re

import pytest

from segcli.cli.app import run

WORKFLOW = ["prepare", "check", "class-weights", "crop-by-mask", "train", "eval", "infer", "presets", "models"]


def test_help_lists_commands_in_workflow_order(capsys: pytest.CaptureFixture) -> None:
    assert run(["--help"]) == 0
    out = capsys.readouterr().out
    listed = [m.group(1) for m in re.finditer(r"^│ ([a-z-]+)\s{2,}\S", out, re.M) if m.group(1) in WORKFLOW]
    assert listed == WORKFLOW


@pytest.mark.parametrize("args", [["--help"], ["train", "--help"], ["eval", "--help"], ["infer", "--help"]])
def test_flags_show_no_value_placeholder(args: list[str], capsys: pytest.CaptureFixture) -> None:
    assert run(args) == 0
    out = capsys.readouterr().out
    assert "<bool>" not in out and "BOOLEAN" not in out
    assert "--help" in out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["trian"], "No such command 'trian'"),
        (["train", "quickstart", "--epochs", "3"], "No such option: --epochs"),
        (["eval", "run", "--batch-size", "0"], "--batch-size"),
        (["infer", "run", "x.jpg", "--out", "o", "--amp", "fp32"], "'fp32' is not one of"),
        (["eval", "run", "--absent", "maybe"], "'maybe' is not one of"),
        (["prepare", "nosuch"], "No such command 'nosuch'"),
    ],
)
def test_usage_errors_are_one_red_line_exit_2(args: list[str], needle: str, capsys: pytest.CaptureFixture) -> None:
    assert run(args) == 2
    err = capsys.readouterr().err
    assert needle in err and "unexpected" not in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and "--help" in err


@pytest.mark.parametrize("args", [[], ["eval"], ["prepare"], ["presets"]])
def test_bare_commands_show_their_help(args: list[str], capsys: pytest.CaptureFixture) -> None:
    rc = run(args)
    out = capsys.readouterr().out
    assert rc in (0, 2) and "Usage: seg" in out and "unexpected" not in out


def test_usage_error_types_cover_the_installed_typer() -> None:
    """The integration point that typer 0.29 broke: its usage errors must be among the caught types."""
    import typer

    from segcli.cli.app import _USAGE_ERRORS

    assert issubclass(typer.BadParameter, _USAGE_ERRORS)
