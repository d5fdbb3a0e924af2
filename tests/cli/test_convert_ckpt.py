"""`seg convert-ckpt` end to end: a DDP training checkpoint converts, `seg eval` loads the result, --overwrite and
--half."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from convert_helpers import _qs16, _quickstart_model, _training_checkpoint
from safetensors.torch import load_file

from segcli.cli.app import run
from segcli.core.checkpoint import build_from_weights, read_metadata


def test_ddp_checkpoint_with_optimizer_converts_and_seg_eval_loads_it(
    tmp_path: Path, shapes_root: Path, capsys: pytest.CaptureFixture
) -> None:
    from segcli.data.format import read_dataset_info

    n = read_dataset_info(shapes_root).num_classes
    model = _quickstart_model(n).eval()
    path = tmp_path / "ddp.pth"
    _training_checkpoint(path, model)
    model.eval()
    out = tmp_path / "model.safetensors"
    preset = _qs16(tmp_path)
    args = ["convert-ckpt", str(path), str(out), "--check", str(preset), "--data", str(shapes_root), "--json"]
    assert run(args) == 0, capsys.readouterr().err
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["unwrapped"] == ["model"] and report["stripped_prefixes"]["module."] > 0
    meta = read_metadata(out)
    assert json.loads(meta["classes"]) == list(read_dataset_info(shapes_root).classes)
    loaded, _ = build_from_weights(out)
    x = torch.rand(1, 3, 48, 48) * 255
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert run(["eval", str(out), "--data", str(shapes_root), "--out", str(tmp_path / "r.json"), "--json"]) == 0
    assert 0.0 <= json.loads(capsys.readouterr().out)["mIoU"] <= 1.0
    # never overwrite without --overwrite; with it, the file is replaced
    assert run(args) == 2 and "--overwrite" in capsys.readouterr().err
    assert run([*args, "--overwrite", "--half"]) == 0
    capsys.readouterr()
    assert load_file(str(out))["net.laterals.0.weight"].dtype == torch.float16
