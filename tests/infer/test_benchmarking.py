"""benchmark(): labelled throughput figures of one model (tiny sizes here; the figures are not asserted), each
exported backend scored beside eager."""

from __future__ import annotations

from pathlib import Path

import pytest

from segcli.errors import PresetError
from segcli.infer.benchmarking import BenchmarkOptions, benchmark
from segcli.infer.evaluator import EvalOptions, evaluate
from segcli.infer.exporter import export_model
from segcli.infer.protocol import ProtocolChoices
from segcli.train.trainer import train
from tests.conftest import TINY


def test_benchmark_labels_every_figure() -> None:
    protocol = ProtocolChoices(size=(32, 32), batch_size=2, amp="none")
    r = benchmark("quickstart", protocol, device="cpu", options=BenchmarkOptions(iters=2, warmup=1, num_classes=3))
    assert r["model"] == "fpn/resnet18" and r["resolution"] == "32x32" and r["precision"] == "none"
    assert r["memory_format"] == "channels_last" and r["backend"] == "eager" and r["batch"] == 2
    assert r["device"] == "cpu" and r["device_name"] and r["threads"] >= 1
    for key in ("inference", "inference_end_to_end"):
        s = r[key]
        assert s["images_per_s"] > 0 and s["latency_ms_p50"] <= s["latency_ms_p90"] <= s["latency_ms_p99"]
    assert r["train_step"]["images_per_s"] > 0 and r["train_step"]["peak_memory_mb"] > 0


def test_benchmark_of_an_unknown_preset_names_the_bundled_ones() -> None:
    with pytest.raises(PresetError, match="no_such_preset.*quickstart"):
        benchmark("no_such_preset", ProtocolChoices(size=(32, 32)), device="cpu")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, shapes_root: Path) -> Path:
    out = tmp_path_factory.mktemp("benchruns")
    return Path(train("quickstart", [f"data.root={shapes_root}", f"train.out_dir={out}", *TINY]).run_dir)


def test_benchmark_exports_and_scores_each_backend(trained: Path, shapes_root: Path, tmp_path: Path) -> None:
    """--onnx --data: eager and onnxruntime figures side by side, each with seg eval's mIoU, parity verified."""
    pytest.importorskip("onnxruntime")
    options = BenchmarkOptions(iters=2, warmup=1, data=str(shapes_root), onnx=True)
    r = benchmark(str(trained), ProtocolChoices(size=(48, 48), amp="none"), device="cpu", options=options)
    ref = evaluate(
        trained, shapes_root, device="cpu", protocol=ProtocolChoices(amp="none"), options=EvalOptions(out=tmp_path)
    )
    assert r["backend"] == "eager" and r["accuracy"]["mIoU"] == pytest.approx(ref.metrics["mIoU"])
    (ort,) = r["backends"]
    assert ort["backend"] == "onnxruntime" and ort["parity"]["passed"] and ort["shapes"] == "dynamic"
    assert ort["inference"]["images_per_s"] > 0 and abs(ort["accuracy"]["mIoU"] - ref.metrics["mIoU"]) <= 0.002
    assert not list(trained.glob("export/*"))  # the temporary export is not left in the run


def test_benchmark_int8_adds_the_quantised_graph_with_its_gate(trained: Path, shapes_root: Path) -> None:
    """--int8: eager, onnxruntime fp32 and int8 in one result, the int8 row with its val-mIoU drop and each
    backend's p50 latency as a ratio of eager's; the CPU's instruction sets are named."""
    pytest.importorskip("onnxruntime")
    options = BenchmarkOptions(iters=2, warmup=1, data=str(shapes_root), int8=True, train=False)
    r = benchmark(str(trained), ProtocolChoices(size=(48, 48), amp="none"), device="cpu", options=options)
    fp32, int8 = r["backends"]
    assert (fp32["backend"], int8["backend"]) == ("onnxruntime", "onnxruntime int8")
    assert int8["parity"]["passed"] and int8["parity"]["miou_drop"] <= 1.0 and int8["parity"]["calibration"]
    assert abs(int8["accuracy"]["mIoU"] - fp32["accuracy"]["mIoU"]) <= 0.01
    assert all(b["latency_ratio_to_first"] > 0 for b in (fp32, int8))
    assert isinstance(r["cpu_flags"], list)


def test_benchmark_of_an_exported_model_labels_its_backend(trained: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    onnx = export_model(trained, "onnx", tmp_path / "m.onnx", device="cpu").path
    r = benchmark(str(onnx), ProtocolChoices(size=(64, 64)), device="cpu", options=BenchmarkOptions(iters=2, warmup=1))
    assert r["backend"] == "onnxruntime" and r["precision"] == "graph" and "train_step" not in r
    assert r["inference_end_to_end"]["images_per_s"] > 0 and r["train_step_skipped"]


def test_compare_times_each_backend_beside_eager_fp32_with_its_miou(trained: Path, shapes_root: Path) -> None:
    """compare: eager fp32 is the first row (whatever amp), then the rows asked for in the table's order, each
    with its p50 latency as a ratio of eager fp32's and its mIoU; OpenVINO's row passed its parity gate."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("openvino")
    options = BenchmarkOptions(
        iters=2, warmup=1, data=str(shapes_root), train=False, compare=("openvino", "eager-bf16")
    )
    r = benchmark(str(trained), ProtocolChoices(size=(48, 48), amp="bf16"), device="cpu", options=options)
    assert r["backend"] == "eager fp32" and r["precision"] == "none" and r["skipped"] == []
    bf16, ov = r["backends"]
    assert (bf16["backend"], ov["backend"]) == ("eager bf16", "openvino")
    assert ov["parity"]["passed"] and ov["shapes"] == "dynamic"
    assert abs(ov["accuracy"]["mIoU"] - r["accuracy"]["mIoU"]) <= 0.002 and 0.0 <= bf16["accuracy"]["mIoU"] <= 1.0
    for row in (bf16, ov):
        assert row["latency_ratio_to_first"] == pytest.approx(
            row["inference"]["latency_ms_p50"] / r["inference"]["latency_ms_p50"], rel=0.01
        )


def test_compare_skips_a_backend_whose_package_is_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A missing package is a skipped row naming the package and the extra that installs it, not a failure."""
    import segcli.infer.benchmarking as benchmarking
    from segcli.errors import UserError

    monkeypatch.setattr(benchmarking, "package_available", lambda name: name not in ("openvino", "nncf"))
    assert benchmarking.compared_rows(BenchmarkOptions(compare=("all",))) == list(benchmarking.COMPARED[1:])
    assert benchmarking.compared_rows(BenchmarkOptions(int8=True, openvino=True)) == ["openvino", "openvino int8"]
    with pytest.raises(UserError, match="`compare` 'tensorrt'"):
        benchmarking.compared_rows(BenchmarkOptions(compare=("tensorrt",)))
    from export_helpers import tiny_weights

    weights = tiny_weights(tmp_path, "fpn")
    options = BenchmarkOptions(iters=2, warmup=1, train=False, compare=("openvino", "openvino-int8"))
    r = benchmark(str(weights), ProtocolChoices(size=(32, 32)), device="cpu", options=options)
    assert r["backends"] == [] and [s["backend"] for s in r["skipped"]] == ["openvino", "openvino int8"]
    assert all("openvino is not installed (pip install 'segcli[openvino]')" == s["reason"] for s in r["skipped"])
