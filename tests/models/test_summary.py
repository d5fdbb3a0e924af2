"""Parameter and FLOP counts per model (the engine of `seg models`)."""

from __future__ import annotations

import pytest
import torch
from model_helpers import one_thread
from torch.utils.flop_counter import FlopCounterMode

from segcli.models import MODELS
from segcli.models.summary import model_summary, summarize_models

_one_thread = pytest.fixture(autouse=True, scope="module")(one_thread)


class _NeedsValues(torch.nn.Module):
    """A network that reads a value (cannot run on the meta device): counted by a CPU run instead."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) * float(x.mean().item() + 1)


@pytest.fixture
def needs_values():
    MODELS.register("tmp_needs_values", timm_encoder=False)(_NeedsValues)
    yield "tmp_needs_values"
    MODELS.unregister("tmp_needs_values")


def test_summary_counts_match_a_cpu_run() -> None:
    row = model_summary("ddrnet23_slim", (64, 96), num_classes=5)
    assert row["backbone"] == "own" and row["error"] is None
    net = MODELS.get("ddrnet23_slim")(5).eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        net(torch.zeros(1, 3, 64, 96))
    assert row["gflops"] == round(counter.get_total_flops() / 1e9, 2) and row["gflops"] > 0
    assert row["params_m"] == round(sum(p.numel() for p in net.parameters()) / 1e6, 3)
    assert model_summary("enet", (60, 60))["error"].startswith("model 'enet' needs")


def test_timm_models_name_their_backbone() -> None:
    row = model_summary("fcn", (64, 64), backbone="test_resnet", num_classes=3)
    assert row["name"] == "fcn" and row["backbone"] == "test_resnet" and row["error"] is None
    net = MODELS.get("fcn")(3, backbone="test_resnet")
    assert row["params_m"] == round(sum(p.numel() for p in net.parameters()) / 1e6, 3)


def test_a_network_that_cannot_run_on_meta_is_counted_on_the_cpu(needs_values: str) -> None:
    row = model_summary(needs_values, (1024, 1024), num_classes=20)
    assert row["error"] is None and row["backbone"] == "own"
    assert row["params_m"] == round((3 * 20 + 20) / 1e6, 3)
    assert row["gflops"] == round(2 * 3 * 20 * 1024 * 1024 / 1e9, 2) > 0  # a 1x1 conv: 2 x multiply-adds


def test_summarize_models_takes_a_list_of_names() -> None:
    rows = summarize_models((32, 32), backbone="test_resnet", num_classes=3, names=["fcn", "enet"])
    assert [r["name"] for r in rows] == ["fcn", "enet"]
    assert rows[0]["backbone"] == "test_resnet" and rows[1]["backbone"] == "own"
