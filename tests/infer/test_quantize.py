"""INT8 export: the options, the calibration inputs (the eval path's preprocessing), the val-split mIoU gate, keeping
the most sensitive nodes in fp32, and the int8 graph running through eval like any .onnx."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from segcli.errors import ExportError, UserError  # noqa: E402
from segcli.infer.backends import ExportInfo, read_onnx_metadata  # noqa: E402
from segcli.infer.exporter import ExportOptions, export_model  # noqa: E402
from segcli.infer.quantize import Int8Options, check_int8_options, graph_inputs, quantize_graph  # noqa: E402


@pytest.mark.parametrize(
    ("opts", "named"),
    [
        (Int8Options(calib_images=0), "calib_images"),
        (Int8Options(calib_method="kl"), "calib_method"),
        (Int8Options(max_drop=-1), "max_drop"),
        (Int8Options(keep_fp32=-1), "keep_fp32"),
    ],
)
def test_bad_options_name_the_argument(opts: Int8Options, named: str) -> None:
    with pytest.raises(UserError) as e:
        check_int8_options(opts)
    assert f"`{named}`" in str(e.value)


def test_int8_needs_fp32_onnx(trained: Path, tmp_path: Path) -> None:
    for fmt, out, half in (("torchscript", "m.ts", False), ("onnx", "m.onnx", True)):
        with pytest.raises(UserError) as e:
            export_model(trained, fmt, tmp_path / out, "cpu", ExportOptions(int8=Int8Options(), half=half))
        assert "`int8`" in str(e.value)


@pytest.fixture(scope="module")
def fp32(trained: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny trained run exported to fp32 ONNX (verified)."""
    return export_model(trained, "onnx", tmp_path_factory.mktemp("fp32") / "m.onnx", "cpu").path


def test_calibration_inputs_are_what_the_graph_receives(trained: Path, shapes_root: Path) -> None:
    """48 px images padded to 64 (the input multiple), in each layout's shape and dtype, evenly spaced."""
    from segcli.data.datasets import EvalDataset

    ds = EvalDataset(shapes_root, "train")
    for layout, shape, dtype in (("float-nchw", (1, 3, 64, 64), np.float32), ("uint8-nhwc", (1, 64, 64, 3), np.uint8)):
        got = graph_inputs(ds, ExportInfo(layout=layout), 5, 4)
        assert len(got) == 4 and all(g.shape == shape and g.dtype == dtype for g in got)
    float_in = graph_inputs(ds, ExportInfo(), 5, 16)
    assert len(float_in) == 16 and float_in[0].max() > 1.0  # RGB 0-255: normalisation is inside the graph


def test_int8_export_reports_the_val_miou_drop_and_runs_in_eval(
    trained: Path, shapes_root: Path, tmp_path: Path
) -> None:
    from segcli.infer.evaluator import EvalOptions, evaluate

    opts = ExportOptions(int8=Int8Options(calib_images=8, calib_method="minmax", max_drop=100.0))
    res = export_model(trained, "onnx", tmp_path / "m.int8.onnx", "cpu", opts)
    q = res.parity["int8"]
    assert res.passed and res.info.int8 and q["passed"] and q["method"] == "minmax"
    assert q["calib_images"] == 8 and q["calib_split"] == "train" and q["val_split"] == "val" and q["val_images"] == 8
    assert q["drop"] == pytest.approx(100 * (q["fp32_mIoU"] - q["int8_mIoU"]))
    assert set(q["per_class"]) == {"background", "circle", "square", "triangle", "cross"}
    assert 0.0 <= q["vs_fp32"]["agreement"] <= 1.0 and q["vs_fp32"]["max_abs_diff"] >= 0.0
    meta = read_onnx_metadata(res.path)
    assert json.loads(meta["export"])["int8"] is True
    import onnx

    ops = {n.op_type for n in onnx.load(str(res.path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    text = res.report_text.read_text()
    assert "int8 (QDQ)" in text and "int8 val mIoU" in text and "drop" in text
    ev = evaluate(res.path, shapes_root, device="cpu", options=EvalOptions(out=tmp_path / "e.json"))
    assert ev.metrics["mIoU"] == pytest.approx(q["int8_mIoU"], abs=1e-6)  # eval runs it as the gate did


def test_drop_past_the_bound_refuses_the_export_naming_the_classes(
    trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import segcli.infer.quantize as quantize

    def worse(fp32: tuple, int8: tuple, classes: tuple) -> dict:
        return real(
            fp32, (int8[0] - 0.05, [v - 0.1 if c == "circle" else v for v, c in zip(int8[1], classes)]), classes
        )

    real = quantize._judge
    monkeypatch.setattr(quantize, "_judge", worse)
    out = tmp_path / "m.int8.onnx"
    opts = ExportOptions(int8=Int8Options(calib_images=4, calib_method="minmax"))
    with pytest.raises(ExportError) as e:
        export_model(trained, "onnx", out, "cpu", opts)
    assert "points below fp32" in str(e.value) and "circle" in str(e.value) and "`keep_fp32`" in str(e.value)
    assert not out.exists() and (tmp_path / "m.int8.rejected.onnx").is_file()
    report = json.loads((tmp_path / "m.int8.onnx.parity.json").read_text())
    assert not report["parity"]["passed"] and report["parity"]["int8"]["worst_classes"][0] == "circle"


@pytest.mark.slow
def test_keeping_sensitive_nodes_in_fp32_is_tried_and_reported(fp32: Path, shapes_root: Path) -> None:
    """A drop that cannot fit (bound below zero) makes it try 1, then 2 nodes in fp32, naming them."""
    from segcli.core.checkpoint import meta_from_strings

    raw = read_onnx_metadata(fp32)
    meta, info = meta_from_strings(raw, fp32), ExportInfo.from_strings(raw, fp32)
    q = quantize_graph(fp32.read_bytes(), info, meta, shapes_root, Int8Options(4, "minmax", -1.0, 2))
    kept = [len(t["kept_fp32"]) for t in q.report["tried"]]
    assert kept == [0, 1, 2] and not q.passed
    import onnx

    ops = {n.name: n.op_type for n in onnx.load_from_string(q.payload).graph.node}  # excluded nodes keep their names
    assert all(ops[name] in {"Conv", "Add", "Resize", "Concat", "Mul"} for name in q.report["kept_fp32"])


def test_a_dataset_of_other_classes_is_refused(fp32: Path, tmp_path: Path) -> None:
    from segcli.core.checkpoint import meta_from_strings
    from segcli.data.prepare.shapes import prepare_shapes
    from segcli.errors import DataError

    other = tmp_path / "other"
    prepare_shapes(other, train=2, val=2, size=32, seed=2)
    toml = other / "dataset.toml"
    toml.write_text(toml.read_text().replace('"circle"', '"disc"'))
    raw = read_onnx_metadata(fp32)
    meta, info = meta_from_strings(raw, fp32), ExportInfo.from_strings(raw, fp32)
    with pytest.raises(DataError, match="classes differ"):
        quantize_graph(fp32.read_bytes(), info, meta, other, Int8Options(calib_images=1))
