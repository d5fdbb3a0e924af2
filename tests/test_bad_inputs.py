"""Bad inputs through the CLI: exit 2, the culprit named in one red line, no traceback, nothing half-written.

Every case is driven through ``run([...])``, the same entry point as `seg`. The data is made here:
a copy of the tiny shapes dataset, spoiled one way per case, and an untrained weights file.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from segcli.cli.app import run

pytestmark = pytest.mark.filterwarnings("ignore")


def user_error(capfd: pytest.CaptureFixture, args: list, *needles: str, code: int = 2, progress: bool = False) -> str:
    """Run ``args``; assert exit ``code`` and one red line naming every needle; return that line.

    ``progress``: the command may print progress lines (training) before its error, which is the last line.
    """
    rc = run([str(a) for a in args])
    err = capfd.readouterr().err
    assert rc == code, err
    assert "Traceback" not in err and "unexpected" not in err, err
    assert progress or err == err.lstrip(), repr(err)  # no empty line before the error
    lines = err.strip().splitlines()
    assert len(lines) == 1 or (progress and sum("error:" in line for line in lines) == 1), err
    line = lines[-1]
    assert line.startswith("error:"), err
    for needle in needles:
        assert needle in line, (needle, err)
    return line


# ----------------------------------------------------------------------------------------- presets


# ----------------------------------------------------------------------------------------- datasets


def _first(data: Path, kind: str, split: str = "val") -> Path:
    return sorted((data / kind / split).iterdir())[0]


def _zero_byte_image(data: Path) -> str:
    img = _first(data, "images")
    img.write_bytes(b"")
    return img.name


def _truncated_jpeg(data: Path) -> str:
    img = _first(data, "images")
    img.write_bytes(img.read_bytes()[: img.stat().st_size // 2])
    return img.name


def _size_mismatch(data: Path) -> str:
    mask = _first(data, "masks")
    cv2.imencode(".png", np.zeros((20, 30), np.uint8))[1].tofile(str(mask))
    return mask.name


def _rgb_mask(data: Path) -> str:
    mask = _first(data, "masks")
    cv2.imencode(".png", np.zeros((48, 48, 3), np.uint8))[1].tofile(str(mask))
    return mask.name


def _mask_missing(data: Path) -> str:
    mask = _first(data, "masks")
    mask.unlink()
    return "no mask"


def _mask_value(data: Path) -> str:
    mask = _first(data, "masks")
    ids = np.zeros((48, 48), np.uint8)
    ids[0, :3] = 255  # ignore pixels: the max alone does not find the bad value
    ids[5, 5] = 7
    cv2.imencode(".png", ids)[1].tofile(str(mask))
    return "[7]"


def _no_dataset_toml(data: Path) -> str:
    (data / "dataset.toml").unlink()
    return "dataset.toml"


def _empty_split(data: Path) -> str:
    for kind in ("images", "masks"):
        for f in (data / kind / "val").iterdir():
            f.unlink()
    return "no images"


def _bad_name(data: Path) -> str:
    """An image and mask whose names are not valid UTF-8, the mask spoiled so the file must be named."""
    img, mask = _first(data, "images"), _first(data, "masks")
    os.rename(bytes(img), os.fsencode(img.parent) + b"/bad\xff.jpg")
    new_mask = os.fsencode(mask.parent) + b"/bad\xff.png"
    os.rename(bytes(mask), new_mask)
    with open(new_mask, "wb") as f:
        f.write(b"")
    return "bad"


def _truncated_png_mask(data: Path) -> str:
    mask = _first(data, "masks")
    mask.write_bytes(mask.read_bytes()[:-20])
    return mask.name


DATA_CASES: dict[str, Callable[[Path], str]] = {
    "missing dataset.toml": _no_dataset_toml,
    "empty split": _empty_split,
    "zero-byte image": _zero_byte_image,
    "truncated jpeg": _truncated_jpeg,
    "size mismatch": _size_mismatch,
    "rgb mask": _rgb_mask,
    "truncated png mask": _truncated_png_mask,
    "mask missing": _mask_missing,
    "mask value out of range": _mask_value,
    "non-utf8 file name": _bad_name,
}


# ------------------------------------------------------------------------------- options and outputs


# ----------------------------------------------------------------------------------------- checkpoints


# ----------------------------------------------------------------------------------------- files written


# ----------------------------------------------------------------------------------------- prepare


# ----------------------------------------------------------------------------------------- infer re-runs


# ----------------------------------------------------------------------------------------- training


# ----------------------------------------------------------------------------------------- models and training


def test_eval_on_a_dataset_with_other_classes(weights: Path, data: Path, capfd: pytest.CaptureFixture) -> None:
    toml = data / "dataset.toml"
    toml.write_text(toml.read_text().replace('"circle"', '"disc"'))
    user_error(capfd, ["eval", weights, "--data", data], str(data), "classes", "differ")
