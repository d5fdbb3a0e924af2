"""Parameter and FLOP counts of every registered model (engine of `seg models`)."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from segcli.errors import UserError
from segcli.models import MODELS, supported_options
from segcli.models.encoder import TimmEncoder


def _count_flops(net: torch.nn.Module, size: tuple[int, int], device: str) -> int:
    x = torch.zeros(1, 3, *size, device=device)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        net(x)
    return counter.get_total_flops()


def model_summary(name: str, size: tuple[int, int], backbone: str = "resnet18", num_classes: int = 19) -> dict:
    """Parameters and GFLOPs (batch 1, eval mode; FLOPs = 2 x multiply-adds) of one model at ``size``.

    Shapes are traced on the meta device when every op supports it (no memory, no compute),
    else on the CPU. A model that cannot run at ``size`` gets an ``error`` entry instead.
    """
    row: dict = {"name": name, "backbone": backbone, "params_m": None, "gflops": None, "error": None}
    try:
        options = supported_options(name, {"backbone": backbone})
        with torch.device("meta"):
            net = MODELS.get(name)(num_classes, **options).eval()
        if not any(isinstance(m, TimmEncoder) for m in net.modules()):
            row["backbone"] = "own"
        row["params_m"] = round(sum(p.numel() for p in net.parameters()) / 1e6, 3)
        try:
            flops = _count_flops(net, size, "meta")
        except (NotImplementedError, RuntimeError):
            net = MODELS.get(name)(num_classes, **options).eval()
            flops = _count_flops(net, size, "cpu")
        row["gflops"] = round(flops / 1e9, 2)
    except UserError as e:
        row["error"] = str(e)
    return row


def summarize_models(
    size: tuple[int, int] = (512, 1024),
    backbone: str = "resnet18",
    num_classes: int = 19,
    names: list[str] | None = None,
) -> list[dict]:
    """One :func:`model_summary` row per registered model (or per name in ``names``)."""
    return [model_summary(n, size, backbone, num_classes) for n in (names or MODELS.names())]
