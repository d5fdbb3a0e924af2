"""The root `seg` command: --version, -v/--verbose, and one red line per user error.

Each command lives in its own module with a ``register(app)`` function; adding a command is
one new module plus one entry in ``COMMAND_MODULES``, whose order is the order `seg --help`
lists them: the workflow first (prepare → check → ... → infer), then the helpers.
"""

from __future__ import annotations

import importlib
import sys
import traceback

import typer
from rich.markup import escape

from segcli import __version__
from segcli.cli._common import SegGroup, err, state
from segcli.cli.flags import cli_message
from segcli.errors import SegError, from_os_error

COMMAND_MODULES = [
    "prepare",
    "check",
    "browse",
    "class_weights",
    "crop",
    "train",
    "evaluate",
    "infer",
    "export",
    "calibrate",
    "report",
    "presets",
    "models",
    "benchmark",
    "convert_ckpt",
]


class RootGroup(SegGroup):
    """`seg` itself: commands listed in the order of ``COMMAND_MODULES``."""

    order: tuple[str, ...] = ()


app = typer.Typer(
    name="seg",
    cls=RootGroup,
    help="segcli: semantic segmentation from one command (prepare, train, eval, infer).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"segcli {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    verbose: bool = typer.Option(False, "-v", "--verbose", help="Show tracebacks and debug detail."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """segcli: semantic segmentation from one command."""
    state.verbose = verbose


def _registered_names() -> list[str]:
    return [c.name for c in (*app.registered_commands, *app.registered_groups) if c.name]


for _name in COMMAND_MODULES:  # typer lists sub-groups after commands; keep the order of registration instead
    _before = set(_registered_names())
    importlib.import_module(f"segcli.cli.{_name}").register(app)
    RootGroup.order += tuple(n for n in _registered_names() if n not in _before)


def _click_error_types() -> tuple[tuple[type, ...], tuple[type, ...]]:
    """(usage-error types, abort types) of the click that typer runs on.

    typer >= 0.29 bundles its own click, whose exceptions derive from ``typer.TyperException``;
    older typer uses the click package. Both are caught, so an upgrade cannot turn a usage error
    into an "unexpected error" again.
    """
    usage: list[type] = [t for t in (getattr(typer, "TyperException", None),) if t is not None]
    aborts: list[type] = [typer.Abort]
    try:
        import click

        usage.append(click.ClickException)
        aborts.append(click.exceptions.Abort)
    except ImportError:  # pragma: no cover - typer without the click package
        pass
    return tuple(usage), tuple(aborts)


_USAGE_ERRORS, _ABORTS = _click_error_types()


def _show_usage_error(e: Exception) -> int:
    """One red line with the hint where to look; a bare group or command shows its help."""
    if type(e).__name__ == "NoArgsIsHelpError":
        e.show()  # the help text, as `seg prepare` with nothing after it asks for
        return 2
    ctx = getattr(e, "ctx", None)
    where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
    message = e.format_message() if hasattr(e, "format_message") else str(e)
    err.print(f"[bold red]error:[/] {escape(message)}{escape(where)}")
    return int(getattr(e, "exit_code", 2) or 2)


def run(argv: list[str] | None = None) -> int:
    """Run `seg` with ``argv`` and return the exit code (errors become one red line)."""
    args = list(sys.argv[1:] if argv is None else argv)
    state.verbose = "-v" in args or "--verbose" in args
    try:
        rc = app(args=args, prog_name="seg", standalone_mode=False)
        return rc if isinstance(rc, int) else 0
    except SegError as e:
        if state.verbose:
            traceback.print_exc()
        err.print(f"[bold red]error:[/] {escape(cli_message(str(e)))}")
        return e.exit_code
    except _ABORTS:
        err.print("[red]aborted[/]")
        return 130
    except _USAGE_ERRORS as e:
        return _show_usage_error(e)
    except KeyboardInterrupt:
        err.print("[red]interrupted[/]")
        return 130
    except Exception as e:  # noqa: BLE001 - a bug: one line unless --verbose
        user = from_os_error(e)  # read-only folder, no permission, full disk, quota: the path and what to do
        if user is not None:
            if state.verbose:
                traceback.print_exc()
            err.print(f"[bold red]error:[/] {escape(str(user))}")
            return user.exit_code
        if state.verbose:
            traceback.print_exc()
        else:
            err.print(
                f"[bold red]error:[/] unexpected {type(e).__name__}: {escape(str(e))} "
                "(run with --verbose for the traceback)"
            )
        return 1


def main() -> None:
    sys.exit(run())
