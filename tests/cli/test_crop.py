"""`seg crop-by-mask`: the summary as JSON or text, and a refused out folder."""

from __future__ import annotations

import json

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
