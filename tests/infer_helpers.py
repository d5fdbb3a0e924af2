"""Shared by the prediction tests: tiny untrained weights of any number of classes, `seg ... --json` output, the
prediction core's probabilities of one image."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from segcli.cli.app import run
from segcli.config.load import load_preset
from segcli.core.checkpoint import build_from_weights, save_weights
from segcli.core.factory import model_from_preset
from segcli.data.format import DatasetInfo
from segcli.data.io import read_image
from segcli.infer.predict_core import predict_images
from segcli.infer.protocol import PredictionProtocol
from tests.conftest import TINY


def _weights(folder: Path, classes: int) -> Path:
    preset = load_preset("quickstart", TINY).preset
    torch.manual_seed(0)
    model = model_from_preset(preset.model, classes)
    palette = tuple((i % 256, (7 * i) % 256, (13 * i) % 256) for i in range(classes))
    info = DatasetInfo("t", tuple(f"c{i}" for i in range(classes)), palette)
    return save_weights(folder / f"w{classes}.safetensors", model, preset, info)


def _json(capsys: pytest.CaptureFixture, args: list[str]) -> dict:
    capsys.readouterr()
    assert run([*args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _core_probs(weights: Path, src: Path) -> np.ndarray:
    model, _ = build_from_weights(weights, torch.device("cpu"))
    image = read_image(src)
    x = torch.from_numpy(image.transpose(2, 0, 1).copy())[None]
    return predict_images(model, x, [image.shape[:2]], PredictionProtocol(), torch.device("cpu"))[0].softmax(0).numpy()


def write_images(folder: Path) -> list[Path]:
    """Five random RGB PNGs in ``folder``, three of one size and two others (batches of mixed sizes)."""
    from segcli.data.io import write_image

    rng = np.random.default_rng(0)
    sizes = [(40, 56), (40, 56), (37, 45), (40, 56), (64, 64)]
    return [
        write_image(folder / f"im{i}.png", rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        for i, (h, w) in enumerate(sizes)
    ]
