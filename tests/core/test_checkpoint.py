"""Checkpoints: self-describing weights and the resumable state (segcli/core/checkpoint.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from cli_helpers import user_error, write_file
from safetensors.torch import save_file

from segcli.cli.app import run
from segcli.config.load import load_preset
from segcli.core.checkpoint import (
    build_from_weights,
    load_state,
    load_weights,
    read_metadata,
    save_state,
    save_weights,
    state_mismatch,
)
from segcli.core.factory import model_from_preset
from segcli.data.format import make_info
from segcli.errors import CheckpointError
from segcli.models.registry import MODELS

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


@pytest.mark.parametrize("name", MODELS.names())
def test_weights_load_into_a_model_built_without_initialisation(name: str, tmp_path: Path) -> None:
    """Loading builds the model on the meta device (no random init) and gives it the checkpoint's tensors:
    the same outputs as the trained model, with every parameter and buffer real."""
    from dataclasses import replace

    from segcli.config.schema import ModelConfig
    from segcli.core.checkpoint import _built_without_init

    torch.manual_seed(0)
    timm_keys = {"backbone": "test_resnet", "pretrained": False} if MODELS.info(name).timm_encoder else {}
    small = {} if "decoder_channels" in MODELS.info(name).rejects else {"decoder_channels": 16}  # a fixed decoder
    cfg = ModelConfig(name=name, **small, **timm_keys)  # own backbone: its keys at their defaults
    model = model_from_preset(cfg, 3).eval()
    preset = replace(PRESET, model=cfg)
    path = save_weights(tmp_path / "w.safetensors", model, preset, INFO)
    state, _ = load_weights(path)
    fast = _built_without_init(lambda: model_from_preset(cfg, 3), state)
    assert fast is not None, f"{name} falls back to the ordinary build"
    rebuilt, _ = build_from_weights(path)
    assert all(t.device.type == "cpu" for t in [*rebuilt.parameters(), *rebuilt.buffers()])
    x = torch.randint(0, 255, (1, 3, 64, 64)).float()
    with torch.no_grad():
        want, got = model(x), rebuilt(x)
    torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_a_model_with_tensors_the_checkpoint_lacks_is_built_the_ordinary_way() -> None:
    from segcli.core.checkpoint import _built_without_init

    class WithScratch(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 2, 1)
            self.register_buffer("scratch", torch.arange(3.0), persistent=False)

    state = WithScratch().state_dict()
    assert _built_without_init(WithScratch, state) is None  # the buffer would be left uninitialised
    assert _built_without_init(lambda: torch.nn.Conv2d(3, 2, 1), {"weight": torch.zeros(2, 3, 1, 1)}) is None
    fast = _built_without_init(lambda: torch.nn.Conv2d(3, 2, 1), torch.nn.Conv2d(3, 2, 1).state_dict())
    assert fast is not None and fast.weight.device.type == "cpu"


def test_corrupt_weights_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    assert run(["eval", str(bad)]) == 2
    assert "not a readable .safetensors file" in capsys.readouterr().err


def _truncated_weights(w: Path, tmp: Path) -> Path:
    data = w.read_bytes()
    return write_file(tmp / "cut.safetensors", data[: len(data) // 2])


def _not_a_checkpoint(w: Path, tmp: Path) -> Path:
    return write_file(tmp / "notes.safetensors", "these are my notes")


def _plain_safetensors(w: Path, tmp: Path) -> Path:
    import torch
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(2)}, str(tmp / "plain.safetensors"))
    return tmp / "plain.safetensors"


def _rewritten(w: Path, tmp: Path, name: str, edit_meta=None, edit_state=None) -> Path:  # noqa: ANN001
    """A copy of the weights ``w`` whose metadata or tensors were edited (what a mixed-up file looks like)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(w), "pt") as f:
        meta = dict(f.metadata())
    state = load_file(str(w))
    save_file(
        edit_state(state) if edit_state else state, str(tmp / name), metadata=edit_meta(meta) if edit_meta else meta
    )
    return tmp / name


def _another_architecture(w: Path, tmp: Path) -> Path:
    def edit(meta: dict) -> dict:
        assert 'name = "fpn"' in meta["preset"]
        return meta | {"preset": meta["preset"].replace('name = "fpn"', 'name = "unet"', 1)}

    return _rewritten(w, tmp, "unet.safetensors", edit_meta=edit)


