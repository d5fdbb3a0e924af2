"""`seg presets list` and `seg presets show NAME_OR_PATH [key=value ...]`."""

from __future__ import annotations

import typer

from segcli.cli._common import JsonOpt, err, examples_for, out, print_json, table

presets_app = typer.Typer(help="List bundled presets or show one fully resolved.", no_args_is_help=True)


def _first_comment(path) -> str:  # noqa: ANN001
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""


@presets_app.command("list", epilog=examples_for("presets list"))
def list_cmd(as_json: bool = JsonOpt) -> None:
    """Bundled presets: what each trains (model, backbone, crop), its source and the mIoU the source reports."""
    import dataclasses

    from segcli.config.load import list_presets, preset_meta, preset_summary

    items = []
    for p in list_presets():
        meta, what = preset_meta(p), preset_summary(p)
        items.append(
            {"name": p.stem, "path": str(p), "about": _first_comment(p), **dataclasses.asdict(what)}
            | dataclasses.asdict(meta)
        )
    if as_json:
        print_json({"presets": items})
        return
    rows = [
        [
            i["name"],
            f"{i['reported_miou']:.2f}" if i["reported_miou"] else "-",
            i["protocol"] or "-",
            i["model"],
            (i["backbone"] + ("*" if i["pretrained"] else "")) if i["backbone"] else "(its own)",
            "x".join(str(n) for n in i["crop"]),
            i["source"].replace("https://github.com/", ""),
        ]
        for i in items
    ]
    columns = ["name", "mIoU", "protocol", "model", "backbone", "crop", "source"]
    out.print(table("bundled presets: what each trains, and the mIoU its source reports", columns, rows))
    out.print("[dim]* pretrained backbone: timm's ImageNet weights (offline: model.pretrained_file=PATH)[/dim]")
    out.print("[dim]seg presets show NAME prints a recipe in full; --json adds each one's description and notes[/dim]")


@presets_app.command("show", epilog=examples_for("presets show"))
def show_cmd(
    name: str = typer.Argument(..., help="Preset name or path."),
    overrides: list[str] = typer.Argument(None, help="key=value overrides to apply."),
    as_json: bool = JsonOpt,
) -> None:
    """Print the fully resolved preset (extends merged, overrides applied, defaults filled in)."""
    from segcli.config.load import load_preset, preset_to_dict, preset_to_toml

    loaded = load_preset(name, overrides or [], check_files=False)  # the data's files are checked by training
    for note in loaded.notes:
        err.print(f"note: {note}", markup=False, highlight=False)
    if as_json:
        print_json(preset_to_dict(loaded.preset))
        return
    typer.echo(preset_to_toml(loaded.preset, header=f"resolved from {loaded.path}"), nl=False)


def register(app: typer.Typer) -> None:
    app.add_typer(presets_app, name="presets")
