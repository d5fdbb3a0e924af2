"""`seg prepare NAME ...`: convert a dataset into the segcli format, one sub-command per converter.

The sub-commands are not written here: :class:`ConverterGroup` builds each one from the converter
registry (:mod:`segcli.data.prepare`) when it is listed or called, with the converter's help, its
sources argument, its own options and the options every converter shares. A converter registered
after import (a plugin, a test) is a command like any other.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape
from typer.core import TyperGroup

from segcli.cli._common import err, examples, examples_for, out, print_json, progress_bar, table

# Options every converter gets: (python name, annotation, typer.Option); names match segcli.data.prepare.prepare.
# Bool flags get metavar "" so that help shows no "<bool>" value placeholder.
SHARED: tuple[tuple[str, Any, Any], ...] = (
    (
        "out",
        Optional[Path],  # noqa: UP045 - runtime type
        typer.Option(None, "--out", "-o", help="Folder to write the dataset to (default: data/NAME)."),
    ),
    (
        "overwrite",
        bool,
        typer.Option(
            False, "--overwrite", metavar="", help="Redo samples already written (and accept changed settings)."
        ),
    ),
    ("force", bool, typer.Option(False, "--force", hidden=True, help="Old name of --overwrite.")),
    (
        "link",
        bool,
        typer.Option(
            False, "--link", metavar="", help="Hard-link (else symlink) unchanged images instead of copying them."
        ),
    ),
    ("workers", int, typer.Option(0, "--workers", "-j", min=0, help="Worker processes (0 = convert in this process).")),
    (
        "as_json",
        bool,
        typer.Option(False, "--json", metavar="", help="Print one JSON object on stdout instead of tables."),
    ),
)


class ConverterGroup(TyperGroup):
    """`seg prepare`: one command per registered converter, built on demand from its declaration."""

    def list_commands(self, ctx: Any) -> list[str]:
        from segcli.data.prepare import converters

        return converters().names()

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        from segcli.data.prepare import converters

        registry = converters()
        return converter_command(registry.get(cmd_name)) if cmd_name in registry else None


prepare_app = typer.Typer(
    cls=ConverterGroup,
    help="Convert a dataset into the segcli format (images/, masks/, dataset.toml).",
    no_args_is_help=True,
    rich_markup_mode="rich",
)


def _param(name: str, annotation: Any, default: Any, positional: bool = False) -> inspect.Parameter:
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD if positional else inspect.Parameter.KEYWORD_ONLY
    return inspect.Parameter(name, kind, default=default, annotation=annotation)


def converter_command(conv: Any) -> Any:
    """The click command of one converter: SRC... (when it reads downloads), its options, the shared ones."""
    params = []
    fetches = bool(conv.takes_sources and conv.downloads)
    if conv.takes_sources:
        src_help = conv.sources_help + (" Leave out to download the public files into the cache." if fetches else "")
        # Optional for every converter: without SRC the engine downloads the files or says where to get them.
        src = typer.Argument(None, help=escape(src_help), metavar="SRC", show_default=False)
        params.append(_param("sources", Optional[list[Path]], src, positional=True))  # noqa: UP045 - runtime type
    params.append(_param(*SHARED[0]))
    for o in conv.options:
        annotation = o.type if o.default is not None or o.type is bool else Optional[o.type]  # noqa: UP045 - runtime type
        decls = [o.cli_flag, *([o.short] if o.short else [])]
        flag = {"metavar": ""} if o.type is bool else {}
        option = typer.Option(o.default, *decls, help=escape(o.help), min=o.min, **flag)
        params.append(_param(o.name, annotation, option))
    params.extend(_param(*shared) for shared in SHARED[1:])

    def command(**kwargs: Any) -> None:
        run_converter(conv.name, kwargs)

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    single = typer.Typer(rich_markup_mode="rich", add_completion=False)
    help_text = conv.help
    if fetches:
        from segcli.data.prepare.fetch import cache_dir, describe

        help_text += (
            f"\n\nWith no SRC, downloads {describe(conv.downloads)} into {cache_dir()} (set SEGCLI_CACHE to move it), "
            "checks and converts them; an interrupted download resumes."
        )
    elif conv.takes_sources:
        help_text += f"\n\nSRC: {conv.expected}."
    single.command(
        conv.name,
        help=escape(help_text),
        no_args_is_help=conv.takes_sources and not fetches,
        epilog=escape(converter_examples(conv.name, conv.takes_sources, fetches)),
    )(command)
    return typer.main.get_command(single)


def converter_examples(name: str, takes_sources: bool, fetches: bool) -> str:
    """The examples ending `seg prepare NAME --help`: the converter's own, else the forms its sources allow."""
    own = examples_for(f"prepare {name}", missing_ok=True)
    if own:
        return own
    if fetches:
        return examples(f"seg prepare {name}", f"seg prepare {name} ~/Downloads/{name}/ --out data/{name} --workers 4")
    if takes_sources:
        return examples(f"seg prepare {name} SRC --out data/{name}", f"seg prepare {name} SRC --out data/{name} --link")
    return examples(f"seg prepare {name}", f"seg prepare {name} --out /tmp/{name}")


