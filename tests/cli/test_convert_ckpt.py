"""`seg convert-ckpt` end to end: a DDP training checkpoint converts, `seg eval` loads the result, --overwrite and
--half."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from cli_helpers import user_error
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


def _fake_convert(monkeypatch: pytest.MonkeyPatch, **report: Any) -> dict[str, Any]:
    from segcli.convert.core import ConvertReport

    seen: dict[str, Any] = {}

    def convert(src: Path, dst: Path, keys: Any, fit: Any, **kwargs: Any) -> ConvertReport:
        seen.update(src=src, dst=dst, keys=keys, fit=fit, **kwargs)
        return ConvertReport(**{"source": str(src), "out": str(dst), "to": kwargs["to"], **report})

    monkeypatch.setattr("segcli.convert.convert", convert)
    return seen


def test_convert_hands_every_option_to_the_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from segcli.convert import ConvertOptions, TargetOptions

    seen = _fake_convert(monkeypatch, tensors=12, dtype="float16", written=True, model="fpn")
    argv = ["convert-ckpt", "in.pth", "out.safetensors", "--from", "smp:fpn", "--rename", "^a=b", "--rename", "c=d"]
    argv += [
        "--drop",
        "num_batches",
        "--key",
        "ema",
        "--strip",
        "--half",
        "--classes",
        "bg, road,",
        "--mean",
        "0.5,0.5,0.5",
    ]
    assert run([*argv, "--std", "0.25,0.25,0.25", "--backbone", "resnet34", "--check", "quickstart", "--json"]) == 0
    assert seen["keys"] == ConvertOptions(
        source="smp:fpn", key="ema", rename=["^a=b", "c=d"], drop=["num_batches"], strip=True
    )
    assert seen["fit"] == TargetOptions(
        check="quickstart", backbone="resnet34", classes=["bg", "road"], mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)
    )
    assert (seen["src"], seen["dst"], seen["to"], seen["half"]) == (
        Path("in.pth"),
        Path("out.safetensors"),
        "segcli",
        True,
    )
    assert seen["dry_run"] is False and seen["overwrite"] is False
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is True and doc["tensors"] == 12 and doc["model"] == "fpn"


def test_convert_table_and_a_failed_dry_run_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    missing = [f"decoder.block{i}.weight" for i in range(8)]
    _fake_convert(monkeypatch, model="fpn", missing=missing, dry_run=True, tensors=3, dtype="float32")
    assert run(["convert-ckpt", "in.pth", "out.safetensors", "--dry-run"]) == 2
    out = capsys.readouterr().out
    assert "decoder.block0.weight" in out and "... (8)" in out and "decoder.block6.weight" not in out
    assert "no (dry run)" in out and "3 (float32)" in out and "top level" in out


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["convert-ckpt", "in.pth"], ("give IN and OUT", "--list-maps")),
        (["convert-ckpt", "in.pth", "out.safetensors", "--mean", "0.5,x"], ("--mean '0.5,x'", "comma-separated")),
        (["convert-ckpt", "in.pth", "out.safetensors", "--std", "a"], ("--std 'a'",)),
    ],
)
def test_convert_refuses_missing_files_and_bad_numbers(
    args: list[str], needles: tuple[str, ...], monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture
) -> None:
    seen = _fake_convert(monkeypatch)
    user_error(capfd, args, *needles)
    assert seen == {}  # refused before the engine


def test_list_maps_lists_every_registered_key_map(capsys: pytest.CaptureFixture) -> None:
    from segcli.convert.maps import MAPS

    assert run(["convert-ckpt", "--list-maps", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [m["source"] for m in listed] == MAPS.names() and all(m["notes"] for m in listed)
    assert run(["convert-ckpt", "--list-maps"]) == 0
    out = capsys.readouterr().out
    assert "key maps (--from)" in out and all(name.split(":")[0] in out for name in MAPS.names())
