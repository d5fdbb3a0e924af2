"""OpenVINO export: the .xml/.bin pair verified by the same parity gate as ONNX, its metadata read back, `seg eval`
and `seg infer` running it like an .onnx, and the NNCF int8 graph gated on the val split's mIoU."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")

from segcli.cli.app import run  # noqa: E402
from segcli.errors import UserError  # noqa: E402
from segcli.infer.backends import ExportInfo, read_openvino  # noqa: E402
from segcli.infer.exporter import ExportOptions, default_out, export_model  # noqa: E402
from segcli.infer.openvino_graph import check_openvino_int8, quantize_openvino  # noqa: E402
from segcli.infer.quantize import Int8Options  # noqa: E402


@pytest.fixture(scope="module")
def xml(trained: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny trained run exported to OpenVINO fp32 (verified)."""
    res = export_model(trained, "openvino", tmp_path_factory.mktemp("ov") / "m.xml", "cpu")
    assert res.passed
    return res.path


def test_export_writes_xml_and_bin_with_metadata_and_passes_the_gate(xml: Path, trained: Path) -> None:
    report = json.loads(xml.with_name("m.xml.parity.json").read_text())
    p = report["parity"]
    assert report["format"] == "openvino" and report["mode"] == "dynamic" and p["passed"]
    assert p["agreement"] >= 0.999 and p["max_abs_diff"] <= p["bound"] and len(p["sizes"]) == 2
    assert xml.with_suffix(".bin").is_file() and not list(xml.parent.glob(".*segtmp*"))
    model, raw = read_openvino(xml)
    info = ExportInfo.from_strings(raw, xml)
    assert raw["format"] == "segcli-export/1" and info.dynamic and not info.int8
    assert json.loads(raw["classes"]) == ["background", "circle", "square", "triangle", "cross"]
    assert {str(t.get_element_type()) for t in model.inputs} == {"<Type: 'float32'>"}  # fp32, not fp16-compressed
    text = xml.with_name("m.xml.parity.txt").read_text()
    assert "format: openvino (converted from ONNX opset 18)" in text and "result: PASSED" in text
    assert default_out(trained / "weights" / "best.safetensors", "openvino", int8=True).name == "model.int8.xml"


def test_eval_and_infer_run_the_xml_like_the_checkpoint(
    xml: Path, trained: Path, shapes_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from segcli.infer.evaluator import EvalOptions, evaluate
    from segcli.infer.protocol import ProtocolChoices

    got = evaluate(xml, shapes_root, device="cpu", options=EvalOptions(out=tmp_path / "ov.json"))
    ref = evaluate(
        trained, shapes_root, "val", "cpu", ProtocolChoices(amp="none"), EvalOptions(out=tmp_path / "e.json")
    )
    assert got.metrics["mIoU"] == pytest.approx(ref.metrics["mIoU"], abs=1e-3)
    images = shapes_root / "images" / "val"
    assert run(["infer", str(xml), str(images), "--out", str(tmp_path / "pred"), "--device", "cpu"]) == 0
    assert len(list((tmp_path / "pred").rglob("*.png"))) >= len(list(images.iterdir()))


# NNCF's quantisation runs in a child process: after it, the next fork of the same process (a subprocess, a
# DataLoader worker) crashed with a segmentation fault here (nncf 3.4, openvino 2026.4), taking a test worker down
_QUANTISE = """
import json, sys
from pathlib import Path
from segcli.infer.exporter import ExportOptions, export_model
from segcli.infer.quantize import Int8Options

opts = ExportOptions(int8=Int8Options(calib_images=4, calib_method="minmax", max_drop=100.0))
res = export_model(Path(sys.argv[1]), "openvino", Path(sys.argv[2]), "cpu", opts)
print(json.dumps({"passed": res.passed, "int8": res.info.int8, "q": res.parity["int8"], "path": str(res.path),
                  "nncf": "NNCF" in res.report_text.read_text()}))
"""


@pytest.mark.slow  # NNCF's quantisation of the tiny FPN-R18: 10-25 s on the shared 2-core machine
def test_int8_export_through_nncf_is_gated_and_runs_in_eval(trained: Path, shapes_root: Path, tmp_path: Path) -> None:
    pytest.importorskip("nncf")
    import subprocess
    import sys

    from segcli.infer.evaluator import EvalOptions, evaluate

    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, "-c", _QUANTISE, str(trained), str(tmp_path / "m.int8.xml")]
    child = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert child.returncode == 0, child.stderr[-3000:]
    res = json.loads(child.stdout.strip().splitlines()[-1])
    q = res["q"]
    assert res["passed"] and res["int8"] and q["method"] == "minmax" and q["calib_images"] == 4
    assert q["val_split"] == "val" and q["drop"] == pytest.approx(100 * (q["fp32_mIoU"] - q["int8_mIoU"]))
    assert 0.0 <= q["vs_fp32"]["agreement"] <= 1.0 and res["nncf"]
    _, raw = read_openvino(Path(res["path"]))
    assert json.loads(raw["export"])["int8"] is True
    ev = evaluate(Path(res["path"]), shapes_root, device="cpu", options=EvalOptions(out=tmp_path / "e.json"))
    assert ev.metrics["mIoU"] == pytest.approx(q["int8_mIoU"], abs=1e-6)  # eval runs it as the gate did


def test_int8_auto_tries_the_mixed_preset_then_refuses_a_drop_past_the_bound(
    xml: Path, shapes_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gate's logic without NNCF's cost: each "quantisation" returns the fp32 model (drop 0), which a bound
    below zero refuses after auto has tried both presets; the refusal names no onnxruntime-only option."""
    pytest.importorskip("nncf")
    import segcli.infer.openvino_graph as ovg
    from segcli.core.checkpoint import meta_from_strings

    calls: list[str] = []
    monkeypatch.setattr(ovg, "_quantize_once", lambda nncf, model, inputs, method: calls.append(method) or model)
    model, raw = read_openvino(xml)
    meta, info = meta_from_strings(raw, xml), ExportInfo.from_strings(raw, xml)
    q = quantize_openvino(model, info, meta, shapes_root, Int8Options(4, "auto", -1.0))
    assert calls == ["performance", "mixed"] and [t["method"] for t in q.report["tried"]] == calls
    assert not q.passed and q.report["drop"] == pytest.approx(0.0) and "points below fp32" in q.report["failures"][0]
    assert "keep_fp32" not in q.report["failures"][0] and q.report["calib_images"] == 4


@pytest.mark.parametrize(
    ("opts", "named"), [(Int8Options(calib_method="entropy"), "calib_method"), (Int8Options(keep_fp32=2), "keep_fp32")]
)
def test_options_nncf_cannot_honour_name_the_argument(opts: Int8Options, named: str) -> None:
    with pytest.raises(UserError) as e:
        check_openvino_int8(opts)
    assert f"`{named}`" in str(e.value)


def test_half_is_refused(trained: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError) as e:
        export_model(trained, "openvino", tmp_path / "m.xml", "cpu", ExportOptions(half=True))
    assert "`half`" in str(e.value)
