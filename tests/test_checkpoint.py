"""Checkpoints: self-describing weights and the resumable state (segcli/engine/checkpoint.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from segcli.config.load import load_preset
from segcli.data.format import make_info
from segcli.engine.checkpoint import (
    build_from_weights,
    load_state,
    load_weights,
    read_metadata,
    save_state,
    save_weights,
)
from segcli.engine.factory import model_from_preset
from segcli.errors import CheckpointError

PRESET = load_preset("quickstart", ["model.decoder_channels=16"]).preset
INFO = make_info("toy", ("background", "a", "b"), [[0, 0, 0], [255, 0, 0], [0, 255, 0]], 255, source="test")


def test_weights_carry_what_inference_needs(tmp_path: Path) -> None:
    model = model_from_preset(PRESET.model, 3).eval()
    path = save_weights(tmp_path / "w.safetensors", model, PRESET, INFO, epoch=3, metrics={"mIoU": 0.5})
    state, meta = load_weights(path)
    assert meta.classes == ("background", "a", "b") and meta.palette[1] == (255, 0, 0)
    assert meta.ignore_index == 255 and meta.mean == PRESET.model.mean and meta.std == PRESET.model.std
    assert meta.preset == PRESET and meta.epoch == 3 and meta.metrics == {"mIoU": 0.5}
    rebuilt, meta2 = build_from_weights(path)
    assert not rebuilt.training and meta2.num_classes == 3
    x = torch.randint(0, 255, (1, 3, 64, 64)).float()
    with torch.no_grad():
        assert torch.allclose(rebuilt(x), model(x))
    assert state.keys() == model.state_dict().keys()


def test_foreign_and_damaged_weights(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(CheckpointError, match="seg convert-ckpt"):
        load_weights(foreign)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="not a readable .safetensors file"):
        read_metadata(junk)
    with pytest.raises(CheckpointError, match="weights file not found"):
        load_weights(tmp_path / "missing.safetensors")


def test_state_is_read_with_weights_only(tmp_path: Path) -> None:
    path = save_state(tmp_path / "state.pt", {"step": 3, "t": torch.ones(2)})
    assert load_state(path)["step"] == 3
    with pytest.raises(CheckpointError, match="no training state"):
        load_state(tmp_path / "none.pt")

    class Evil:
        def __reduce__(self):  # noqa: ANN204 - would run code under a full unpickle
            return (print, ("pwned",))

    torch.save({"x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="not a segcli training state or unsafe to load"):
        load_state(tmp_path / "evil.pt")
