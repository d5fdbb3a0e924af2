"""Backends: an exported graph seen by the prediction core as a model (layouts, baked outputs, fixed sizes and
batch 1), its metadata, loading each kind of file; exported ONNX models run through `seg eval`/`seg infer` and
match the checkpoint; a graph without segcli metadata is refused."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from export_helpers import tiny_weights

from segcli.cli.app import run
from segcli.errors import CheckpointError, UserError
from segcli.train.trainer import train
from tests.conftest import TINY

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from segcli.infer.backends import (  # noqa: E402
    EXPORT_FORMAT,
    ExportedModel,
    ExportInfo,
    OnnxRunner,
    load_inference_model,
    onnx_providers,
    read_onnx_metadata,
    require_onnx,
    scores_from_output,
    to_graph_input,
)
from segcli.infer.exporter import ExportOptions, export_model  # noqa: E402


@pytest.fixture(scope="module")
def fpn_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_weights(tmp_path_factory.mktemp("fpn"), "fpn")


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


def test_export_info_round_trips_through_its_strings_and_refuses_damage(tmp_path: Path) -> None:
    info = ExportInfo(layout="uint8-nhwc", bake="softmax", dynamic=False, fixed_size=(64, 96), dynamic_batch=False)
    raw = info.to_strings()
    assert raw["input_layout"] == "uint8-nhwc" and raw["bake"] == "softmax"
    assert ExportInfo.from_strings(raw, "m.onnx") == info  # fixed_size back as a tuple
    with pytest.raises(CheckpointError, match=r"m\.onnx: damaged segcli export metadata \(KeyError"):
        ExportInfo.from_strings({}, "m.onnx")
    with pytest.raises(CheckpointError, match=r"m\.onnx: damaged segcli export metadata \(TypeError"):
        ExportInfo.from_strings({"export": json.dumps({"colour": "red"})}, "m.onnx")
    bad = {"export": json.dumps({**json.loads(raw["export"]), "bake": "sigmoid"})}
    with pytest.raises(CheckpointError, match=r"unknown input layout 'uint8-nhwc' or bake mode 'sigmoid'"):
        ExportInfo.from_strings(bad, "m.onnx")


def test_graph_input_in_each_layout() -> None:
    x = torch.tensor([[[[0.4, 254.6], [-3.0, 300.0]], [[1.0, 2.0], [3.0, 4.0]], [[5.0, 6.0], [7.0, 8.0]]]])
    nhwc = to_graph_input(x, "uint8-nhwc")
    assert nhwc.dtype == torch.uint8 and nhwc.shape == (1, 2, 2, 3)
    assert nhwc[0, :, :, 0].tolist() == [[0, 255], [0, 255]] and nhwc[0, 1, 1].tolist() == [255, 4, 8]
    assert to_graph_input(x, "float-nchw").dtype == torch.float32
    half = to_graph_input(x, "float-nchw", half=True)
    assert half.dtype == torch.float16 and half.shape == x.shape


def test_scores_from_each_bake_keep_argmax_and_probabilities() -> None:
    logits = torch.randn(2, 4, 3, 5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(scores_from_output(logits, "none", 4), logits)
    from_probs = scores_from_output(logits.softmax(1), "softmax", 4)
    torch.testing.assert_close(from_probs.softmax(1), logits.softmax(1), atol=1e-6, rtol=0)
    ids = logits.argmax(1)
    one_hot = scores_from_output(ids.to(torch.int64), "argmax", 4)
    assert one_hot.shape == logits.shape and torch.equal(one_hot.argmax(1), ids) and one_hot.sum(1).eq(1).all()
    zero = scores_from_output(torch.zeros(1, 2, 1, 1), "softmax", 2)
    assert torch.isfinite(zero).all()  # log of a zero probability stays finite


def test_exported_model_resizes_to_a_fixed_graph_and_runs_batch_one_at_a_time() -> None:
    seen: list[tuple] = []

    def runner(g: torch.Tensor) -> torch.Tensor:  # a graph returning argmax ids: class 1 on the left half
        seen.append((tuple(g.shape), g.dtype))
        ids = torch.zeros(g.shape[0], 8, 8, dtype=torch.int64)
        ids[:, :, :4] = 1
        return ids

    info = ExportInfo(layout="uint8-nhwc", bake="argmax", dynamic=False, fixed_size=(8, 8), dynamic_batch=False)
    model = ExportedModel(runner, info, num_classes=3)
    out = model(torch.rand(2, 3, 16, 12) * 255)
    assert seen == [((1, 8, 8, 3), torch.uint8)] * 2  # resized to the fixed size, one image per call
    assert out.shape == (2, 3, 16, 12) and model.input_multiple == 32
    assert out.argmax(1)[:, :, :6].eq(1).all() and out.argmax(1)[:, :, 6:].eq(0).all()  # nearest, not blurred


def test_exported_model_with_a_dynamic_graph_calls_it_once_on_the_batch() -> None:
    calls: list[tuple] = []

    def runner(g: torch.Tensor) -> torch.Tensor:
        calls.append(tuple(g.shape))
        return g[:, :2] * 2

    model = ExportedModel(runner, ExportInfo(input_multiple=8), num_classes=2)
    x = torch.rand(3, 3, 8, 16)
    assert torch.equal(model(x), x[:, :2] * 2) and calls == [(3, 3, 8, 16)] and model.input_multiple == 8


def test_onnx_providers_and_a_missing_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import onnxruntime

    assert onnx_providers(torch.device("cpu")) == ["CPUExecutionProvider"]
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    with pytest.raises(UserError, match="no CUDA provider; pip install onnxruntime-gpu, or use `device` cpu"):
        onnx_providers(torch.device("cuda"))
    monkeypatch.setattr(
        onnxruntime, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"]
    )
    assert onnx_providers(torch.device("cuda"))[0] == "CUDAExecutionProvider"
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(UserError, match=r"Reading things needs onnx and onnxruntime .*pip install 'segcli\[export\]'"):
        require_onnx("Reading things")


def test_damaged_files_are_one_line_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not protobuf \xff\xfe")
    with pytest.raises(CheckpointError, match=r"bad\.onnx: not a readable ONNX file"):
        read_onnx_metadata(bad)
    with pytest.raises(CheckpointError, match=r"bad\.onnx: "):
        OnnxRunner(bad, torch.device("cpu"))
    ts = tmp_path / "bad.torchscript"
    ts.write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match=r"bad\.torchscript: not a TorchScript model"):
        load_inference_model(ts, torch.device("cpu"))


def test_a_torchscript_module_without_segcli_metadata_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "plain.ts"
    torch.jit.save(torch.jit.script(torch.nn.Conv2d(3, 2, 1)), str(path))
    with pytest.raises(
        CheckpointError, match=f"plain\\.ts: exported without segcli metadata \\(no '{EXPORT_FORMAT}'\\)"
    ):
        load_inference_model(path, torch.device("cpu"))


def test_each_kind_of_file_loads_as_the_same_model(fpn_weights: Path, tmp_path: Path) -> None:
    cpu = torch.device("cpu")
    eager, meta = load_inference_model(fpn_weights, cpu)
    onnx_model, onnx_meta = load_inference_model(export_model(fpn_weights, "onnx", tmp_path / "m.onnx").path, cpu)
    ts_path = export_model(fpn_weights, "torchscript", tmp_path / "m.torchscript").path
    ts_model, ts_meta = load_inference_model(ts_path, cpu)
    assert isinstance(onnx_model, ExportedModel) and isinstance(ts_model, ExportedModel)
    assert meta.num_classes == onnx_meta.num_classes == ts_meta.num_classes == 3 and onnx_meta.classes == meta.classes
    x = torch.rand(2, 3, 64, 96) * 255
    with torch.no_grad():
        ref = eager.eval()(x)
        ref = ref["out"] if isinstance(ref, dict) else ref
        for other in (onnx_model, ts_model):
            torch.testing.assert_close(other(x), ref, atol=1e-3, rtol=1e-3)
