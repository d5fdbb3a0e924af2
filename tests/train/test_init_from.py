"""``model.init_from``: fine-tuning a whole model from a checkpoint; the classifier is re-initialised when the
number of classes differs, and the load report reaches log.txt."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from segcli.config.load import load_preset
from segcli.data.format import make_info, read_dataset_info, write_dataset_info
from segcli.data.io import read_mask, write_mask
from segcli.errors import CheckpointError, PresetError
from segcli.models import build_model
from segcli.train.init_from import init_from
from segcli.train.trainer import train


def _three_class_copy(shapes_root: Path, dst: Path) -> Path:
    """The shapes dataset with its four object classes merged into two: background, circle, other."""
    shutil.copytree(shapes_root, dst)
    for mask_path in (dst / "masks").rglob("*.png"):
        m = read_mask(mask_path)
        write_mask(mask_path, np.where((m >= 2) & (m != 255), 2, m).astype(np.uint8))
    info = read_dataset_info(shapes_root)
    write_dataset_info(dst, make_info("shapes3", ["background", "circle", "other"], ignore_index=info.ignore_index))
    return dst


def test_fine_tune_five_class_quickstart_onto_three_classes(
    tiny_overrides: list[str], shapes_root: Path, tmp_path: Path
) -> None:
    five = train("quickstart", [*tiny_overrides, "train.epochs=1"])
    weights = five.run_dir / "weights" / "last.safetensors"
    assert weights.is_file()
    root3 = _three_class_copy(shapes_root, tmp_path / "shapes3")
    res = train(
        "quickstart",
        [*tiny_overrides, f"data.root={root3}", "train.epochs=1", f"model.init_from={weights}", "train.name=ft"],
    )
    log = (res.run_dir / "log.txt").read_text()
    assert f"init_from {weights}: loaded" in log
    assert "classifier re-initialised (5 → 3 classes): net.head.2.weight, net.head.2.bias" in log
    assert "re-initialised 2, ignored 0" in log


def test_init_from_loads_matching_keys_and_names_the_rest(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    src = build_model("fpn", 5, backbone="resnet18", decoder_channels=16)
    path = tmp_path / "five.safetensors"
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(path))  # a plain (converted) state dict
    same = build_model("fpn", 5, backbone="resnet18", decoder_channels=16)
    r = init_from(same, path)
    assert not r.reinitialised and not r.ignored and len(r.loaded) == len(src.state_dict()) - 2  # mean/std: preset's
    assert all(torch.equal(same.state_dict()[k], src.state_dict()[k]) for k in r.loaded)
    three = build_model("fpn", 3, backbone="resnet18", decoder_channels=16, aux_stages=())
    fresh = three.state_dict()["net.head.2.weight"].clone()
    r = init_from(three, path)
    assert r.reinitialised == ["net.head.2.weight", "net.head.2.bias"] and r.classes_from == 5
    assert torch.equal(three.state_dict()["net.head.2.weight"], fresh)
    # keys only the file has are ignored and listed
    smaller = build_model("fpn", 5, backbone="resnet18", decoder_channels=16)
    extra = {**src.state_dict(), "net.aux.weight": torch.zeros(1)}
    save_file({k: v.contiguous() for k, v in extra.items()}, str(path))
    assert init_from(smaller, path).ignored == ["net.aux.weight"]
    # another decoder width is not a head: an error naming the layers
    wider = build_model("fpn", 5, backbone="resnet18", decoder_channels=32)
    with pytest.raises(CheckpointError, match="of another shape .*net.laterals.0.weight"):
        init_from(wider, path)
    # a missing file is a preset error naming the key
    with pytest.raises(PresetError, match="model.init_from = .*file not found"):
        load_preset("quickstart", [f"model.init_from={tmp_path / 'nope.safetensors'}"])


def test_resume_does_not_need_the_init_from_file(tiny_overrides: list[str], tmp_path: Path) -> None:
    """A run's own state holds its weights: the init_from file may be gone when the run is continued."""
    five = train("quickstart", [*tiny_overrides, "train.epochs=1"])
    src = tmp_path / "moved.safetensors"
    shutil.copy(five.run_dir / "weights" / "last.safetensors", src)
    res = train("quickstart", [*tiny_overrides, "train.epochs=1", f"model.init_from={src}", "train.name=ft2"])
    src.unlink()
    more = train(resume=res.run_dir, extend=["train.epochs=2"])
    assert more.epochs == 2
