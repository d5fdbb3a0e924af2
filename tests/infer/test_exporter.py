"""Exporting: every registered model exports (dynamic or fixed, as the pre-flight says) and matches PyTorch;
the graph's casts, metadata, fixed sizes on request, TorchScript."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from export_helpers import tiny_weights

from segcli.cli.app import run
from segcli.models import MODELS

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from segcli.infer.exporter import ExportOptions, export_model  # noqa: E402

# What the pre-flight must decide for each registered model (ONNX): fixed size, and why.
FIXED = {
    "pspnet": "AdaptiveAvgPool2d",  # pyramid pooling: 2, 3 and 6 bins
    "upernet": "AdaptiveAvgPool2d",  # its PPM
    "enet": "export failed",  # max_unpool2d cannot take a symbolic size
}


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS.names())
def test_every_registered_model_exports_and_matches_torch(name: str, tmp_path: Path, images_dir: Path) -> None:
    weights = tiny_weights(tmp_path, name)
    res = export_model(weights, "onnx", tmp_path / f"{name}.onnx", "cpu", ExportOptions(images=images_dir))
    if name in FIXED:
        assert not res.info.dynamic and res.info.fixed_size == (64, 64)
        assert FIXED[name] in res.reason
    else:
        assert res.info.dynamic and res.reason == "", res.reason
    p = res.parity
    assert p["passed"] and p["agreement"] >= 0.999
    sizes = {tuple(s) for s in p["sizes"]}
    assert len(sizes) >= 2 and any(h % 32 or w % 32 for h, w in sizes)
    assert all(r["agreement"] >= 0.999 for r in p["rows"])
    assert res.path.is_file() and res.report_json.is_file() and res.report_text.is_file()


@pytest.fixture(scope="module")
def fpn_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_weights(tmp_path_factory.mktemp("fpn"), "fpn")


@pytest.mark.parametrize(
    ("layout", "bake"), [("float-nchw", "none"), ("uint8-nhwc", "none"), ("float-nchw", "softmax")]
)
def test_graph_casts_only_where_the_dtype_changes(
    fpn_weights: Path, tmp_path: Path, images_dir: Path, layout: str, bake: str
) -> None:
    """No float-to-float Cast at the ends of the graph (onnxruntime runs the one on the output: 4 ms at
    512x1024 on this CPU); a uint8 input has its one Cast to float."""
    import onnx

    out = tmp_path / "m.onnx"
    export_model(fpn_weights, "onnx", out, options=ExportOptions(images=images_dir, layout=layout, bake=bake))
    graph = onnx.load(str(out)).graph
    casts = [n for n in graph.node if n.op_type == "Cast"]
    ends = {graph.input[0].name, graph.output[0].name}
    producers = {o: n for n in graph.node for o in n.output}
    at_ends = [n for n in casts if ends & {*n.input, *n.output}]
    assert not at_ends
    if layout == "uint8-nhwc":  # uint8 → Transpose → Cast(float)
        after_transpose = [n for n in casts if n.input[0] in producers and producers[n.input[0]].op_type == "Transpose"]
        assert len(after_transpose) == 1


def test_metadata_says_everything_infer_needs(fpn_weights: Path, tmp_path: Path, images_dir: Path) -> None:
    import onnx

    out = tmp_path / "m.onnx"
    res = export_model(
        fpn_weights, "onnx", out, options=ExportOptions(images=images_dir, layout="uint8-nhwc", bake="softmax")
    )
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(props["classes"]) == ["background", "a", "b"]
    assert json.loads(props["palette"])[1] == [255, 0, 0]
    assert len(json.loads(props["mean"])) == 3 and len(json.loads(props["std"])) == 3
    assert props["ignore_index"] == "255" and props["input_layout"] == "uint8-nhwc" and props["bake"] == "softmax"
    assert props["segcli_version"] and "[eval]" in props["preset"] and json.loads(props["resize"]) == "native"
    export = json.loads(props["export"])
    assert export["dynamic"] is True and export["input_multiple"] == 32
    graph_input = onnx.load(str(out)).graph.input[0].type.tensor_type
    assert graph_input.elem_type == onnx.TensorProto.UINT8
    assert [d.dim_param or d.dim_value for d in graph_input.shape.dim] == ["batch", "height", "width", 3]
    report = json.loads(res.report_json.read_text())
    assert report["mode"] == "dynamic" and report["parity"]["compared"] == "probabilities"


def test_torchscript_export_runs_through_eval_and_infer(fpn_weights: Path, tmp_path: Path, images_dir: Path) -> None:
    res = export_model(fpn_weights, "torchscript", tmp_path / "m.torchscript", options=ExportOptions(images=images_dir))
    assert res.info.dynamic and res.parity["passed"]
    assert run(["infer", str(res.path), str(images_dir), "--out", str(tmp_path / "pred"), "--device", "cpu"]) == 0
    assert len(list((tmp_path / "pred" / "masks").glob("*.png"))) == 2


def test_fixed_on_request_and_torchscript_of_pspnet_stays_dynamic(tmp_path: Path, images_dir: Path) -> None:
    fpn = tiny_weights(tmp_path, "fpn")
    res = export_model(
        fpn, "onnx", tmp_path / "f.onnx", options=ExportOptions(images=images_dir, fixed=True, size=(60, 90))
    )
    assert not res.info.dynamic and res.info.fixed_size == (64, 96) and "`fixed`" in res.reason
    assert res.parity["passed"]
    # TorchScript runs adaptive pooling at any size: only ONNX needs PSPNet at a fixed size
    psp = tiny_weights(tmp_path, "pspnet")
    res = export_model(psp, "torchscript", tmp_path / "p.torchscript", options=ExportOptions(images=images_dir))
    assert res.info.dynamic and res.parity["passed"]


def test_a_prior_model_is_refused_in_one_line() -> None:
    from segcli.config.schema import ModelConfig
    from segcli.core.factory import model_from_preset
    from segcli.errors import UserError
    from segcli.infer.exporter import ExportWrapper

    model = model_from_preset(ModelConfig(name="fpn", backbone="test_resnet", decoder_channels=16, prior="mask"), 2)
    with pytest.raises(UserError, match=r'model.prior = "mask" cannot be exported yet') as e:
        ExportWrapper(model)
    assert "\n" not in str(e.value)
