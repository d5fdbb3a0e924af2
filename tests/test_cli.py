"""The CLI end to end on a tiny dataset: prepare, train, eval, infer, presets; errors and --json."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


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
