"""INT8 export: onnxruntime's static quantisation of an exported fp32 ONNX graph, gated on the val split's mIoU.

- **Calibration.** ``calib_images`` images of the run's dataset (the train split, evenly spaced; the val split
  when there is no other) go through the path `seg eval` takes (the preset's test-time resize, padding to the
  input multiple, the graph's input layout), and onnxruntime's calibrator records the activation ranges from
  them: QDQ format, per-channel int8 weights, uint8 activations.
- **Method.** ``percentile`` (99.999th percentile of each tensor's histogram), ``entropy`` (KL divergence) or
  ``minmax``; ``auto`` tries percentile, then entropy when percentile's drop does not fit, and keeps the better.
- **Gate.** The mIoU of the int8 graph on the val split against the fp32 graph's (both through onnxruntime,
  by the eval protocol's forward pass); past ``max_drop`` points the export is refused, naming the classes
  that lose most.
- **Keeping nodes in fp32.** With ``keep_fp32`` > 0, the tensors whose own quantisation loses most signal
  (the SQNR across each QDQ pair, onnxruntime's ``qdq_loss_debug``) have their consumers left in fp32,
  1, 2, 4... of them up to ``keep_fp32``, until the drop fits; the report names them.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from segcli.core.checkpoint import CheckpointMeta
from segcli.data.datasets import EvalDataset, eval_collate
from segcli.data.format import list_splits
from segcli.errors import DataError, UserError, arg
from segcli.infer.backends import ExportedModel, ExportInfo, OnnxRunner
from segcli.infer.evaluator import confusion_with
from segcli.infer.predict_core import forward_padded
from segcli.infer.protocol import PredictionProtocol, eval_resize
from segcli.metrics import ConfusionMatrix

CALIB_METHODS = ("auto", "percentile", "entropy", "minmax")
DEFAULT_CALIB_IMAGES = 64
DEFAULT_MAX_DROP = 1.0  # mIoU points
_CHUNK = 8  # calibration images per pass of the augmented graph (histogram calibrators keep each pass in memory)
_SENSITIVITY_IMAGES = 4  # images the per-tensor SQNR is measured on (every intermediate tensor is kept)
# the operators whose inputs the quantiser turns to int8, the ones worth keeping in fp32 (not Shape, Gather...)
_COMPUTE = {"Conv", "ConvTranspose", "Gemm", "MatMul", "Add", "Mul", "Concat", "Resize", "AveragePool", "MaxPool"}


@dataclass(frozen=True)
class Int8Options:
    """How :func:`quantize_graph` quantises and gates: ``calib_images`` images calibrate the activation ranges
    by ``calib_method`` (auto, percentile, entropy, minmax); the val mIoU may drop at most ``max_drop`` points;
    up to ``keep_fp32`` of the most sensitive nodes are left in fp32 to make it fit (0: none)."""

    calib_images: int = DEFAULT_CALIB_IMAGES
    calib_method: str = "auto"
    max_drop: float = DEFAULT_MAX_DROP
    keep_fp32: int = 0


def check_int8_options(opts: Int8Options) -> None:
    """Every option checked before anything is exported."""
    if opts.calib_images < 1:
        raise UserError(f"{arg('calib_images')} {opts.calib_images}: give 1 or more")
    if opts.calib_method not in CALIB_METHODS:
        raise UserError(f"{arg('calib_method')} {opts.calib_method}: choose one of {', '.join(CALIB_METHODS)}")
    if not opts.max_drop >= 0:
        raise UserError(f"{arg('max_drop')} {opts.max_drop}: give mIoU points >= 0, e.g. {arg('max_drop')} 1.0")
    if opts.keep_fp32 < 0:
        raise UserError(f"{arg('keep_fp32')} {opts.keep_fp32}: give a number of nodes >= 0")


@dataclass
class Quantized:
    """The int8 graph (ONNX bytes, or an ``openvino.Model``), how to run it, and the gate's report."""

    payload: Any
    runner: Callable[[torch.Tensor], torch.Tensor]
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return bool(self.report["passed"])


# ---------------------------------------------------------------------------------------------- data
def _split(root: Path, preferred: list[str]) -> str:
    have = list_splits(root)
    for s in preferred:
        if s in have:
            return s
    if not have:
        raise UserError(f"{arg('data_root')} {root}: no split to calibrate and gate the int8 export on")
    return have[0]


