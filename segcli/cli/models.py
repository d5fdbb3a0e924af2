"""`seg models [--size HxW] [--backbone NAME] [--json]`: every registered model with parameters, GFLOPs and paper."""

from __future__ import annotations

import typer

from segcli.cli._common import SIZE_METAVAR, JsonOpt, examples_for, hw, out, print_json, table
from segcli.errors import UserError


def check_backbone(name: str) -> None:
    """A UserError with the closest names when ``name`` is not a backbone (hub names are not checked)."""
    from segcli.errors import arg
    from segcli.models.checks import backbone_problem

    problem = backbone_problem(name, key=arg("backbone"))
    if problem:
        raise UserError(problem)


def models_cmd(
    size: str = typer.Option(
        "512x1024", "--size", metavar=SIZE_METAVAR, help="Input size for the FLOP count: H,W, HxW or N (square)."
    ),
    backbone: str = typer.Option("resnet18", "--backbone", help="timm backbone for models that use one."),
    num_classes: int = typer.Option(19, "--classes", min=1, help="Number of output classes."),
    as_json: bool = JsonOpt,
) -> None:
    """List every registered model with its parameters, GFLOPs (batch 1, eval mode) and paper."""
    from segcli.models import MODELS
    from segcli.models.registry import short_paper
    from segcli.models.summary import summarize_models

    size_hw = hw(size, "--size")
    check_backbone(backbone)
    rows = summarize_models(size_hw, backbone, num_classes)
    for r in rows:
        info = MODELS.info(r["name"])
        r.update(paper=info.paper, reference=info.reference)
    if as_json:
        print_json({"size": list(size_hw), "backbone": backbone, "num_classes": num_classes, "models": rows})
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
    title = f"models at {size_hw[0]}x{size_hw[1]}, {num_classes} classes (GFLOPs = 2 x multiply-adds, batch 1)"
    out.print(table(title, ["name", "backbone", "params (M)", "GFLOPs", "paper"], cells))
    out.print("[dim]titles, reference implementations and export modes: docs/models.md[/dim]")


def register(app: typer.Typer) -> None:
    app.command("models", epilog=examples_for("models"))(models_cmd)
