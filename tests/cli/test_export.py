"""`seg export` on the command line: the default output inside the run, usage errors, a missing extra, a failed
parity gate."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from export_helpers import tiny_weights

from segcli.cli.app import run

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def fpn_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_weights(tmp_path_factory.mktemp("fpn"), "fpn")


def test_default_out_is_inside_the_run_and_never_overwritten(tmp_path: Path, images_dir: Path, capsys) -> None:
    run_dir = tmp_path / "runs" / "x" / "1"
    (run_dir / "weights").mkdir(parents=True)
    (run_dir / "preset.toml").write_text("")
    src = tiny_weights(tmp_path, "fcn")
    (run_dir / "weights" / "best.safetensors").write_bytes(src.read_bytes())
    assert run(["export", str(run_dir), "--onnx", "--images", str(images_dir), "--device", "cpu"]) == 0
    model = run_dir / "export" / "model.onnx"
    assert model.is_file() and (run_dir / "export" / "model.onnx.parity.txt").is_file()
    assert "PASSED" in capsys.readouterr().out
    before = model.stat().st_mtime_ns
    assert run(["export", str(run_dir), "--onnx", "--images", str(images_dir)]) == 2
    assert "--overwrite" in capsys.readouterr().err and model.stat().st_mtime_ns == before
    assert run(["export", str(run_dir), "--onnx", "--images", str(images_dir), "--overwrite"]) == 0


def test_usage_errors(fpn_weights: Path, tmp_path: Path, capsys) -> None:
    capsys.readouterr()
    assert run(["export", str(fpn_weights)]) == 2
    assert "--onnx, --openvino or --torchscript" in capsys.readouterr().err
    assert run(["export", str(fpn_weights), "--onnx", "--torchscript"]) == 2
    assert run(["export", str(fpn_weights), "--onnx", "--openvino"]) == 2
    assert run(["export", str(fpn_weights), "--onnx", "--half", "--device", "cpu"]) == 2
    assert "--half" in capsys.readouterr().err
    assert run(["export", str(tmp_path / "nope.safetensors"), "--onnx"]) == 2
    assert run(["export", str(fpn_weights), "--onnx", "--bake", "sigmoid"]) == 2
    assert run(["export", str(fpn_weights), "--onnx", "--images", str(tmp_path / "none")]) == 2
    assert run(["export", str(fpn_weights), "--torchscript", "--out", str(tmp_path / "m.pt")]) == 2
    assert ".torchscript" in capsys.readouterr().err


def test_missing_extra_names_the_install_command(fpn_weights: Path, monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    capsys.readouterr()
    assert run(["export", str(fpn_weights), "--onnx"]) == 2
    assert "pip install 'segcli[export]'" in capsys.readouterr().err


def test_parity_failure_keeps_report_and_rejects_model(
    fpn_weights: Path, tmp_path: Path, images_dir: Path, monkeypatch, capsys
) -> None:
    from segcli.infer import exporter

    class Broken(exporter.OnnxRunner):
        def __call__(self, x: torch.Tensor) -> torch.Tensor:  # a wrong graph: class 1 always wins
            out = super().__call__(x)
            out[:, 1] += 100.0
            return out

    monkeypatch.setattr(exporter, "OnnxRunner", Broken)
    out = tmp_path / "m.onnx"
    capsys.readouterr()
    assert run(["export", str(fpn_weights), "--onnx", "--out", str(out), "--images", str(images_dir)]) == 1
    assert "parity gate failed" in capsys.readouterr().err
    assert not out.exists() and (tmp_path / "m.rejected.onnx").is_file()
    report = json.loads((tmp_path / "m.onnx.parity.json").read_text())
    assert report["parity"]["passed"] is False and report["parity"]["failures"]
    assert "FAILED" in (tmp_path / "m.onnx.parity.txt").read_text()
