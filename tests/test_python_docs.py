"""docs/python.md runs as written: every ```python block, in order, in one namespace, in a folder holding a
tiny ``data/shapes`` and a short clip, with each training kept tiny (the tests' TINY overrides and one epoch
added after the example's own keys)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import TINY

DOC = Path(__file__).resolve().parents[1] / "docs" / "python.md"


def blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", DOC.read_text(encoding="utf-8"), re.DOTALL | re.MULTILINE)


def _clip(path: Path) -> None:
    video = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 5.0, (48, 32))
    for k in range(3):
        video.write(np.full((32, 48, 3), 40 * k, np.uint8))
    video.release()


def test_the_page_has_examples_of_every_public_name() -> None:
    code = "\n".join(blocks())
    for call in ("train(", "Model(", ".predict(", ".evaluate(", ".export(", "build_model(", ".save(", ".overlay("):
        assert call in code


@pytest.mark.slow
def test_the_examples_run(shapes_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from segcli.config.load import load_preset
    from segcli.train import fit

    shutil.copytree(shapes_root, tmp_path / "data" / "shapes")
    _clip(tmp_path / "clip.mp4")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(
        fit,
        "load_preset",
        lambda name, overrides: load_preset(name, [*overrides, *TINY, "train.epochs=1", "train.plots=false"]),
    )
    namespace: dict = {}
    for code in blocks():
        exec(compile(code, str(DOC), "exec"), namespace)  # noqa: S102 - the documentation's own examples
    assert (tmp_path / "runs" / "quickstart" / "1" / "weights" / "best.safetensors").is_file()
    assert (tmp_path / "runs" / "lr-test" / "1").is_dir()
    assert sorted(p.name for p in (tmp_path / "predictions").rglob("*.*")) == ["val_00000.jpg", "val_00000.png"]
    assert (tmp_path / "exported" / "model.onnx").is_file() and (tmp_path / "fresh.safetensors").is_file()
    assert namespace["logits"].shape == (2, 3, 64, 64) and namespace["pred"].probs is not None
