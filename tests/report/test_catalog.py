"""The generated model list (segcli/report/catalog.py): docs/models.md and the README's model line match the
registry, every model names its paper and reference, and the export mode is found from the ops a model runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from segcli.models import MODELS
from segcli.models.registry import short_paper
from segcli.report import catalog
from segcli.report.catalog import COMMAND, PresetFigure, export_note, presets_by_model, render_table

PAPER = re.compile(r"^[^,]+, .+, .+ (19|20)\d\d$")  # "Authors et al., Title, Venue Year"


def test_docs_and_readme_match_the_registry() -> None:
    rows = catalog.catalog_rows()
    assert [r.name for r in rows] == MODELS.names()
    stale = [p.relative_to(catalog.ROOT) for p, text in catalog.generated_files(rows).items() if p.read_text() != text]
    assert not stale, f"{', '.join(map(str, stale))} out of date with the model registry: run {COMMAND}"


@pytest.mark.parametrize("name", MODELS.names())
def test_every_model_names_its_paper_and_reference(name: str) -> None:
    info = MODELS.info(name)
    assert PAPER.match(info.paper), (
        f"@MODELS.register({name!r}, paper=...): {info.paper!r} is not 'Authors et al., Title, Venue Year'"
    )
    assert info.reference.strip(), f"@MODELS.register({name!r}, reference=...): the implementation it follows"


def test_every_bundled_preset_trains_a_registered_model() -> None:
    found = presets_by_model()
    assert found and set(found) <= set(MODELS.names()), sorted(set(found) - set(MODELS.names()))


class _Toy(nn.Module):
    """A stand-in model: a global pool always, and optionally multi-bin pooling or max-unpooling."""

    def __init__(self, num_classes: int, *, bins: int = 1, unpool: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, num_classes, 1)
        self.bins, self.unpool = bins, unpool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        y = y + F.adaptive_avg_pool2d(y, 1)  # global: dynamic-safe
        if self.bins > 1:
            y = y + F.interpolate(nn.AdaptiveAvgPool2d(self.bins)(y), size=y.shape[-2:])
        if self.unpool:
            pooled, idx = F.max_pool2d(y, 2, return_indices=True)
            y = F.max_unpool2d(pooled, idx, 2, 2)
        return y


@pytest.fixture
def toy_name() -> str:
    name = "_catalog_toy"
    MODELS.register(name, timm_encoder=False)(_Toy)
    yield name
    MODELS.unregister(name)


def test_export_note_from_the_ops_a_model_runs(toy_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert export_note(toy_name) == ""
    monkeypatch.setattr(catalog, "supported_options", lambda name, opts: {"bins": 3})
    assert export_note(toy_name).startswith("AdaptiveAvgPool2d (3 bins")
    monkeypatch.setattr(catalog, "supported_options", lambda name, opts: {"unpool": True})
    assert export_note(toy_name).startswith("max_unpool2d (")


def test_table_cells() -> None:
    assert short_paper("Long et al., Fully Convolutional Networks, CVPR 2015") == "Long et al., CVPR 2015"
    assert short_paper("Kirillov, Wu, He, Girshick, PointRend, CVPR 2020") == "Kirillov et al., CVPR 2020"
    assert short_paper("A and B, Title, ICCV 2019") == "A and B, ICCV 2019"
    figures = (PresetFigure("a", 42.5, "https://x.org/y (cfg)"), PresetFigure("b", 0.0, "paper"))
    row = catalog.CatalogRow("m", "P et al., T, V 2020", "r|s", "timm", "dynamic", figures)
    line = render_table([row]).splitlines()[-1]
    assert line == "| `m` | P et al., T, V 2020 | r\\|s | timm | dynamic | `a` [42.5](https://x.org/y); `b` |"


def test_a_missing_marker_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="model-table:begin"):
        catalog._replace_block("no markers\n", catalog.TABLE_MARKERS, "x\n", tmp_path / "models.md")
    text = "a\n<!-- model-table:begin: gen -->\nold\n<!-- model-table:end -->\nb\n"
    out = catalog._replace_block(text, catalog.TABLE_MARKERS, "new\n", tmp_path / "models.md")
    assert out == "a\n<!-- model-table:begin: gen -->\nnew\n<!-- model-table:end -->\nb\n"
