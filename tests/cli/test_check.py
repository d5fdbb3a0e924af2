"""`seg check DATASET`: exit code 2 on errors, findings as JSON or text with their fix."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import DATA_CASES
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


@pytest.mark.parametrize("case", list(DATA_CASES))
def test_check_names_the_bad_dataset(case: str, data: Path, capfd: pytest.CaptureFixture) -> None:
    """`seg check` reports instead of crashing: exit 2 for errors, the file named, no traceback."""
    needle = DATA_CASES[case](data)
    rc = run(["check", str(data)])
    captured = capfd.readouterr()
    text = captured.out + captured.err
    assert rc == 2 and "Traceback" not in text and "unexpected" not in text, text
    assert needle.split(".")[0] in text, text
