"""predict() on disk: the inputs it expands (files, folders, patterns; a missing one named), and the outputs already
there: refused without --overwrite, kept and completed with --skip-existing, never both."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cli_helpers import user_error, write_file

from segcli.cli.app import run


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


@pytest.mark.filterwarnings("ignore")
def test_infer_existing_output_needs_overwrite(
    weights: Path, data: Path, tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    out = tmp_path / "pred"
    mine = write_file((out / "masks").mkdir(parents=True) or out / "masks" / "val_00000.png", "mine")
    user_error(capfd, ["infer", weights, data / "images" / "val", "--out", out, "--device", "cpu"], "--overwrite")
    assert mine.read_text() == "mine"


@pytest.mark.filterwarnings("ignore")
def test_infer_skip_existing_continues_a_stopped_run(
    weights: Path, data: Path, tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    out = tmp_path / "pred"
    val = data / "images" / "val"
    args = ["infer", str(weights), str(val), "--out", str(out), "--device", "cpu"]
    assert run([*args[:2], str(val / "val_00000.jpg"), *args[3:]]) == 0  # the run that "stopped" after one image
    (out / "overlays" / "val_00000.jpg").write_bytes(b"mine")  # and a file the user changed: kept
    capfd.readouterr()
    assert run([*args, "--skip-existing", "--json"]) == 0
    import json

    res = json.loads(capfd.readouterr().out)
    assert res["images"] == 7 and res["skipped"] == 1
    assert len(list((out / "masks").iterdir())) == 8 and len(list((out / "overlays").iterdir())) == 8
    assert (out / "overlays" / "val_00000.jpg").read_bytes() == b"mine"


def test_infer_overwrite_and_skip_existing_conflict(weights: Path, data: Path, tmp_path: Path, capfd) -> None:
    args = ["infer", weights, data / "images" / "val", "--out", tmp_path / "o", "--overwrite", "--skip-existing"]
    user_error(capfd, args, "--overwrite", "--skip-existing")