def graph_inputs(ds: EvalDataset, info: ExportInfo, num_classes: int, count: int) -> list[np.ndarray]:
    """``count`` images of ``ds`` (evenly spaced) as the graph receives them under the eval protocol: resized
    by the dataset, padded to the input multiple, resized to a fixed-size graph's size, in the graph's layout."""
    seen: list[np.ndarray] = []

    def record(g: torch.Tensor) -> torch.Tensor:
        seen.append(g.numpy().copy())
        hw = tuple(g.shape[1:3]) if info.layout == "uint8-nhwc" else tuple(g.shape[2:])
        if info.bake == "argmax":
            return torch.zeros((g.shape[0], *hw), dtype=torch.int64)
        return torch.zeros((g.shape[0], num_classes, *hw))

    recorder = ExportedModel(record, info, num_classes)
    step = max(1, len(ds) // count)
    for i in list(range(0, len(ds), step))[:count]:
        forward_padded(recorder, ds[i][0][None].float(), PredictionProtocol(), info.input_multiple)
    return seen


def _reader(inputs: list[np.ndarray], name: str) -> Any:
    """An onnxruntime CalibrationDataReader over ``inputs`` (with the range the strided calibration sets)."""
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.start, self.end, self.pos = 0, len(inputs), 0

        def __len__(self) -> int:
            return len(inputs)

        def set_range(self, start_index: int, end_index: int) -> None:
            self.start, self.end, self.pos = start_index, end_index, start_index

        def get_next(self) -> dict[str, np.ndarray] | None:
            if self.pos >= self.end:
                return None
            self.pos += 1
            return {name: inputs[self.pos - 1]}

    return Reader()


def split_confusion(model: torch.nn.Module, ds: EvalDataset, meta: CheckpointMeta) -> ConfusionMatrix:
    """The confusion matrix of ``model`` over ``ds`` by the preset's plain forward pass (as the export gate runs)."""
    loader = DataLoader(ds, batch_size=1, shuffle=False, num_workers=0, collate_fn=eval_collate)
    cm = ConfusionMatrix(meta.num_classes, ds.info.ignore_index)
    return confusion_with(model, loader, cm, eval_resize(meta.preset))


# ---------------------------------------------------------------------------------------------- quantising
@contextlib.contextmanager
def _quiet_ort() -> Iterator[None]:
    """onnxruntime's quantiser logs advice and prints its progress on every call: not the user's business."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)


def _prepared(fp32: bytes, folder: Path) -> Path:
    """The fp32 graph written for the quantiser, after onnxruntime's pre-processing (shape inference and graph
    optimisation) where that succeeds."""
    raw, pre = folder / "fp32.onnx", folder / "fp32.pre.onnx"
    raw.write_bytes(fp32)
    try:
        from onnxruntime.quantization.shape_inference import quant_pre_process

        with _quiet_ort():
            quant_pre_process(str(raw), str(pre))
        return pre
    except Exception:  # noqa: BLE001 - pre-processing is an optimisation: quantise the graph as it is
        return raw


def _stride(n: int) -> int:
    """The largest divisor of ``n`` up to :data:`_CHUNK` (the strided calibration needs one)."""
    return max(d for d in range(1, min(n, _CHUNK) + 1) if n % d == 0)


def quantize_once(model: Path, out: Path, inputs: list[np.ndarray], method: str, exclude: list[str]) -> bytes:
    """One onnxruntime static quantisation (QDQ, per-channel int8 weights, uint8 activations) of ``model``, the
    ranges cached beside ``out`` per method (so excluding nodes does not calibrate again)."""
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    cal = {"percentile": CalibrationMethod.Percentile, "entropy": CalibrationMethod.Entropy}
    name = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).get_inputs()[0].name
    with _quiet_ort():
        quantize_static(
            str(model),
            str(out),
            _reader(inputs, name),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=cal.get(method, CalibrationMethod.MinMax),
            nodes_to_exclude=list(exclude),
            extra_options={"CalibTensorRangeSymmetric": False, "CalibStridedMinMax": _stride(len(inputs))},
            calibration_cache_path=str(out.parent / f"ranges.{method}.json"),
        )
    return out.read_bytes()


def sensitive_nodes(fp32: Path, int8: Path, inputs: list[np.ndarray]) -> list[str]:
    """The quantisable nodes of ``fp32``, most sensitive first: the consumers of each activation whose QDQ pair
    in ``int8`` loses most signal (lowest SQNR, onnxruntime's ``qdq_loss_debug``)."""
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization.qdq_loss_debug import (
        collect_activations,
        compute_signal_to_quantization_noice_ratio,
        create_activation_matching,
        modify_model_output_intermediate_tensors,
    )

    augmented = int8.with_name("int8.debug.onnx")
    with _quiet_ort():
        modify_model_output_intermediate_tensors(str(int8), str(augmented))
        name = ort.InferenceSession(str(int8), providers=["CPUExecutionProvider"]).get_inputs()[0].name
        acts = collect_activations(str(augmented), _reader(inputs[:_SENSITIVITY_IMAGES], name))
        matched = create_activation_matching(acts)
    sqnr = {t: compute_signal_to_quantization_noice_ratio(m["pre_qdq"], m["post_qdq"]) for t, m in matched.items()}
    ranked = sorted((v, t) for t, v in sqnr.items() if np.isfinite(v))
    graph = onnx.load(str(fp32)).graph
    order: list[str] = []
    for _, tensor in ranked:
        for node in graph.node:
            if tensor in node.input and node.op_type in _COMPUTE and node.name and node.name not in order:
                order.append(node.name)
    return order


# ---------------------------------------------------------------------------------------------- the gate
def _scores(cm: ConfusionMatrix, classes: tuple[str, ...]) -> tuple[float, list[float]]:
    m = cm.compute("nan", classes)
    return m["mIoU"], [c["iou"] for c in m["per_class"]]


def _judge(fp32: tuple[float, list[float]], int8: tuple[float, list[float]], classes: tuple[str, ...]) -> dict:
    """The drop in mIoU points and per class, the classes that lose most first."""
    per_class = {
        c: {"fp32": a, "int8": b, "drop": 100 * (a - b) if a == a and b == b else None}
        for c, a, b in zip(classes, fp32[1], int8[1])
    }
    worst = sorted((v["drop"], c) for c, v in per_class.items() if v["drop"] is not None and v["drop"] > 0)
    return {
        "int8_mIoU": int8[0],
        "drop": 100 * (fp32[0] - int8[0]),
        "per_class": per_class,
        "worst_classes": [c for _, c in reversed(worst)][:3],
    }


def _methods(method: str) -> list[str]:
    return ["percentile", "entropy"] if method == "auto" else [method]


@dataclass
class GateData:
    """What every int8 quantiser is calibrated and gated on: the calibration inputs (as the graph receives them
    under the eval protocol), the val split, and the fp32 graph's scores on it."""

    inputs: list[np.ndarray]
    val_ds: EvalDataset
    ref: tuple[float, list[float]]
    calib_split: str
    val_split: str


def gate_data(
    fp32: Callable[[torch.Tensor], torch.Tensor],
    info: ExportInfo,
    meta: CheckpointMeta,
    data_root: str | os.PathLike,
    calib_images: int,
) -> GateData:
    """The run's dataset read for calibration (the train split, evenly spaced) and the gate (the val split,
    scored through the fp32 graph ``fp32``, a runner on the graph's own input layout)."""
    root = Path(data_root)
    if not (root / "dataset.toml").is_file():
        raise UserError(f"{arg('data_root')} {root}: int8 export calibrates and gates on the run's dataset; give it")
    pre = meta.preset
    proto = eval_resize(pre)
    calib_split = _split(root, [pre.data.train_split, pre.data.val_split])
    val_split = _split(root, [pre.data.val_split])
    calib_ds = EvalDataset(root, calib_split, proto.size, proto.keep_ratio, pre.data.channels)
    val_ds = EvalDataset(root, val_split, proto.size, proto.keep_ratio, pre.data.channels)
    if list(val_ds.info.classes) != list(meta.classes):
        raise DataError(f"{root}: dataset classes differ from the model's; int8 calibrates on its own training data")
    inputs = graph_inputs(calib_ds, info, meta.num_classes, calib_images)
    ref = _scores(split_confusion(ExportedModel(fp32, info, meta.num_classes), val_ds, meta), meta.classes)
    return GateData(inputs, val_ds, ref, calib_split, val_split)


def judge(
    runner: Callable[[torch.Tensor], torch.Tensor], info: ExportInfo, meta: CheckpointMeta, data: GateData
) -> dict[str, Any]:
    """One int8 graph (``runner``) scored on the val split against the fp32 graph's scores: its drop."""
    got = _scores(split_confusion(ExportedModel(runner, info, meta.num_classes), data.val_ds, meta), meta.classes)
    return _judge(data.ref, got, meta.classes)


def gate_report(
    best: dict[str, Any], tried: list[dict[str, Any]], data: GateData, max_drop: float, keep_hint: bool = True
) -> dict[str, Any]:
    """The gate's report of the attempt kept (``best``) among ``tried``: passed when its drop is within
    ``max_drop`` points, else the refusal naming the classes that lose most (and ``keep_fp32`` when
    ``keep_hint``: the quantiser can keep nodes in fp32)."""
    report = {
        **best,
        "fp32_mIoU": data.ref[0],
        "max_drop": max_drop,
        "calib_images": len(data.inputs),
        "calib_split": data.calib_split,
        "val_split": data.val_split,
        "val_images": len(data.val_ds),
        "tried": [{k: t[k] for k in ("method", "kept_fp32", "int8_mIoU", "drop")} for t in tried],
    }
    report["failures"] = [] if report["drop"] <= max_drop else [_refusal(report, keep_hint)]
    report["passed"] = not report["failures"]
    return report


def quantize_graph(
    fp32: bytes, info: ExportInfo, meta: CheckpointMeta, data_root: str | os.PathLike, opts: Int8Options
) -> Quantized:
    """The int8 graph of the exported fp32 graph ``fp32``, calibrated on ``data_root`` and gated on its val
    split (see the module's docstring); the report says what was tried and why it passed or failed."""
    data = gate_data(OnnxRunner(fp32, torch.device("cpu")), info, meta, data_root, opts.calib_images)
    with tempfile.TemporaryDirectory(prefix="segcli-int8-") as tmp:
        model = _prepared(fp32, Path(tmp))

        def attempt(method: str, exclude: list[str]) -> tuple[bytes, dict]:
            q = quantize_once(model, Path(tmp) / f"int8.{method}.onnx", data.inputs, method, exclude)
            got = judge(OnnxRunner(q, torch.device("cpu")), info, meta, data)
            return q, {"method": method, "kept_fp32": list(exclude), **got}

        tried = [attempt(m, []) for m in _methods(opts.calib_method)[:1]]
        if tried[0][1]["drop"] > opts.max_drop and opts.calib_method == "auto":
            tried.append(attempt("entropy", []))
        best = min(tried, key=lambda t: t[1]["drop"])
        if best[1]["drop"] > opts.max_drop and opts.keep_fp32 > 0:
            method = best[1]["method"]
            order = sensitive_nodes(model, Path(tmp) / f"int8.{method}.onnx", data.inputs)
            n = 1
            while best[1]["drop"] > opts.max_drop and n <= min(opts.keep_fp32, len(order)):
                tried.append(attempt(method, order[:n]))
                best = min(tried, key=lambda t: t[1]["drop"])
                n *= 2
    report = gate_report(best[1], [t[1] for t in tried], data, opts.max_drop)
    report["scheme"] = "QDQ, per-channel weights"
    return Quantized(best[0], OnnxRunner(best[0], torch.device("cpu")), report)


def _refusal(report: dict[str, Any], keep_hint: bool = True) -> str:
    worst = ", ".join(
        f"{c} {report['per_class'][c]['fp32']:.3f} -> {report['per_class'][c]['int8']:.3f}"
        for c in report["worst_classes"]
    )
    return (
        f"int8 val mIoU {report['int8_mIoU']:.4f} is {report['drop']:.2f} points below fp32's "
        f"{report['fp32_mIoU']:.4f} (at most {arg('max_drop')} {report['max_drop']:g})"
        + (f"; worst classes: {worst}" if worst else "")
        + (
            f"; try {arg('keep_fp32')} 8 to keep the most sensitive nodes in fp32"
            if keep_hint and not report["kept_fp32"]
            else ""
        )
    )
