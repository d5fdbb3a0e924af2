"""`seg browse` (segcli/cli/browse.py): bad inputs are one line each and write nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from segcli.cli.app import run


def test_cli_bad_inputs(shapes_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    capsys.readouterr()
    assert run(["browse", str(tmp_path)]) == 2
    assert "not a segcli dataset" in capsys.readouterr().err
    assert run(["browse", str(shapes_root), "--split", "nope", "--out", str(tmp_path / "x")]) == 2
    assert "splits present: train, val" in capsys.readouterr().err
    assert run(["browse", str(shapes_root), "--preset", "no_such_preset", "--out", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()
