"""`seg browse` (segcli/cli/browse.py): bad inputs are one line each and write nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from segcli.cli.app import run
from segcli.report.browser import PageLayout


def test_cli_bad_inputs(shapes_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    capsys.readouterr()
    assert run(["browse", str(tmp_path)]) == 2
    assert "not a segcli dataset" in capsys.readouterr().err
    assert run(["browse", str(shapes_root), "--split", "nope", "--out", str(tmp_path / "x")]) == 2
    assert "splits present: train, val" in capsys.readouterr().err
    assert run(["browse", str(shapes_root), "--preset", "no_such_preset", "--out", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()


def _fake_browse(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, augmented: bool) -> dict[str, Any]:
    from segcli.report.browser import BrowseResult

    seen: dict[str, Any] = {}

    def browse(data: Path, preset: str | None, split: str | None, **kwargs: Any) -> BrowseResult:
        seen.update(data=data, preset=preset, split=split, **kwargs)
        pages = [tmp_path / "page_1.jpg", tmp_path / "page_2.jpg"]
        return BrowseResult(tmp_path, pages, split or "train", 20, augmented)

    monkeypatch.setattr("segcli.report.browse", browse)
    return seen


def test_browse_passes_its_options_and_lists_the_pages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    seen = _fake_browse(monkeypatch, tmp_path, augmented=True)
    argv = ["browse", "d", "--preset", "quickstart", "--split", "val", "--n", "20", "--out", str(tmp_path)]
    assert run([*argv, "--cols", "5", "--rows", "2", "--tile", "64", "--alpha", "0.3", "--seed", "4"]) == 0
    assert seen == {
        "data": Path("d"),
        "preset": "quickstart",
        "split": "val",
        "n": 20,
        "out": tmp_path,
        "overwrite": False,
        "layout": PageLayout(cols=5, rows=2, tile=64, alpha=0.3),
        "seed": 4,
    }
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "20 val images after the training augmentation on 2 page(s):"
    assert f"  {tmp_path / 'page_2.jpg'}" in out


def test_browse_json_and_stored_samples(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    _fake_browse(monkeypatch, tmp_path, augmented=False)
    assert run(["browse", "d"]) == 0
    assert capsys.readouterr().out.startswith("20 train images as stored on 2 page(s):")
    assert run(["browse", "d", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["augmented"] is False and doc["files"] == [str(tmp_path / "page_1.jpg"), str(tmp_path / "page_2.jpg")]