def run_converter(name: str, kwargs: dict[str, Any]) -> None:
    """Call the engine's ``prepare`` with the parsed arguments, with a progress bar; print the summary."""
    import segcli.data.prepare as engine

    opts = dict(kwargs)
    sources, out_dir, as_json = opts.pop("sources", None) or [], opts.pop("out"), opts.pop("as_json")
    replace = bool(opts.pop("force", False)) | bool(opts.pop("overwrite", False))
    write = engine.WriteOptions(force=replace, link=opts.pop("link", False), workers=opts.pop("workers", 1))
    with download_bar() as fetch_progress, progress_bar(f"converting {name}") as progress:
        res = engine.prepare(
            name, sources, out_dir, write=write, progress=progress, fetch_progress=fetch_progress, **opts
        )
    if res.written == 0 and not as_json:
        err.print(f"{res.root}: already prepared, nothing to do (--overwrite redoes it)")
    for warning in res.warnings:  # what the closing checks of seg check found worth a look
        err.print(f"warning: {warning}", markup=False, highlight=False, soft_wrap=True)
    show_summary({**res.summary(), **engine.converters().get(name).report(res)}, as_json)


@contextmanager
def download_bar() -> Iterator[Callable[[str, int, int | None], None]]:
    """A line per file fetched and a transient byte bar on stderr: the engine's ``fetch_progress``."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    columns = (TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, TimeRemainingColumn(), console=err, transient=True, disable=not err.is_terminal) as bar:
        tasks: dict[str, Any] = {}

        def update(file: str, done: int, total: int | None) -> None:
            if file not in tasks:
                from segcli.data.prepare.fetch import human_size

                size = human_size(total) if total is not None else "size unknown"
                err.print(f"downloading {escape(file)} ({size}{', resuming' if done else ''})")
                tasks[file] = bar.add_task(file, total=total, completed=done)
            bar.update(tasks[file], completed=done, total=total)

        yield update


def show_summary(summary: dict[str, Any], as_json: bool) -> None:
    """Print images per split and pixel share per class of a prepared dataset."""
    if as_json:
        print_json(summary)
        return
    images = [[s, n] for s, n in summary["images"].items()]
    out.print(table(f"{summary['name']}: images per split", ["split", "images"], images))
    share = summary["pixel_share"]
    out.print(
        table("pixel share per class (all splits, ignore excluded)", ["class", "share"], [[c, share[c]] for c in share])
    )
    out.print(f"dataset written to [bold]{escape(summary['root'])}[/]")


def register(app: typer.Typer) -> None:
    app.add_typer(prepare_app, name="prepare")
