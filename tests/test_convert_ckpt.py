"""`seg convert-ckpt`: safe loading (a malicious pickle runs nothing), unwrapping, prefixes, options, errors."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from segcli.cli.app import run
from segcli.convert import ConvertOptions, TargetOptions, convert
from segcli.convert.loader import read_checkpoint, unwrap
from segcli.core.checkpoint import build_from_weights, read_metadata
from segcli.errors import CheckpointError, UserError
from segcli.models import build_model


class _Evil:
    """Unpickling this would create a marker file (os.system-style code execution)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return (os.makedirs, (str(self.marker),))


def _quickstart_model(num_classes: int = 4) -> torch.nn.Module:
    return build_model("fpn", num_classes, backbone="resnet18", decoder_channels=16)


def _qs16(tmp_path: Path) -> Path:
    """The quickstart preset with a 16-channel decoder (what _quickstart_model builds)."""
    from segcli.config.load import presets_dir

    preset = tmp_path / "qs16.toml"
    preset.write_text(f'extends = "{presets_dir() / "quickstart.toml"}"\n[model]\ndecoder_channels = 16\n')
    return preset


def _training_checkpoint(path: Path, model: torch.nn.Module) -> None:
    """A DDP-style checkpoint: ``module.`` prefixes, plus an optimizer and an epoch beside the model."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()(torch.rand(2, 3, 64, 64) * 255).mean().backward()
    opt.step()
    sd = {f"module.{k}": v for k, v in model.state_dict().items()}
    torch.save({"model": sd, "optimizer": opt.state_dict(), "epoch": 3}, path)


def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    evil.write_bytes(pickle.dumps({"weight": torch.zeros(2), "payload": _Evil(marker)}, protocol=2))
    with pytest.raises(CheckpointError, match="refused") as e:
        read_checkpoint(evil)
    assert "torch.save(model.state_dict()" in str(e.value)
    assert not marker.exists()
    # through the CLI: one line, exit 2, nothing written, still nothing run
    assert run(["convert-ckpt", str(evil), str(tmp_path / "out.safetensors"), "--check", "quickstart"]) == 2
    msg = capsys.readouterr().err
    assert "refused" in msg and "Traceback" not in msg
    assert not marker.exists() and not (tmp_path / "out.safetensors").exists()
    # torch.save'd (zip format) too
    evil_zip = tmp_path / "evil_zip.pt"
    torch.save({"payload": _Evil(marker)}, evil_zip)
    with pytest.raises(CheckpointError, match="refused"):
        read_checkpoint(evil_zip)
    assert not marker.exists()


def test_unwrap_prefixes_and_strip(tmp_path: Path) -> None:
    model = _quickstart_model()
    path = tmp_path / "ddp.pth"
    _training_checkpoint(path, model)
    un = unwrap(read_checkpoint(path))
    assert un.path == ["model"] and set(un.left) == {"optimizer", "epoch"}
    assert un.stripped == {"module.": len(model.state_dict())}
    assert set(un.state) == set(model.state_dict())
    # a flat checkpoint with training state beside the weights needs --strip
    flat = {f"_orig_mod.{k}": v for k, v in model.state_dict().items()}
    flat["optimizer"] = {"state": {0: {"exp_avg": torch.zeros(2)}}, "param_groups": [{"lr": 0.1}]}
    flat["epoch"] = 2
    with pytest.raises(CheckpointError, match="`strip`"):
        unwrap(flat)
    un = unwrap(flat, strip=True)
    assert set(un.state) == set(model.state_dict()) and set(un.dropped_non_tensor) == {"optimizer", "epoch"}
    assert un.stripped == {"_orig_mod.": len(model.state_dict())}
    # --key picks an entry explicitly; an unknown one names those holding tensors
    two = {"model": {"a": torch.zeros(1)}, "ema": {"a": torch.ones(1)}}
    assert unwrap(two).path == ["model"] and unwrap(two, key="ema").state["a"].item() == 1.0
    with pytest.raises(CheckpointError, match="model, ema"):
        unwrap(two, key="nope")


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
