"""`seg export`: every registered model exports (dynamic or fixed, as the pre-flight says) and matches PyTorch;
metadata, the parity gate, refusals; `seg eval`/`seg infer` of exported models through the prediction core."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from segcli.cli.app import run
from segcli.config.load import load_preset
from segcli.core.checkpoint import save_weights
from segcli.core.factory import model_from_preset
from segcli.data.format import make_info
from segcli.data.io import write_image
from segcli.models import MODELS, model_options
from segcli.train.trainer import train
from tests.conftest import TINY

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from segcli.infer.exporter import ExportOptions, export_model  # noqa: E402

# What the pre-flight must decide for each registered model (ONNX): fixed size, and why.
FIXED = {
    "pspnet": "AdaptiveAvgPool2d",  # pyramid pooling: 2, 3 and 6 bins
    "upernet": "AdaptiveAvgPool2d",  # its PPM
    "enet": "export failed",  # max_unpool2d cannot take a symbolic size
}
INFO = make_info("toy", ("background", "a", "b"), [[0, 0, 0], [255, 0, 0], [0, 255, 0]], 255, source="test")


def tiny_weights(tmp_path: Path, name: str) -> Path:
    """Untrained tiny weights of model ``name`` (resnet18 / 16 decoder channels where the model takes them)."""
    accepted = model_options(name)
    overrides = [f"model.name={name}", "augment.crop_size=[64,64]", "data.root=nowhere"]
    if accepted is None or "decoder_channels" in accepted:
        overrides.append("model.decoder_channels=16")
    preset = load_preset("quickstart", overrides).preset
    torch.manual_seed(0)
    model = model_from_preset(preset.model, 3).eval()
    return save_weights(tmp_path / f"{name}.safetensors", model, preset, INFO)


@pytest.fixture(scope="module")
def images_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two smooth 64x96 images (one parity size 64x96, the other 48x72: not a multiple of 32)."""
    import cv2

    folder = tmp_path_factory.mktemp("parity_images")
    rng = np.random.default_rng(0)
    for i in range(2):
        low = rng.integers(0, 256, (4, 6, 3)).astype(np.float32)
        write_image(folder / f"im{i}.png", np.clip(cv2.resize(low, (96, 64)), 0, 255).astype(np.uint8))
    return folder


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
    assert "--onnx or --torchscript" in capsys.readouterr().err
    assert run(["export", str(fpn_weights), "--onnx", "--torchscript"]) == 2
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


def test_torchscript_export_runs_through_eval_and_infer(fpn_weights: Path, tmp_path: Path, images_dir: Path) -> None:
    res = export_model(fpn_weights, "torchscript", tmp_path / "m.torchscript", options=ExportOptions(images=images_dir))
    assert res.info.dynamic and res.parity["passed"]
    assert run(["infer", str(res.path), str(images_dir), "--out", str(tmp_path / "pred"), "--device", "cpu"]) == 0
    assert len(list((tmp_path / "pred" / "masks").glob("*.png"))) == 2


# ------------------------------------------------------------------ eval/infer of a trained model through ORT
@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, shapes_root: Path) -> Path:
    out = tmp_path_factory.mktemp("exportruns")
    return Path(train("quickstart", [f"data.root={shapes_root}", f"train.out_dir={out}", *TINY]).run_dir)


def _eval(capsys, args: list[str]) -> dict:
    capsys.readouterr()
    assert run(["eval", *args, "--json", "--device", "cpu"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("layout", ["float-nchw", "uint8-nhwc"])
def test_eval_of_exported_model_equals_checkpoint(trained: Path, shapes_root: Path, tmp_path: Path, capsys, layout):
    res = export_model(trained, "onnx", tmp_path / "m.onnx", "cpu", ExportOptions(layout=layout))
    assert res.source.startswith(str(shapes_root)) and "mIoU" in res.parity  # the run's own dataset
    ref = _eval(capsys, [str(trained), "--data", str(shapes_root), "--out", str(tmp_path / "a.json")])
    got = _eval(capsys, [str(res.path), "--data", str(shapes_root), "--out", str(tmp_path / "b.json")])
    assert abs(got["mIoU"] - ref["mIoU"]) <= 0.002
    assert got["weights"].endswith("m.onnx")
    # sliding windows and TTA go through the same core
    opts = ["--slide", "--tile", "32,32", "--tta-scales", "0.75,1"]
    ref = _eval(capsys, [str(trained), "--data", str(shapes_root), *opts, "--out", str(tmp_path / "c.json")])
    got = _eval(capsys, [str(res.path), "--data", str(shapes_root), *opts, "--out", str(tmp_path / "d.json")])
    assert abs(got["mIoU"] - ref["mIoU"]) <= 0.002


def test_infer_with_onnx_matches_checkpoint(trained: Path, shapes_root: Path, tmp_path: Path) -> None:
    from segcli.data.io import read_mask

    res = export_model(trained, "onnx", tmp_path / "m.onnx", "cpu", ExportOptions(bake="argmax"))
    src = shapes_root / "images" / "val"
    assert run(["infer", str(trained), str(src), "--out", str(tmp_path / "a"), "--save", "ids"]) == 0
    assert run(["infer", str(res.path), str(src), "--out", str(tmp_path / "b"), "--save", "ids"]) == 0
    for a in sorted((tmp_path / "a" / "ids").glob("*.png")):
        same = (read_mask(a) == read_mask(tmp_path / "b" / "ids" / a.name)).mean()
        assert same >= 0.999, a.name


def test_eval_of_onnx_without_segcli_metadata_is_a_clear_error(fpn_weights: Path, tmp_path: Path, capsys) -> None:
    import onnx

    res = export_model(fpn_weights, "onnx", tmp_path / "m.onnx")
    proto = onnx.load(str(res.path))
    del proto.metadata_props[:]
    onnx.save(proto, str(tmp_path / "bare.onnx"))
    capsys.readouterr()
    assert run(["eval", str(tmp_path / "bare.onnx"), "--data", str(tmp_path)]) == 2
    assert "seg export" in capsys.readouterr().err


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
