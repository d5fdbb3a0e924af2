"""Helpers for the `seg prepare` tests: tiny images, archives, the real-format fixtures and a stand-in converter."""

from __future__ import annotations

import json
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from segcli.cli.app import run
from segcli.data.format import make_info
from segcli.data.prepare import Converter, Option, Plan, Sample

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"


def fixture_dir(*parts: str) -> Path:
    """A folder under the shared fixtures, or skip the test when it is absent."""
    p = FIXTURES.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"fixture {p} not present")
    return p


def write_png(path: Path, arr: np.ndarray) -> Path:
    """Write a grey (H, W) or RGB (H, W, 3) array as PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR) if arr.ndim == 3 else arr
    assert cv2.imwrite(str(path), img)
    return path


def write_jpg(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


def write_palette_png(path: Path, ids: np.ndarray, palette: list[list[int]]) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(ids.astype(np.uint8), mode="P")
    flat = [c for rgb in palette for c in rgb]
    im.putpalette(flat + [0] * (768 - len(flat)))
    im.save(path)
    return path


def rand_rgb(rng: np.random.Generator, h: int = 16, w: int = 24) -> np.ndarray:
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def zip_dir(folder: Path, dest: Path) -> Path:
    """Zip ``folder`` so that members start with ``folder.name/``."""
    with zipfile.ZipFile(dest, "w") as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(folder.parent).as_posix())
    return dest


def tar_dir(folder: Path, dest: Path) -> Path:
    with tarfile.open(dest, "w:gz") as tf:
        tf.add(folder, arcname=folder.name)
    return dest


def read_ids(path: Path) -> np.ndarray:
    from segcli.data.io import read_mask

    return read_mask(path)


def cli_json(capsys: pytest.CaptureFixture, argv: list[str]) -> dict:
    """Run `seg ... --json` in-process and return its JSON object (asserting exit code 0)."""
    capsys.readouterr()
    rc = run([*argv, "--json"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    return json.loads(captured.out)


def cli_error(capsys: pytest.CaptureFixture, argv: list[str]) -> tuple[int, str]:
    """Run `seg ...` expecting failure; return (exit code, stderr on one line)."""
    capsys.readouterr()
    rc = run(argv)
    captured = capsys.readouterr()
    assert rc != 0
    return rc, " ".join(captured.err.split())


def make_cityscapes(root: Path, rng: np.random.Generator, coarse: bool = False) -> dict[tuple[str, str], np.ndarray]:
    """Two folders ``root/leftImg8bit`` and ``root/gtFine`` (+ gtCoarse) in the published layout."""
    raw = {}
    frames = [
        ("train", "aachen", "aachen_000000_000019"),
        ("train", "bochum", "bochum_000000_000313"),
        ("val", "frankfurt", "frankfurt_000000_000294"),
        ("test", "berlin", "berlin_000000_000019"),
    ]
    if coarse:
        frames.append(("train_extra", "augsburg", "augsburg_000000_000000"))
    for split, city, stem in frames:
        write_png(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", rand_rgb(rng))
        ids = rng.integers(0, 34, (16, 24), dtype=np.uint8)
        kind = "gtCoarse" if split == "train_extra" else "gtFine"
        write_png(root / kind / split / city / f"{stem}_{kind}_labelIds.png", ids)
        # Distractors that must be ignored: colour and instance images next to the labelIds.
        write_png(root / kind / split / city / f"{stem}_{kind}_color.png", rand_rgb(rng))
        raw[(split, stem)] = ids
    return raw


def save_mat(path: Path, obj: dict) -> None:
    """Write a MATLAB .mat file (needs scipy, the optional mat extra)."""
    from scipy.io import savemat

    path.parent.mkdir(parents=True, exist_ok=True)
    savemat(path, obj)


class Tiny(Converter):
    """Generated 4x4 samples filled with one class id (a stand-in for a plugin converter); the
    ``tiny_converter`` fixture of conftest registers it for one test."""

    name = "tiny"
    help = "A tiny test converter."
    image_ext = ".png"
    options = (
        Option("count", int, 2, "Samples per split."),
        Option("fill", int, 1, "Class id every pixel gets."),
        Option("shout", bool, False, "A flag that changes nothing."),
    )

    def plan(self, srcs: Any, opts: dict[str, Any]) -> Plan:
        samples = [Sample(s, f"{s}{i}", None, extra=i) for s in ("train", "val") for i in range(opts["count"])]
        return Plan(make_info("tiny", ["a", "b", "c"]), samples, opts["fill"], {"fill": opts["fill"]})

    def decode_label(self, srcs: Any, sample: Sample, params: int) -> np.ndarray:
        mask = np.full((4, 4), params, np.uint8)
        mask[0, 0] = 255  # one ignore pixel: never counted
        return mask

    def decode_image(self, srcs: Any, sample: Sample, params: int) -> np.ndarray:
        return np.full((4, 4, 3), 9 * sample.extra, np.uint8)
