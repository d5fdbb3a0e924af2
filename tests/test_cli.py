"""The CLI end to end on a tiny dataset: prepare, train, eval, infer, presets; errors and --json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from segcli.cli.app import run


def run_json(capsys: pytest.CaptureFixture, args: list[str]) -> dict:
    capsys.readouterr()
    assert run([*args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_prepare_shapes_json(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = run_json(
        capsys, ["prepare", "shapes", "--out", str(tmp_path / "s"), "--train", "4", "--val", "2", "--size", "32"]
    )
    assert out["images"] == {"train": 4, "val": 2} and out["skipped"] is False
    assert abs(sum(out["pixel_share"].values()) - 1) < 1e-6
    again = run_json(
        capsys, ["prepare", "shapes", "--out", str(tmp_path / "s"), "--train", "4", "--val", "2", "--size", "32"]
    )
    assert again["skipped"] is True


def test_corrupt_weights_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    assert run(["eval", str(bad)]) == 2
    assert "not a readable .safetensors file" in capsys.readouterr().err


def test_infer_rejects_missing_input(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from segcli.errors import DataError
    from segcli.infer.predictor import expand_inputs

    with pytest.raises(DataError, match="no such file, folder or pattern"):
        expand_inputs([str(tmp_path / "nothing.jpg")])
    with pytest.raises(DataError, match="pattern matches no images"):
        expand_inputs([str(tmp_path / "*.jpg")])
    img = tmp_path / "a.png"
    import cv2

    cv2.imwrite(str(img), np.zeros((4, 4, 3), np.uint8))
    assert expand_inputs([str(img), str(tmp_path)]) == [img]
