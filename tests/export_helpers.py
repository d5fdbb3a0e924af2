"""Shared by the export tests: untrained tiny weights of any registered model."""

from __future__ import annotations

from pathlib import Path

import torch

from segcli.config.load import load_preset
from segcli.core.checkpoint import save_weights
from segcli.core.factory import model_from_preset
from segcli.data.format import make_info
from segcli.models import MODELS, model_options

INFO = make_info("toy", ("background", "a", "b"), [[0, 0, 0], [255, 0, 0], [0, 255, 0]], 255, source="test")


def tiny_weights(tmp_path: Path, name: str) -> Path:
    """Untrained tiny weights of model ``name`` (resnet18 / 16 decoder channels where the model takes them)."""
    accepted = model_options(name)
    overrides = [f"model.name={name}", "augment.crop_size=[64,64]", "data.root=nowhere"]
    takes = accepted is None or "decoder_channels" in accepted
    if takes and "decoder_channels" not in MODELS.info(name).rejects:  # gcn and segnet have a fixed decoder
        overrides.append("model.decoder_channels=16")
    preset = load_preset("quickstart", overrides).preset
    torch.manual_seed(0)
    model = model_from_preset(preset.model, 3).eval()
    return save_weights(tmp_path / f"{name}.safetensors", model, preset, INFO)
