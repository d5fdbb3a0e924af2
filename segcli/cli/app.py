"""The root `seg` command: --version, -v/--verbose, and one red line per user error.

Each command lives in its own module with a ``register(app)`` function; adding a command is
one new module plus one entry in ``COMMAND_MODULES``.
"""

from __future__ import annotations

import importlib
import sys
import traceback

import click
import typer
from rich.markup import escape

from segcli import __version__
from segcli.cli._common import err, state
from segcli.errors import SegError

COMMAND_MODULES = ["prepare", "train", "evaluate", "infer", "presets", "models", "check", "class_weights", "crop"]

app = typer.Typer(
    name="seg",
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


for _name in COMMAND_MODULES:
    importlib.import_module(f"segcli.cli.{_name}").register(app)


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
        err.print(f"[bold red]error:[/] {escape(str(e))}")
        return e.exit_code
    except click.exceptions.Abort:
        err.print("[red]aborted[/]")
        return 130
    except click.ClickException as e:
        e.show()
        return 2
    except KeyboardInterrupt:
        err.print("[red]interrupted[/]")
        return 130
    except Exception as e:  # noqa: BLE001 - a bug: one line unless --verbose
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
