"""`seg models`: the size and backbone options checked before any model is built, and one row per registered
model with its paper."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import user_error

from segcli.cli.app import run
from segcli.cli.models import check_backbone
from segcli.errors import UserError
from segcli.models import MODELS

OPTION_CASES: dict[str, tuple[Callable[[Path, Path, Path], list], tuple[str, ...]]] = {
    "unknown backbone (models)": (lambda w, d, t: ["models", "--backbone", "resnet19"], ('"resnet18"', "--backbone")),
}


@pytest.mark.parametrize("case", list(OPTION_CASES))
def test_bad_option(case: str, weights: Path, data: Path, tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    make, needles = OPTION_CASES[case]
    user_error(capfd, make(weights, data, tmp_path), *needles)


def test_check_backbone_names_the_closest_backbone() -> None:
    check_backbone("resnet18")  # a known backbone: no error
    with pytest.raises(UserError, match='"resnet18"'):
        check_backbone("resnet19")


def _rows(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Replace the (slow) summary by one made-up row per registered model, the first one failing to build."""
    names = MODELS.names()
    seen: dict[str, Any] = {}

    def summarize(hw: tuple[int, int], backbone: str, num_classes: int) -> list[dict]:
        seen.update(hw=hw, backbone=backbone, num_classes=num_classes)
        rows = [{"name": n, "backbone": backbone, "params_m": 1.5, "gflops": 2.25, "error": None} for n in names]
        rows[0].update(gflops=None, error="too small")
        return rows

    monkeypatch.setattr("segcli.models.summary.summarize_models", summarize)
    return names


def test_json_has_one_row_per_model_with_its_paper(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    names = _rows(monkeypatch)
    assert run(["models", "--size", "64x96", "--classes", "3", "--backbone", "resnet34", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["size"] == [64, 96] and doc["backbone"] == "resnet34" and doc["num_classes"] == 3
    assert [m["name"] for m in doc["models"]] == names
    for m in doc["models"]:
        info = MODELS.info(m["name"])
        assert m["paper"] == info.paper and m["reference"] == info.reference


def test_table_shows_gflops_or_why_not(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    names = _rows(monkeypatch)
    assert run(["models", "--size", "32"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("models at 32x32, 19 classes")
    rows = [ln for ln in out.splitlines() if ln.startswith("│ ") and ln.split("│")[1].strip() not in ("", "name")]
    assert "too small" in rows[0] and "2.2500" not in rows[0] and all("2.2500" in r for r in rows[1:])
    assert len(rows) == len(names)


def test_bad_size_fails_before_any_model_is_built(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture
) -> None:
    def never(*args: object) -> None:
        raise AssertionError("no model may be built for a bad option")

    monkeypatch.setattr("segcli.models.summary.summarize_models", never)
    user_error(capfd, ["models", "--size", "0x1"], "--size 0x1: give H,W")
    user_error(capfd, ["models", "--backbone", "resnet19"], "--backbone")
