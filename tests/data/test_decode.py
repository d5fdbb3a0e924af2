"""The one decode module: strict (format) and tolerant (download) mask reading, probes, label mapping."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from segcli.data.decode import colors_to_ids, decode_mask, inspect_mask
from segcli.errors import DataError


def test_strict_and_tolerant_mask_decoding(tmp_path: Path) -> None:
    grey_rgb = np.repeat(np.array([[0, 1], [2, 1]], np.uint8)[..., None], 3, axis=2)
    data = cv2.imencode(".png", grey_rgb)[1].tobytes()
    with pytest.raises(DataError, match="x.png: mask has 3 channels"):
        decode_mask(data, "x.png", strict=True)
    assert decode_mask(data, "x.png", strict=False).tolist() == [[0, 1], [2, 1]]
    colour = grey_rgb.copy()
    colour[0, 0] = (1, 2, 3)
    with pytest.raises(DataError, match="label is a colour image"):
        decode_mask(cv2.imencode(".png", colour)[1].tobytes(), "y.png", strict=False)
    with pytest.raises(DataError, match="cannot decode mask"):
        decode_mask(b"not an image", "z.png")
    (tmp_path / "g.png").write_bytes(data)
    facts = inspect_mask(tmp_path / "g.png")
    assert facts.problem == "grey-rgb" and facts.ids is not None and facts.ids.tolist() == [[0, 1], [2, 1]]
    (tmp_path / "e.png").write_bytes(b"")
    assert inspect_mask(tmp_path / "e.png").problem == "empty"


def test_colors_to_ids_and_unknown_colour() -> None:
    rgb = np.array([[[0, 0, 0], [10, 20, 30]], [[255, 0, 0], [10, 20, 30]]], np.uint8)
    table = [(10, 20, 30), (0, 0, 0), (255, 0, 0)]
    np.testing.assert_array_equal(colors_to_ids(rgb, table, "x"), [[1, 0], [2, 0]])
    with pytest.raises(DataError, match=r"colour \(255, 0, 0\)"):
        colors_to_ids(rgb, table[:2], "lab.png")
    np.testing.assert_array_equal(colors_to_ids(rgb, table[:2], "x", unknown=255), [[1, 0], [255, 0]])
