"""Bad inputs through the CLI: exit 2, the culprit named in one red line, no traceback, nothing half-written.

Every case is driven through ``run([...])``, the same entry point as `seg`. The data is made here:
a copy of the tiny shapes dataset, spoiled one way per case, and an untrained weights file.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from segcli.cli.app import run

pytestmark = pytest.mark.filterwarnings("ignore")


def user_error(capsys: pytest.CaptureFixture, args: list[str], *needles: str, code: int = 2) -> str:
    """Run ``args``; assert exit ``code`` and one red line naming every needle; return stderr."""
    rc = run([str(a) for a in args])
    err = capsys.readouterr().err
    assert rc == code, err
    assert "Traceback" not in err and "unexpected" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory, shapes_root: Path) -> Path:
    """An untrained tiny model saved as segcli weights for the dataset ``shapes_root``."""
    from segcli.config.load import load_preset
    from segcli.data.format import read_dataset_info
    from segcli.engine.checkpoint import save_weights
    from segcli.engine.factory import model_from_preset

    loaded = load_preset(
        "quickstart", ["model.backbone=resnet18", "model.decoder_channels=16", "model.pretrained=false", "eval.size=[]"]
    )
    preset = getattr(loaded, "preset", loaded)
    info = read_dataset_info(shapes_root)
    path = tmp_path_factory.mktemp("weights") / "w.safetensors"
    return save_weights(path, model_from_preset(preset.model, info.num_classes), preset, info)


@pytest.fixture
def data(shapes_root: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny shapes dataset (16 train, 8 val, 48 px) to spoil."""
    return Path(shutil.copytree(shapes_root, tmp_path / "data"))


# ----------------------------------------------------------------------------------------- presets


def _write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


PRESET_CASES: dict[str, tuple[Callable[[Path], list[str]], tuple[str, ...]]] = {
    "unknown key": (lambda d: ["quickstart", "train.epoch=3"], ('did you mean "train.epochs"',)),
    "wrong type": (lambda d: ["quickstart", "optim.lr=fast"], ("optim", "'fast'")),
    "missing file": (lambda d: [str(d / "nope.toml")], ("nope.toml",)),
    "circular extends": (
        lambda d: [
            str(_write(d / "a.toml", 'extends = "b.toml"\n')),
            *([] if _write(d / "b.toml", 'extends = "a.toml"\n') else []),
        ],
        ("a.toml",),
    ),
    "empty file": (lambda d: [str(_write(d / "empty.toml", ""))], ("empty.toml",)),
    "invalid TOML": (lambda d: [str(_write(d / "bad.toml", "[train]\nepochs = = 3\n"))], ("bad.toml", "line 2")),
    "not UTF-8": (lambda d: [str(_write(d / "latin.toml", b"# caf\xe9\n[train]\n"))], ("latin.toml", "UTF-8")),
    "override for a missing key": (lambda d: ["quickstart", "nosuch.key=1"], ("nosuch",)),
    "out-of-range value": (lambda d: ["quickstart", "train.epochs=0"], ("epochs",)),
}


@pytest.mark.parametrize("case", list(PRESET_CASES))
def test_bad_preset(case: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    make, needles = PRESET_CASES[case]
    user_error(capsys, ["presets", "show", *make(tmp_path)], *needles)
