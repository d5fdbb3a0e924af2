"""The root command: help order, --version, -v, and every error as one red line (exit 2 for the user's, 1 for a bug,
130 for an interrupt)."""

from __future__ import annotations

import re

import pytest

from segcli.cli.app import run

WORKFLOW = ["prepare", "check", "class-weights", "crop-by-mask", "train", "eval", "infer", "presets", "models"]


def test_help_and_version(capsys: pytest.CaptureFixture) -> None:
    assert run(["--help"]) == 0
    out = capsys.readouterr().out
    for cmd in ("prepare", "train", "eval", "infer", "presets"):
        assert cmd in out
    assert run(["--version"]) == 0
    assert capsys.readouterr().out.startswith("segcli ")


def test_help_lists_commands_in_workflow_order(capsys: pytest.CaptureFixture) -> None:
    assert run(["--help"]) == 0
    out = capsys.readouterr().out
    listed = [m.group(1) for m in re.finditer(r"^│ ([a-z-]+)\s{2,}\S", out, re.M) if m.group(1) in WORKFLOW]
    assert listed == WORKFLOW


def test_every_command_module_registers_commands_in_its_order() -> None:
    """Each entry of COMMAND_MODULES adds at least one command; `seg --help` lists each registered name once."""
    import importlib

    import typer

    from segcli.cli.app import COMMAND_MODULES, RootGroup, _registered_names

    assert sorted(RootGroup.order) == sorted(set(_registered_names())) and len(set(RootGroup.order)) == len(
        RootGroup.order
    )
    for name in COMMAND_MODULES:
        probe = typer.Typer()
        importlib.import_module(f"segcli.cli.{name}").register(probe)
        added = [c.name for c in (*probe.registered_commands, *probe.registered_groups)]
        assert added and set(added) <= set(RootGroup.order), name


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["train", "quickstart", "train.epoch=3"], 'did you mean "train.epochs"'),
        (["train", "quickstart", "data.root=/definitely/missing"], "/definitely/missing: dataset folder not found"),
        (["train", "quickstar"], 'did you mean "quickstart"'),
        (["eval", "/no/such/weights.safetensors"], "no such weights file or run directory"),
        (["infer", "/no/such/run", "x.jpg", "--out", "o"], "no such weights file or run directory"),
        (["presets", "show", "quickstart", "optim.lr=fast"], "[optim] lr = 'fast' has the wrong type; expected number"),
    ],
)
def test_user_errors_are_one_red_line(args: list[str], needle: str, capsys: pytest.CaptureFixture) -> None:
    assert run(args) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_verbose_shows_traceback(capsys: pytest.CaptureFixture) -> None:
    assert run(["-v", "train", "quickstar"]) == 2
    assert "Traceback" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["trian"], "No such command 'trian'"),
        (["train", "quickstart", "--epoch", "3"], "No such option: --epoch"),
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


def _raising(monkeypatch: pytest.MonkeyPatch, exc: BaseException) -> None:
    """Make `seg presets show` raise ``exc`` from the engine."""

    def boom(*args: object, **kwargs: object) -> None:
        raise exc

    monkeypatch.setattr("segcli.config.load.load_preset", boom)


def test_a_bug_is_one_line_exit_1_and_verbose_shows_its_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    _raising(monkeypatch, RuntimeError("boom"))
    assert run(["presets", "show", "quickstart"]) == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        "error: unexpected RuntimeError: boom (run with --verbose for the traceback)"
    ], err
    assert run(["--verbose", "presets", "show", "quickstart"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "RuntimeError: boom" in err


@pytest.mark.parametrize(
    ("exc", "code", "line"),
    [
        ("TrainingError", 1, "error: loss became nan"),  # valid work that failed: exit 1
        ("DataError", 2, "error: loss became nan"),  # the user's input: exit 2
    ],
)
def test_seg_errors_exit_with_their_code(
    exc: str, code: int, line: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import segcli.errors

    _raising(monkeypatch, getattr(segcli.errors, exc)("loss became nan"))
    assert run(["presets", "show", "quickstart"]) == code
    assert capsys.readouterr().err.strip() == line


def test_error_lines_name_flags_and_show_brackets_as_written(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """An engine message names ``arg("out_dir")``; the command line says ``--out``. Rich markup is not applied."""
    from segcli.errors import UserError, arg

    _raising(monkeypatch, UserError(f"{arg('out_dir')} and {arg('tile')} clash in [bold]x[/bold]"))
    assert run(["presets", "show", "quickstart"]) == 2
    assert capsys.readouterr().err.strip() == "error: --out and --tile clash in [bold]x[/bold]"


def test_interrupt_exits_130(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    _raising(monkeypatch, KeyboardInterrupt())
    assert run(["presets", "show", "quickstart"]) == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err and "unexpected" not in err and "error:" not in err


def test_main_exits_with_the_code_of_run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    from segcli.cli.app import main

    monkeypatch.setattr("sys.argv", ["seg", "trian"])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 2 and "No such command 'trian'" in capsys.readouterr().err
    monkeypatch.setattr("sys.argv", ["seg", "--version"])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 0 and capsys.readouterr().out.startswith("segcli ")