def _missing_keys(w: Path, tmp: Path) -> Path:
    def edit(state: dict) -> dict:
        gone = [k for k in state if k.endswith(".weight")][3:6]
        return {k: v for k, v in state.items() if k not in gone}

    return _rewritten(w, tmp, "missing.safetensors", edit_state=edit)


def _wrong_classes(w: Path, tmp: Path) -> Path:
    import json

    def edit(meta: dict) -> dict:
        classes, palette = json.loads(meta["classes"]), json.loads(meta["palette"])
        return meta | {"classes": json.dumps(classes[:2]), "palette": json.dumps(palette[:2])}

    return _rewritten(w, tmp, "classes.safetensors", edit_meta=edit)


CHECKPOINT_CASES = {
    "truncated": _truncated_weights,
    "not a checkpoint": _not_a_checkpoint,
    "foreign": _plain_safetensors,
    # reported: load_state_dict's several lines; now one line summing the keys up
    "metadata names another architecture": _another_architecture,
    "missing keys": _missing_keys,
    "wrong classes": _wrong_classes,
}


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("command", ["eval", "infer"])
@pytest.mark.parametrize("case", list(CHECKPOINT_CASES))
def test_bad_checkpoint(
    case: str, command: str, weights: Path, data: Path, tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    bad = CHECKPOINT_CASES[case](weights, tmp_path)
    rest = ["--data", data] if command == "eval" else [data / "images" / "val", "--out", tmp_path / "o"]
    user_error(capfd, [command, bad, *rest, "--device", "cpu"], bad.name)
    assert not (tmp_path / "o").exists()


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("content", ["pickle", "junk"])
def test_unsafe_training_state_is_one_line(content: str, tmp_path: Path) -> None:
    import torch

    from segcli.core.checkpoint import load_state
    from segcli.errors import CheckpointError

    class Evil:
        def __reduce__(self) -> tuple:
            return (os.getcwd, ())

    state = tmp_path / "state.pt"
    if content == "pickle":
        torch.save({"model": Evil()}, state)
    else:
        state.write_bytes(b"\x80\x04junk" * 10)
    with pytest.raises(CheckpointError) as info:
        load_state(state)
    msg = str(info.value)
    assert str(state) in msg and "\n" not in msg and "weights_only=False" not in msg


def test_state_mismatch_sums_up_missing_unexpected_and_shapes() -> None:
    own = {"a.weight": torch.zeros(2, 3), "b.weight": torch.zeros(1), "c.bias": torch.zeros(4)}
    assert state_mismatch(own, dict(own)) == ""
    state = {"a.weight": torch.zeros(5, 3), "x": torch.zeros(1), "y": torch.zeros(1)}
    assert state_mismatch(own, state) == (
        "2 missing key(s) e.g. b.weight, c.bias, 2 not in the model e.g. x, y, "
        "1 of another shape e.g. a.weight (file [5, 3], model [2, 3])"
    )


def test_weights_whose_metadata_names_another_model_are_one_line(weights: Path, tmp_path: Path) -> None:
    for make in (_another_architecture, _missing_keys, _wrong_classes):
        with pytest.raises(CheckpointError) as e:
            build_from_weights(make(weights, tmp_path))
        text = str(e.value)
        assert "\n" not in text and "weights do not fit the model its metadata describes" in text, text
    assert "2 classes): 2 of another shape e.g." in text


def test_weights_remember_the_data_they_trained_on(tmp_path: Path) -> None:
    from segcli.data.format import DataFingerprint

    fp = DataFingerprint(str(tmp_path / "data"), {"train": 100, "val": 20}, INFO.classes)
    model = model_from_preset(PRESET.model, INFO.num_classes)
    _, meta = load_weights(save_weights(tmp_path / "w.safetensors", model, PRESET, INFO, data=fp))
    assert meta.data == fp and meta.data.describe() == f"{tmp_path / 'data'} (100 train, 20 val images)"
    _, meta = load_weights(save_weights(tmp_path / "old.safetensors", model, PRESET, INFO))
    assert meta.data is None  # written without one (converted weights, older versions)
    assert DataFingerprint.from_json("{not json") is None and DataFingerprint.from_json('{"root": 1}') is None
