"""N-channel data end to end on the command line: a 4-channel 16-bit TIFF dataset (RGB + near infrared) made
here trains, evaluates, infers and exports with parity; a file with another channel count is one line naming it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tomllib
from cli_helpers import user_error
from conftest import TINY
from data_helpers import make_tiff_dataset

from segcli.cli.app import run
from segcli.data.format import read_dataset_info

tifffile = pytest.importorskip("tifffile")


@pytest.mark.slow
def test_a_4_channel_tiff_dataset_trains_evaluates_infers_and_exports(
    tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    data = make_tiff_dataset(tmp_path / "data", train=12, val=4, size=64)
    assert run(["check", str(data), "--stats"]) == 0  # channels = 4 and the per-channel mean/std in dataset.toml
    out = tmp_path / "runs"
    args = ["train", "quickstart", *TINY, f"data.root={data}", f"train.out_dir={out}", "data.channels=4"]
    assert run([*args, "train.epochs=1", "eval.size=[]"]) == 0
    run_dir = next((out / "quickstart").iterdir())
    preset = tomllib.loads((run_dir / "preset.toml").read_text())
    assert preset["data"]["channels"] == 4  # model.mean/std "auto": the statistics `seg check --stats` recorded
    assert preset["model"]["mean"] == read_dataset_info(data).extra["mean"] and len(preset["model"]["std"]) == 4
    capfd.readouterr()
    assert run(["eval", str(run_dir), "--json"]) == 0
    assert 0.0 <= json.loads(capfd.readouterr().out)["mIoU"] <= 1.0
    assert run(["infer", str(run_dir), str(data / "images" / "val"), "--out", str(tmp_path / "pred")]) == 0
    masks = sorted((tmp_path / "pred" / "masks").iterdir())
    overlays = sorted((tmp_path / "pred" / "overlays").iterdir())
    assert len(masks) == len(overlays) == 4
    capfd.readouterr()
    assert run(["export", str(run_dir), "--onnx", "--json"]) == 0
    doc = json.loads(capfd.readouterr().out)
    parity = doc["parity"]
    assert parity["passed"] and parity["agreement"] >= 0.999 and "val split" in doc["parity_images"]
    assert {r["image"] for r in parity["rows"]} == {f"{i:02d}.tif" for i in range(4)}  # the 4-channel val TIFFs
    import onnx

    graph = onnx.load(doc["model"])
    assert {p.key: p.value for p in graph.metadata_props}["channels"] == "4"
    assert graph.graph.input[0].type.tensor_type.shape.dim[1].dim_value == 4
    rgb = tmp_path / "rgb.tif"
    tifffile.imwrite(rgb, np.zeros((64, 64, 3), np.uint16), photometric="rgb")
    user_error(
        capfd, ["infer", run_dir, rgb, "--out", tmp_path / "bad"], "rgb.tif", "3 channels", "the 4 the model takes"
    )
    bad = data / "images" / "val" / "01.tif"
    tifffile.imwrite(bad, np.zeros((64, 64, 3), np.uint16), photometric="rgb")
    user_error(capfd, ["eval", run_dir], "01.tif: image has 3 channels, not the 4")
