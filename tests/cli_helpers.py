"""Helpers for the tests that drive `seg` commands: run one and read its JSON or its one red line, and the ways
to spoil a copy of the tiny shapes dataset (one per bad-input case, each returning what the error must name)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from segcli.cli.app import run


def run_json(capsys: pytest.CaptureFixture, args: list[str]) -> dict:
    """Run ``args --json``; assert exit 0 and return the JSON object printed on stdout."""
    capsys.readouterr()
    assert run([*args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


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


def write_file(path: Path, text: str | bytes) -> Path:
    """Write ``text`` (str as UTF-8, or bytes) to ``path``; return ``path``."""
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def first_file(data: Path, kind: str, split: str = "val") -> Path:
    """The first file of ``data/<kind>/<split>`` (``kind``: images or masks)."""
    return sorted((data / kind / split).iterdir())[0]


# ------------------------------------------------------------------- ways to spoil a copy of the shapes dataset


def _zero_byte_image(data: Path) -> str:
    img = first_file(data, "images")
    img.write_bytes(b"")
    return img.name


def _truncated_jpeg(data: Path) -> str:
    img = first_file(data, "images")
    img.write_bytes(img.read_bytes()[: img.stat().st_size // 2])
    return img.name


def _size_mismatch(data: Path) -> str:
    mask = first_file(data, "masks")
    cv2.imencode(".png", np.zeros((20, 30), np.uint8))[1].tofile(str(mask))
    return mask.name


def _rgb_mask(data: Path) -> str:
    mask = first_file(data, "masks")
    cv2.imencode(".png", np.zeros((48, 48, 3), np.uint8))[1].tofile(str(mask))
    return mask.name


def _mask_missing(data: Path) -> str:
    mask = first_file(data, "masks")
    mask.unlink()
    return "no mask"


def _mask_value(data: Path) -> str:
    mask = first_file(data, "masks")
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
    img, mask = first_file(data, "images"), first_file(data, "masks")
    os.rename(bytes(img), os.fsencode(img.parent) + b"/bad\xff.jpg")
    new_mask = os.fsencode(mask.parent) + b"/bad\xff.png"
    os.rename(bytes(mask), new_mask)
    with open(new_mask, "wb") as f:
        f.write(b"")
    return "bad"


def _truncated_png_mask(data: Path) -> str:
    mask = first_file(data, "masks")
    mask.write_bytes(mask.read_bytes()[:-20])
    return mask.name


def huge_png_header(width: int = 60000, height: int = 60000) -> bytes:
    """A small PNG file whose header claims ``width`` x ``height`` pixels (beyond OpenCV's pixel limit)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _huge_header(data: Path) -> str:
    img = first_file(data, "images")
    img.write_bytes(huge_png_header())
    return img.name


# case → spoil(data): spoils the val split (or the whole dataset) of ``data`` and returns what the error must name
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
    "60000x60000 png header": _huge_header,
}


def train_args(data: Path, tmp_path: Path, *extra: str) -> list[str]:
    """`seg train quickstart` with the tiny overrides on the dataset ``data``, its runs under ``tmp_path``."""
    from conftest import TINY

    return ["train", "quickstart", *TINY, f"data.root={data}", f"train.out_dir={tmp_path / 'runs'}", *extra]
