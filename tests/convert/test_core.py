"""convert(): fitting a state dict to a segcli model (unexpected, missing, mismatched keys), drop and rename,
the output format, and usage errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from convert_helpers import _qs16, _quickstart_model
from safetensors.torch import save_file

from segcli.cli.app import run
from segcli.convert import ConvertOptions, TargetOptions, convert
from segcli.convert.loader import read_checkpoint
from segcli.errors import CheckpointError, UserError


def test_unexpected_and_missing_keys_are_errors_unless_dropped(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    preset = _qs16(tmp_path)
    sd = _quickstart_model(3).state_dict()
    sd["extra.head.weight"] = torch.zeros(3)
    src = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in sd.items()}, str(src))
    out = tmp_path / "o.safetensors"
    with pytest.raises(CheckpointError, match=r"1 unexpected \(extra.head.weight\)"):
        convert(src, out, target=TargetOptions(check=str(preset), num_classes=3))
    assert not out.exists()
    r = convert(src, out, ConvertOptions(drop=[r"^extra\."]), TargetOptions(check=str(preset), num_classes=3))
    assert r.ok and r.written and r.dropped == ["extra.head.weight"]
    # a dry run reports every problem (exit 2) and writes nothing
    del sd["net.laterals.0.weight"]
    save_file({k: v.contiguous() for k, v in sd.items()}, str(src))
    out2 = tmp_path / "o2.safetensors"
    assert run(["convert-ckpt", str(src), str(out2), "--check", str(preset), "--num-classes", "3", "--dry-run"]) == 2
    text = capsys.readouterr().out
    assert "extra.head.weight" in text and "net.laterals.0.weight" in text and not out2.exists()
    # --check against a segcli weights file: its model and its classes
    r2 = convert(out, tmp_path / "o3.safetensors", target=TargetOptions(check=str(out)))
    assert r2.ok and r2.classes == ["class_0", "class_1", "class_2"] and r2.model.startswith("fpn (resnet18)")
    # shape mismatch: the wrong number of classes
    with pytest.raises(CheckpointError, match=r"2 shape-mismatched \(net.head.2.weight: file \(3, 8, 1, 1\)"):
        convert(r.out, out2, target=TargetOptions(check=str(preset), num_classes=5))


def test_rename_to_pth_and_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src = tmp_path / "plain.pt"
    torch.save({"state_dict": {"backbone.conv.weight": torch.ones(2, 2)}}, src)
    out = tmp_path / "plain.pth"
    r = convert(src, out, ConvertOptions(rename=[r"^backbone\.=encoder."]), to="pth")
    assert r.renamed == 1 and torch.load(out, weights_only=True)["encoder.conv.weight"].sum() == 4
    # a segcli file needs a model to fit
    with pytest.raises(UserError, match="`check`"):
        convert(src, tmp_path / "x.safetensors")
    with pytest.raises(UserError, match="REGEX=REPLACEMENT"):
        convert(src, tmp_path / "y.pth", ConvertOptions(rename=["nope"]), to="pth")
    with pytest.raises(UserError, match="regular expression"):
        convert(src, tmp_path / "y.pth", ConvertOptions(drop=["("]), to="pth")
    with pytest.raises(CheckpointError, match="unknown checkpoint type"):
        read_checkpoint(tmp_path / "r.json") if (tmp_path / "r.json").write_text("{}") else None
    with pytest.raises(CheckpointError, match="not found"):
        read_checkpoint(tmp_path / "missing.pth")
    assert run(["convert-ckpt"]) == 2 and "give IN and OUT" in capsys.readouterr().err
    assert run(["convert-ckpt", "--list-maps"]) == 0
    assert "key maps" in capsys.readouterr().out
    assert run(["convert-ckpt", "--list-maps", "--json"]) == 0
    listed = {m["source"]: m for m in json.loads(capsys.readouterr().out)}
    assert listed["torchvision:lraspp_mobilenet_v3_large"]["model"] == "lraspp"
    assert listed["smp:fpn"]["model"] == "fpn_smp" and "fifth decoder block" in listed["smp:unet"]["notes"]


def test_check_takes_a_run_directory_like_every_command(tmp_path: Path) -> None:
    """Reported: `--check RUN_DIR` was refused ("preset file not found"). A run directory gives its best
    weights (model and classes), a folder of numbered runs its latest, and a run without weights yet its preset."""
    import shutil

    sd = {k: v.contiguous() for k, v in _quickstart_model(3).state_dict().items()}
    src = tmp_path / "w.safetensors"
    save_file(sd, str(src))
    first = convert(src, tmp_path / "seg.safetensors", target=TargetOptions(check=str(_qs16(tmp_path)), num_classes=3))
    run_dir = tmp_path / "runs" / "qs" / "1"
    (run_dir / "weights").mkdir(parents=True)
    shutil.copy(first.out, run_dir / "weights" / "best.safetensors")
    shutil.copy(_qs16(tmp_path), run_dir / "preset.toml")
    for check in (run_dir, run_dir.parent):
        r = convert(src, tmp_path / f"o{len(check.parts)}.safetensors", target=TargetOptions(check=str(check)))
        assert r.ok and r.classes == ["class_0", "class_1", "class_2"] and r.model.startswith("fpn (resnet18)")
    (run_dir / "weights" / "best.safetensors").unlink()  # not trained yet: the run's preset is the target
    r = convert(src, tmp_path / "p.safetensors", target=TargetOptions(check=str(run_dir), num_classes=3))
    assert r.ok and r.model.startswith("fpn (resnet18)")
    assert (
        run(
            ["convert-ckpt", str(src), str(tmp_path / "cli.safetensors"), "--check", str(run_dir), "--num-classes", "3"]
        )
        == 0
    )
