"""Every bundled preset loads, builds and trains 2 iterations on tiny synthetic data (no pretrained weights)."""

from __future__ import annotations

from pathlib import Path

import pytest

from segcli.config.load import list_presets, load_preset
from segcli.config.toml_io import load_toml
from segcli.data.class_weights import WeightOptions, class_weights
from segcli.train.trainer import train


@pytest.fixture(scope="module")
def weights_file(shapes_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cw") / "weights.toml"
    class_weights(shapes_root, method="inv", options=WeightOptions(split="train"), out=out)
    return out


@pytest.mark.parametrize("path", list_presets(), ids=lambda p: p.stem)
def test_preset_trains_two_iterations(path: Path, shapes_root: Path, tmp_path: Path, weights_file: Path) -> None:
    assert path.read_text().startswith("#"), "every preset says where its recipe comes from"
    over = [
        f"data.root={shapes_root}",
        f"train.out_dir={tmp_path}",
        "model.pretrained=false",
        "train.iters=2",
        "data.batch_size=2",
        "data.num_workers=0",
        "data.train_split=train",
        "data.val_split=val",
        "augment.crop_size=[64,64]",
        "eval.size=[64,64]",
        "train.amp=none",
        "train.channels_last=false",
        "train.val_every=1",
    ]
    if isinstance(load_toml(path).get("loss", {}).get("class_weights"), str):  # a file from `seg class-weights`
        over.append(f"loss.class_weights={weights_file}")
    preset = load_preset(path, over).preset  # every check runs here, before training
    assert preset.model.pretrained is False
    res = train(path, over)
    assert res.last["iterations"] == 2 and 0.0 <= res.last["mIoU"] <= 1.0
    assert (res.run_dir / "weights" / "last.safetensors").is_file()
