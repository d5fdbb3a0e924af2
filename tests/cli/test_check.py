"""`seg check DATASET`: exit code 2 on errors, findings as JSON or text with their fix."""

from __future__ import annotations

import json

import numpy as np
from data_helpers import make_masks_dataset as make_dataset

from segcli.cli.app import run


def test_cli_exit_code_and_json(tmp_path, capsys):
    m = np.zeros((16, 16), np.uint8)
    m[2:5] = 255
    root = make_dataset(tmp_path / "ds", {"x": m}, classes=["bg", "fg"])
    capsys.readouterr()
    assert run(["check", str(root), "--json", "--split", "train", "--sample", "4"]) == 2
    doc = json.loads(capsys.readouterr().out)
    assert doc["errors"] == 1 and doc["findings"][0]["code"] == "binary-0-255" and doc["findings"][0]["fix"]
    assert run(["check", str(root)]) == 2
    text = capsys.readouterr().out
    assert "binary-0-255" in text and "fix:" in text and "x.png" in text
    assert run(["check", str(tmp_path / "missing")]) == 2
