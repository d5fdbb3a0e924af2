"""`seg crop-by-mask`: the summary as JSON or text, and a refused out folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from data_helpers import make_ds, rect_mask

from segcli.cli.app import run


def test_cli(tmp_path, capsys):
    src = make_ds(tmp_path / "src", {"a": rect_mask(10, 20, 20, 40), "b": rect_mask(0, 5, 0, 5, cls=2)})
    args = ["crop-by-mask", str(src), "--out", str(tmp_path / "out"), "--classes", "thing", "--square", "--json"]
    assert run([*args, "--margin", "0", "--size", "32", "--split", "train"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["boxes"] == {"train/a": [20, 5, 40, 25]} and doc["skipped"] == ["train/b"]
    assert run(["crop-by-mask", str(src), "--out", str(tmp_path / "out2")]) == 0
    text = capsys.readouterr().out
    assert "thing, other" in text and "written" in text
    assert run(["crop-by-mask", str(src), "--out", str(tmp_path / "out2")]) == 2


def test_cli_passes_its_options_and_shortens_a_long_skip_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from segcli.data.crop import CropOptions, CropResult

    seen: dict[str, Any] = {}
    skipped = [f"train/{i}" for i in range(12)] + ["val/0"]

    def crop(root: Path, out: Path, options: CropOptions, **kwargs: Any) -> CropResult:
        seen.update(root=root, out=out, **vars(options), **kwargs)
        return CropResult(out, ["car", "bus"], {"train": 3, "val": 1}, skipped)

    monkeypatch.setattr("segcli.data.crop.crop_by_mask", crop)
    argv = ["crop-by-mask", "src", "-o", str(tmp_path), "--classes", "car, bus,", "--margin", "0.2", "--square"]
    assert run([*argv, "--size", "256", "--split", "train", "--split", "val"]) == 0
    progress = seen.pop("progress")
    assert callable(progress) and seen == {
        "root": Path("src"),
        "out": tmp_path,
        "classes": ["car", "bus"],
        "margin": 0.2,
        "square": True,
        "size": 256,
        "splits": ["train", "val"],
    }
    captured = capsys.readouterr()
    assert "crops around car, bus" in captured.out and f"dataset written to {tmp_path}" in captured.out
    rows = {ln.split("│")[1].strip(): ln.split("│")[2:4] for ln in captured.out.splitlines() if ln.count("│") == 4}
    assert [c.strip() for c in rows["train"]] == ["3", "12"] and [c.strip() for c in rows["val"]] == ["1", "1"]
    assert "skipped 13 image(s) without the classes: train/0, " in captured.err and "... (+3)" in captured.err
    assert "train/9" in captured.err and "train/10" not in captured.err
