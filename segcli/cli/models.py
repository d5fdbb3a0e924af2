"""`seg models [--size HxW] [--backbone NAME] [--json]`: every registered model with parameters, GFLOPs and paper."""

from __future__ import annotations

import re

import typer

from segcli.cli._common import JsonOpt, out, print_json, table
from segcli.errors import UserError


def parse_size(text: str) -> tuple[int, int]:
    """``"512x1024"`` (height x width) or ``"512"`` (square) → (512, 1024)."""
    m = re.fullmatch(r"\s*(\d+)\s*(?:[xX,]\s*(\d+))?\s*", text)
    if not m or int(m.group(1)) < 1 or (m.group(2) is not None and int(m.group(2)) < 1):
        raise UserError(f"--size {text!r}: expected HEIGHTxWIDTH such as 512x1024, or one number for a square")
    h = int(m.group(1))
    return h, int(m.group(2) or h)


def check_backbone(name: str) -> None:
    """A UserError with the closest names when ``name`` is not a backbone (hub names are not checked)."""
    from segcli.errors import arg
    from segcli.models.checks import backbone_problem

    problem = backbone_problem(name, key=arg("backbone"))
    if problem:
        raise UserError(problem)


def models_cmd(
    size: str = typer.Option("512x1024", "--size", help="Input size HEIGHTxWIDTH for the FLOP count."),
    backbone: str = typer.Option("resnet18", "--backbone", help="timm backbone for models that use one."),
    num_classes: int = typer.Option(19, "--classes", min=1, help="Number of output classes."),
    as_json: bool = JsonOpt,
) -> None:
    """List every registered model with its parameters, GFLOPs (batch 1, eval mode) and paper."""
    from segcli.models import MODELS
    from segcli.models.registry import short_paper
    from segcli.models.summary import summarize_models

    hw = parse_size(size)
    check_backbone(backbone)
    rows = summarize_models(hw, backbone, num_classes)
    for r in rows:
        info = MODELS.info(r["name"])
        r.update(paper=info.paper, reference=info.reference)
    if as_json:
        print_json({"size": list(hw), "backbone": backbone, "num_classes": num_classes, "models": rows})
        return
    cells = [
        [
            r["name"],
            r["backbone"],
            r["params_m"],
            r["gflops"] if r["gflops"] is not None else r["error"],
            short_paper(r["paper"]) or "-",
        ]
        for r in rows
    ]
    title = f"models at {hw[0]}x{hw[1]}, {num_classes} classes (GFLOPs = 2 x multiply-adds, batch 1)"
    out.print(table(title, ["name", "backbone", "params (M)", "GFLOPs", "paper"], cells))
    out.print("[dim]titles, reference implementations and export modes: docs/models.md[/dim]")


def register(app: typer.Typer) -> None:
    app.command("models")(models_cmd)
