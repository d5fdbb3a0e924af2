"""`seg export`: a checkpoint → a self-describing ONNX, OpenVINO or TorchScript model, verified against PyTorch.

1. **Pre-flight.** Layers that cannot take a symbolic height and width (adaptive pooling to more than one
   bin, as in PSPNet's pyramid pooling) are named; so is a dynamic export that fails, or one whose output at
   a second size differs from PyTorch's. Those models are exported at a fixed size (``eval.size``, else the
   training crop) and the reason goes into the report; the rest get dynamic batch, height and width.
2. **Export.** The graph takes RGB in [0, 255] (float NCHW, or uint8 NHWC with the conversion and the
   normalisation inside), returns logits, softmax probabilities or argmax ids (``bake``), and carries the
   checkpoint's metadata (classes, palette, mean/std, ignore_index, the preset with its test-time resize
   rule) plus how to call it (:class:`segcli.infer.backends.ExportInfo`), so `seg infer model.onnx` and
   `seg eval model.onnx` need nothing else. An OpenVINO model is the verified ONNX graph converted by
   OpenVINO (:mod:`segcli.infer.openvino_graph`), its metadata in ``rt_info``, and goes through the same gate.
3. **Parity gate.** The exported graph (onnxruntime, or the TorchScript module) and PyTorch eager run the same
   padded inputs: real images from ``images`` or the run's dataset (generated ones otherwise, with a
   warning) at the test-time size and at a second size not divisible by 32. Past the thresholds
   (:data:`MIN_AGREEMENT`, :func:`logit_bound`) the export fails; the report is written beside it either way.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from segcli import __version__
from segcli.core.checkpoint import TEMPERATURE_KEY, build_from_weights, read_metadata
from segcli.core.rundir import resolve_weights, run_of_weights
from segcli.core.runtime import select_device
from segcli.data.datasets import image_to_tensor
from segcli.data.transforms import inference_size, resize_pair
from segcli.errors import ExportError, UserError, arg
from segcli.infer.backends import (
    BAKES,
    EXPORT_FORMAT,
    LAYOUTS,
    ONNX_SUFFIXES,
    OPENVINO_SUFFIXES,
    TORCHSCRIPT_SUFFIXES,
    ExportedModel,
    ExportInfo,
    OnnxRunner,
    OpenVinoRunner,
    require_onnx,
    require_openvino,
    to_graph_input,
)
from segcli.infer.openvino_graph import (
    check_openvino_int8,
    convert_onnx,
    quantize_openvino,
    require_nncf,
    write_openvino,
)
from segcli.infer.predict_core import forward_padded, input_multiple
from segcli.infer.protocol import PredictionProtocol, eval_resize
from segcli.infer.quantize import Int8Options, check_int8_options, quantize_graph
from segcli.io_utils import atomic_write_text, require_folder, write_temp
from segcli.metrics import ConfusionMatrix

FORMATS = ("onnx", "openvino", "torchscript")
SUFFIXES = {"onnx": ONNX_SUFFIXES, "openvino": OPENVINO_SUFFIXES, "torchscript": TORCHSCRIPT_SUFFIXES}
DEFAULT_OPSET = 18
# The gate: argmax agreement at least this, and max |logit difference| within logit_bound(...).
MIN_AGREEMENT = {False: 0.999, True: 0.995}  # fp32, fp16
PROB_BOUND = {False: 1e-4, True: 5e-3}  # softmax-baked graphs: max |probability difference|
PARITY_IMAGES = 4
_GENERATED = 3


def logit_bound(max_abs_logit: float, half: bool = False) -> float:
    """The largest max |logit difference| the gate accepts: 1e-4 x max(1, max |logit|) in fp32
    (float rounding grows with the size of the values), 1e-2 x that in fp16."""
    return (1e-2 if half else 1e-4) * max(1.0, max_abs_logit)


PRIOR_EXPORT = (
    'a model with model.prior = "mask" cannot be exported yet (its graph would need the previous frame\'s mask as '
    "an input channel); predict with its .safetensors weights, which feed it frame to frame"
)


class ExportWrapper(nn.Module):
    """What is exported: the network with its normalisation, the input layout and the baked output.

    Normalisation is done here rather than by the Segmenter so that fp16 graphs stay fp16 throughout.
    """

    def __init__(
        self,
        model: nn.Module,
        layout: str = "float-nchw",
        bake: str = "none",
        half: bool = False,
        temperature: tuple[float, ...] = (),
    ) -> None:
        super().__init__()
        if getattr(model, "prior", False):  # its graph would take the previous frame's mask: not done yet
            raise UserError(PRIOR_EXPORT)
        self.net = model.net
        self.register_buffer("mean", model.mean.clone())
        self.register_buffer("std", model.std.clone())
        self.layout, self.bake, self.half = layout, bake, half
        # a calibrated checkpoint's temperature (`seg calibrate`) is part of the graph: its logits, softmax and
        # argmax are the calibrated ones, and its metadata says so (``temperature_in_graph``)
        t = torch.tensor(temperature or (1.0,), dtype=torch.float32)
        self.register_buffer("temperature", t.view(1, -1, 1, 1) if t.numel() > 1 else t.view(()))
        self.scaled = bool(temperature)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.layout == "uint8-nhwc":
            x = x.permute(0, 3, 1, 2)
        # casts only where the dtype changes: a float-to-float Cast stays in the graph (onnxruntime keeps the
        # one that produces the output: 4 ms of a 512x1024 FPN-R18's 127 on this CPU)
        x = (x if x.dtype == self.mean.dtype else x.to(self.mean.dtype)) - self.mean
        logits = self.net(x / self.std)
        if self.scaled:
            logits = logits / self.temperature.to(logits.dtype)
        if self.bake == "argmax":
            return logits.argmax(1)
        if logits.dtype != torch.float32:
            logits = logits.float()
        return logits.softmax(1) if self.bake == "softmax" else logits


# ---------------------------------------------------------------------------------------------- pre-flight
def dynamic_blockers(model: nn.Module) -> list[str]:
    """Layers that cannot take a symbolic height and width: adaptive pooling to more than one bin (the
    ONNX operator needs the input size to be a known multiple of the bins)."""
    found = []
    for name, m in model.named_modules():
        if isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
            size = m.output_size if isinstance(m.output_size, tuple) else (m.output_size, m.output_size)
            if any(s is not None and s != 1 for s in size):
                found.append(f"{name} ({type(m).__name__}(output_size={m.output_size}))")
    return found


def fixed_export_size(preset: Any, multiple: int, size: tuple[int, int] | None = None) -> tuple[int, int]:
    """The size of a fixed-size export: ``size``, else ``eval.size``, else the training crop; rounded up to
    the model's input multiple."""
    hw = size or (tuple(preset.eval.size) if preset.eval.size else tuple(preset.augment.crop_size))
    return tuple(int(math.ceil(v / multiple) * multiple) for v in hw)  # type: ignore[return-value]


def _second_size(h: int, w: int, multiple: int) -> tuple[int, int]:
    """A size different from (h, w) whose padded size differs too (a quick dynamic-shape check)."""
    return h + multiple, w + 2 * multiple


@contextlib.contextmanager
def strict_fp32() -> Any:
    """TF32 off for cuDNN convolutions and CUDA matmuls (PyTorch allows it in convolutions by default), so CUDA
    eager is a true fp32 reference: with TF32 an fp32 graph differs from it by ~1e-3 of the logits' range, past
    the gate's fp32 bound, and the gate would judge the GPU's rounding rather than the export."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@contextlib.contextmanager
def _quiet() -> Any:
    """Exporters print deprecation notes and tracer warnings on every call: not the user's business."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sink = io.StringIO()
        with contextlib.redirect_stdout(sink):
            yield


def _first_line(e: BaseException) -> str:
    return f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:240]}"


def _failing_layer(e: BaseException, wrapper: nn.Module) -> str:
    """The innermost layer of ``wrapper`` on the traceback of ``e`` ("" when none): what blocked the export."""
    names = {id(m): n for n, m in wrapper.net.named_modules() if n}
    tb, found = e.__traceback__, ""
    while tb is not None:
        owner = tb.tb_frame.f_locals.get("self")
        if id(owner) in names:
            found = f"{names[id(owner)]} ({type(owner).__name__})"
        tb = tb.tb_next
    return found


# ---------------------------------------------------------------------------------------------- exporting
def _onnx_bytes(wrapper: ExportWrapper, sample: torch.Tensor, opset: int, dynamic: bool, dynamic_batch: bool) -> bytes:
    """The ONNX graph of ``wrapper`` traced on ``sample``: TorchScript-based export for dynamic sizes
    (symbolic H/W), torch.export (which decomposes adaptive pooling at a known size) for fixed ones."""
    buf = io.BytesIO()
    out_name = {"none": "logits", "softmax": "probs", "argmax": "ids"}[wrapper.bake]
    h_axis, w_axis = (1, 2) if wrapper.layout == "uint8-nhwc" else (2, 3)
    with _quiet(), torch.no_grad():
        if dynamic:
            axes_in = {0: "batch", h_axis: "height", w_axis: "width"}
            axes_out = {0: "batch", wrapper_out_axis(wrapper, 2): "height", wrapper_out_axis(wrapper, 3): "width"}
            torch.onnx.export(
                wrapper,
                (sample,),
                buf,
                dynamo=False,
                opset_version=opset,
                input_names=["image"],
                output_names=[out_name],
                dynamic_axes={"image": axes_in, out_name: axes_out},
            )
            return buf.getvalue()
        shapes = {"x": {0: torch.export.Dim("batch", min=1, max=1024)}} if dynamic_batch else None
        prog = torch.onnx.export(
            wrapper,
            (sample,),
            dynamo=True,
            opset_version=opset,
            input_names=["image"],
            output_names=[out_name],
            dynamic_shapes=shapes,
            verbose=False,
            optimize=True,
        )
        return prog.model_proto.SerializeToString()


def wrapper_out_axis(wrapper: ExportWrapper, nchw_axis: int) -> int:
    """The output axis of NCHW axis 2/3: ids (argmax) have no class axis."""
    return nchw_axis - 1 if wrapper.bake == "argmax" else nchw_axis


def _sample(
    wrapper: ExportWrapper, size: tuple[int, int], batch: int, device: torch.device, half: bool
) -> torch.Tensor:
    """A random input batch of the wrapper's channel count (``data.channels``) in its layout."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (batch, int(wrapper.mean.shape[1]), *size), generator=g).float()
    return to_graph_input(x, wrapper.layout, half).to(device)


@dataclass
class Built:
    """One exported graph before it is written: its runner, how it is called, and what the pre-flight said."""

    runner: Callable[[torch.Tensor], torch.Tensor]
    info: ExportInfo
    payload: Any  # ONNX bytes or the traced TorchScript module
    reason: str = ""  # why it is fixed-size ("" when dynamic)
    blockers: list[str] = field(default_factory=list)


def _quick_check(runner: Callable, wrapper: ExportWrapper, size: tuple[int, int], half: bool, dev: torch.device) -> str:
    """ "" when ``runner`` matches eager at ``size`` (batch 2), else what differs."""
    x = _sample(wrapper, size, 2, dev, half)
    try:
        with torch.no_grad():
            ref = wrapper(x).cpu()
        got = runner(x).cpu()
    except Exception as e:  # noqa: BLE001 - a graph that cannot run at another size is not dynamic
        return f"running it at {size[0]}x{size[1]} failed ({_first_line(e)})"
    if got.shape != ref.shape:
        return f"at {size[0]}x{size[1]} it returned shape {tuple(got.shape)} instead of {tuple(ref.shape)}"
    if wrapper.bake == "argmax":
        agree = float((got == ref).float().mean())
    else:
        agree = float((got.argmax(1) == ref.argmax(1)).float().mean())
    if agree < MIN_AGREEMENT[half]:
        return f"at {size[0]}x{size[1]} its argmax agrees with PyTorch on only {agree:.2%} of pixels"
    return ""


def build_graph(
    wrapper: ExportWrapper,
    fmt: str,
    *,
    opset: int,
    multiple: int,
    fixed_size: tuple[int, int],
    dev: torch.device,
    force_fixed: bool = False,
    run_dev: torch.device | None = None,
) -> Built:
    """Pre-flight, then the dynamic graph when the model allows one, else the fixed-size graph (fp16 when the
    wrapper is).

    ``run_dev``: where onnxruntime runs the graph (default ``dev``; the CPU when it has no CUDA provider).
    """
    run_dev, half = run_dev or dev, wrapper.half
    blockers = dynamic_blockers(wrapper.net) if fmt == "onnx" else []  # TorchScript runs adaptive pooling as is
    # traced at a size where no feature map is down to one pixel (a Python branch taken there, such as "no
    # resize needed", would be frozen into the graph), and not square (height and width kept apart)
    sample_size = tuple(-(-max(v, lo) // multiple) * multiple for v, lo in zip(fixed_size, (256, 320)))
    reason = ""
    if force_fixed:
        reason = f"fixed size asked for ({arg('fixed')})"
    elif blockers:
        reason = f"{blockers[0]} needs a known input size" + (
            f" (and {len(blockers) - 1} more)" if len(blockers) > 1 else ""
        )
    else:
        try:
            built = _build_one(wrapper, fmt, opset, sample_size, dev, dynamic=True, multiple=multiple, run_dev=run_dev)
            problem = _quick_check(built.runner, wrapper, _second_size(*sample_size, multiple), half, dev)
            if not problem:
                return built
            reason = f"the dynamic {fmt} export differs from PyTorch: {problem}"
        except Exception as e:  # noqa: BLE001 - any exporter failure: fall back to a fixed size, saying why
            layer = _failing_layer(e, wrapper)
            where = f" in {layer}" if layer else ""
            reason = f"the dynamic {fmt} export failed{where} ({_first_line(e)})"
    try:
        built = _build_one(wrapper, fmt, opset, fixed_size, dev, dynamic=False, multiple=multiple, run_dev=run_dev)
    except Exception as e:  # noqa: BLE001
        raise ExportError(
            f"{fmt} export failed at the fixed size {fixed_size[0]}x{fixed_size[1]} ({_first_line(e)}); "
            f"before that: {reason}"
        ) from None
    built.reason, built.blockers = reason, blockers
    return built


def _build_one(
    wrapper: ExportWrapper,
    fmt: str,
    opset: int,
    size: tuple[int, int],
    dev: torch.device,
    *,
    dynamic: bool,
    multiple: int,
    run_dev: torch.device,
) -> Built:
    half = wrapper.half
    info = ExportInfo(
        layout=wrapper.layout,
        bake=wrapper.bake,
        dynamic=dynamic,
        fixed_size=None if dynamic else (int(size[0]), int(size[1])),
        dynamic_batch=True,
        input_multiple=multiple,
        half=half,
        opset=opset if fmt == "onnx" else 0,
        segcli_version=__version__,
    )
    if fmt == "onnx":
        sample = _sample(wrapper, size, 1, dev, half)
        try:
            data = _onnx_bytes(wrapper, sample, opset, dynamic, dynamic_batch=True)
        except Exception:
            if dynamic:
                raise
            data = _onnx_bytes(wrapper, sample, opset, dynamic, dynamic_batch=False)  # batch 1 only
            info = replace(info, dynamic_batch=False)
        return Built(OnnxRunner(data, run_dev), info, data)
    sample = _sample(wrapper, size, 1, dev, half)
    with _quiet(), torch.no_grad():  # torch.jit is deprecated upstream, and says so on every call
        traced = torch.jit.freeze(torch.jit.trace(wrapper, (sample,), check_trace=False).eval())

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return traced(x.to(dev))

    return Built(run, info, traced)


# ---------------------------------------------------------------------------------------------- parity
@dataclass
class Sample:
    name: str
    image: np.ndarray  # RGB uint8 (H, W, 3), or (H, W, data.channels) as read_image gives it, at its own size
    mask: np.ndarray | None  # class ids (H, W) or None


def parity_samples(
    images: str | os.PathLike | None, data_root: str | os.PathLike | None, limit: int, channels: int = 3
) -> tuple[list[Sample], str, str]:
    """(samples, where they come from, warning): ``images`` (a folder), else the dataset's val split (any
    split when it has none), else generated images with a warning; ``channels`` per image (the model's
    ``data.channels``: an image with another count is one line naming it)."""
    from segcli.data.format import extra_channel_files, read_dataset_info
    from segcli.data.io import list_images, read_image, read_mask

    if images is not None:
        folder = Path(images)
        if not folder.is_dir():
            raise UserError(f"{arg('images')} {folder}: not a folder of images")
        paths = list_images(folder)[:limit]
        if not paths:
            raise UserError(f"{arg('images')} {folder}: the folder has no images")
        return [Sample(p.name, read_image(p, channels), None) for p in paths], str(folder), ""
    if data_root is not None and (Path(data_root) / "dataset.toml").is_file():
        from segcli.data.format import list_samples, list_splits

        splits = list_splits(data_root)
        for split in ["val", *[s for s in splits if s != "val"]]:
            if split not in splits:
                continue
            pairs = list_samples(data_root, split)
            info = read_dataset_info(data_root)
            if pairs:
                step = max(1, len(pairs) // limit)
                chosen = pairs[::step][:limit]
                return (
                    [
                        Sample(i.name, read_image(i, channels, extra_channel_files(i, info)), read_mask(m))
                        for i, m in chosen
                    ],
                    f"{data_root} ({split} split)",
                    "",
                )
    import cv2

    rng = np.random.default_rng(0)
    out = []
    for i in range(_GENERATED):  # smooth colour fields: spatial structure, unlike white noise
        low = rng.integers(0, 256, (6, 8, channels)).astype(np.float32)
        img = cv2.resize(low, (320, 240), interpolation=cv2.INTER_CUBIC).reshape(240, 320, channels)
        out.append(Sample(f"generated-{i}", np.clip(img, 0, 255).astype(np.uint8), None))
    where = f"dataset {data_root} not found" if data_root else "no dataset"
    return out, "generated", f"parity checked on generated images ({where}); pass {arg('images')} DIR for real ones"


def parity_sizes(h: int, w: int, proto: PredictionProtocol) -> list[tuple[int, int]]:
    """The test-time size of an image (the protocol's resize) and a smaller one not divisible by 32."""
    th, tw = inference_size(h, w, proto.size, proto.keep_ratio)
    sh, sw = max(8, round(th * 0.75)), max(8, round(tw * 0.75))
    sh += 7 if sh % 32 == 0 else 0
    sw += 7 if sw % 32 == 0 else 0
    return [(th, tw), (sh, sw)]


def run_parity(
    exported: ExportedModel, eager: ExportedModel, samples: list[Sample], proto: PredictionProtocol, ignore_index: int
) -> dict[str, Any]:
    """Exported vs eager on every sample at every parity size (the resize of ``proto``), through the forward
    pass of ``proto``, padded as the predict core pads."""
    bake, half, num_classes = exported.info.bake, exported.info.half, exported.num_classes
    rows = []
    max_diff, max_logit, agree_px, total_px = 0.0, 0.0, 0, 0
    cms = {"eager": ConfusionMatrix(num_classes, ignore_index), "exported": ConfusionMatrix(num_classes, ignore_index)}
    has_masks = any(s.mask is not None for s in samples)
    dev = torch.device("cpu")
    for s in samples:
        for size in parity_sizes(*s.image.shape[:2], proto):
            image, mask = (s.image, s.mask) if s.image.shape[:2] == size else resize_pair(s.image, s.mask, size)
            x = image_to_tensor(image)[None].float()  # resized as eval and infer resize
            a = forward_padded(exported, x, proto, exported.input_multiple)
            b = forward_padded(eager, x, proto, eager.input_multiple)
            pa, pb = a.argmax(1)[0], b.argmax(1)[0]
            agree = int((pa == pb).sum())
            if bake == "none":
                diff, mag = float((a - b).abs().max()), float(b.abs().max())
            elif bake == "softmax":
                diff, mag = float((a.softmax(1) - b.softmax(1)).abs().max()), 1.0
            else:
                diff, mag = float("nan"), float("nan")
            row = {"image": s.name, "size": list(size), "max_abs_diff": diff, "agreement": agree / pa.numel()}
            if mask is not None:
                gt = torch.from_numpy(mask.astype(np.int64))
                cms["exported"].update(pa.to(dev), gt)
                cms["eager"].update(pb.to(dev), gt)
            rows.append(row)
            agree_px += agree
            total_px += pa.numel()
            if diff == diff:
                max_diff, max_logit = max(max_diff, diff), max(max_logit, mag)
    agreement = agree_px / max(1, total_px)
    if bake == "none":
        bound = logit_bound(max_logit, half)
    elif bake == "softmax":
        bound = PROB_BOUND[half]
    else:
        bound = float("nan")
    failures = []
    if agreement < MIN_AGREEMENT[half]:
        failures.append(f"argmax agreement {agreement:.4%} < {MIN_AGREEMENT[half]:.1%}")
    if bound == bound and max_diff > bound:
        what = "probability" if bake == "softmax" else "logit"
        failures.append(f"max |{what} difference| {max_diff:.3g} > bound {bound:.3g}")
    report: dict[str, Any] = {
        "passed": not failures,
        "failures": failures,
        "compared": "probabilities" if bake == "softmax" else "class ids" if bake == "argmax" else "logits",
        "max_abs_diff": max_diff if bake != "argmax" else None,
        "bound": bound if bound == bound else None,
        "max_abs_eager": max_logit if bake == "none" else None,
        "agreement": agreement,
        "min_agreement": MIN_AGREEMENT[half],
        "pixels": total_px,
        "sizes": sorted({tuple(r["size"]) for r in rows}),
        "rows": rows,
    }
    if has_masks:
        report["mIoU"] = {k: cm.compute("nan")["mIoU"] for k, cm in cms.items()}
    return report


# ---------------------------------------------------------------------------------------------- the command
@dataclass
class ExportResult:
    path: Path
    report_json: Path
    report_text: Path
    format: str
    info: ExportInfo
    reason: str
    parity: dict[str, Any]
    source: str
    warning: str
    seconds: float

    @property
    def passed(self) -> bool:
        return bool(self.parity["passed"])

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": str(self.path),
            "format": self.format,
            "mode": "dynamic" if self.info.dynamic else "fixed",
            "fixed_size": list(self.info.fixed_size) if self.info.fixed_size else None,
            "why_fixed": self.reason or None,
            "export": asdict(self.info),
            "parity_images": self.source,
            "warning": self.warning or None,
            "parity": self.parity,
            "report": str(self.report_json),
            "seconds": round(self.seconds, 3),
        }


def default_out(weights: Path, fmt: str, int8: bool = False) -> Path:
    """``<run>/export/model.onnx`` (``model.int8.onnx``, ``model.xml``, ``model.int8.xml``) for a run's weights,
    else beside the weights file."""
    suffix = (".int8" if int8 else "") + SUFFIXES[fmt][0]
    run = run_of_weights(weights)
    if run is not None:
        return run.export_dir / f"model{suffix}"
    return weights.with_suffix(suffix)


def report_paths(model_path: Path) -> tuple[Path, Path]:
    """``model.onnx.parity.json`` and ``model.onnx.parity.txt`` beside the model."""
    return model_path.with_name(model_path.name + ".parity.json"), model_path.with_name(model_path.name + ".parity.txt")


def rejected_path(model_path: Path) -> Path:
    """Where a model that failed the gate is kept for inspection: ``model.rejected.onnx``."""
    return model_path.with_name(f"{model_path.stem}.rejected{model_path.suffix}")


@dataclass(frozen=True)
class ExportOptions:
    """How :func:`export_model` builds and verifies the graph.

    ``opset``: the ONNX opset; ``bake``: what the graph returns (none: logits, softmax: probabilities, argmax:
    class ids); ``half``: fp16 weights and arithmetic (built and verified on CUDA only); ``layout``: what it takes
    (float-nchw: RGB 0-255; uint8-nhwc: the conversion and normalisation inside); ``images`` (a folder) or
    ``data_root`` (a dataset, default the preset's ``data.root``): the parity check's images, ``parity_images`` of
    them; ``size``: the size of a fixed-size export (default ``eval.size``, else the training crop); ``fixed``: a
    fixed size even where the model allows dynamic; ``overwrite``: replace an existing model and its report;
    ``int8``: quantise the verified fp32 graph to int8, gated on the val split's mIoU (ONNX: onnxruntime's
    quantiser, :mod:`segcli.infer.quantize`; OpenVINO: NNCF, :mod:`segcli.infer.openvino_graph`).
    """

    opset: int = DEFAULT_OPSET
    bake: str = "none"
    half: bool = False
    layout: str = "float-nchw"
    images: str | os.PathLike | None = None
    data_root: str | os.PathLike | None = None
    parity_images: int = PARITY_IMAGES
    size: tuple[int, int] | None = None
    fixed: bool = False
    overwrite: bool = False
    int8: Int8Options | None = None


def export_model(
    weights_or_run: str | os.PathLike,
    fmt: str = "onnx",
    out: str | os.PathLike | None = None,
    device: str = "auto",
    options: ExportOptions | None = None,
) -> ExportResult:
    """Export a checkpoint (or a run's best weights) and verify it; the report is written beside the model.

    Raises ExportError (exit 1) when the export fails or its parity with PyTorch is past the thresholds; the
    model is then kept as ``model.rejected.onnx`` for inspection.
    """
    t0 = time.perf_counter()
    opts = options or ExportOptions()
    _check_options(fmt, opts)
    weights = resolve_weights(weights_or_run)
    if weights.suffix.lower() != ".safetensors":
        raise UserError(f"{weights}: export takes segcli .safetensors weights or a run directory")
    dev = select_device(device, option=arg("device"))
    run_dev, run_note = _verifying_device(fmt, dev, opts.half)
    dest = _destination(weights, fmt, out, opts.overwrite, opts.int8 is not None)
    model, meta = build_from_weights(weights, dev)
    multiple = input_multiple(model)
    wrapper = ExportWrapper(model, opts.layout, opts.bake, opts.half, meta.temperature).eval().to(dev)
    if opts.half:
        wrapper = wrapper.half()
    fixed_size = fixed_export_size(meta.preset, multiple, opts.size)
    with strict_fp32():
        built = build_graph(
            wrapper,
            "onnx" if fmt == "openvino" else fmt,
            opset=opts.opset,
            multiple=multiple,
            fixed_size=fixed_size,
            dev=dev,
            force_fixed=opts.fixed,
            run_dev=run_dev,
        )
    if fmt == "openvino":  # OpenVINO's converter on the ONNX graph, verified by the gate below like any export
        graph = convert_onnx(built.payload)
        built = Built(OpenVinoRunner(graph), built.info, graph, built.reason, built.blockers)
    data_root = opts.data_root or meta.preset.data.root
    samples, source, warning = parity_samples(opts.images, data_root, opts.parity_images, meta.preset.data.channels)
    parity = _parity_gate(wrapper, built, meta, samples)
    if opts.int8 is not None and parity["passed"]:
        built, parity = _int8(built, meta, samples, data_root, (opts.int8, parity, fmt))
    final = _write_model(built, fmt, weights, meta, dest if parity["passed"] else rejected_path(dest))
    warning = "; ".join(w for w in (warning, run_note) if w)
    rj, rt = report_paths(dest)
    result = ExportResult(
        final, rj, rt, fmt, built.info, built.reason, parity, source, warning, time.perf_counter() - t0
    )
    atomic_write_text(rj, json.dumps(_jsonable(result.to_dict()), indent=2) + "\n")
    atomic_write_text(rt, report_text(result))
    if not parity["passed"]:
        raise ExportError(
            f"parity gate failed: {'; '.join(parity['failures'])}; the model is kept as {final} for inspection, "
            f"report {rt}"
        )
    return result


def _check_options(fmt: str, opts: ExportOptions) -> None:
    if fmt not in FORMATS:
        raise UserError(f"{arg('fmt')} {fmt!r}: choose onnx, openvino or torchscript")
    if opts.bake not in BAKES:
        raise UserError(f"{arg('bake')} {opts.bake}: choose one of {', '.join(BAKES)}")
    if opts.layout not in LAYOUTS:
        raise UserError(f"{arg('layout')} {opts.layout}: choose one of {', '.join(LAYOUTS)}")
    if fmt != "torchscript" and not 11 <= opts.opset <= 23:
        raise UserError(f"{arg('opset')} {opts.opset}: give an ONNX opset between 11 and 23 (default {DEFAULT_OPSET})")
    if opts.parity_images < 1:
        raise UserError(f"{arg('parity_images')} {opts.parity_images}: give 1 or more")
    if fmt == "openvino" and opts.half:
        raise UserError(f"{arg('half')}: the OpenVINO export is fp32 (or int8 with {arg('int8')}); drop {arg('half')}")
    if opts.int8 is not None:
        if fmt == "torchscript" or opts.half:
            raise UserError(
                f"{arg('int8')}: int8 quantises an fp32 ONNX or OpenVINO export; drop {arg('half')}, export onnx "
                "or openvino"
            )
        check_int8_options(opts.int8)
        if fmt == "openvino":
            check_openvino_int8(opts.int8)
    if fmt == "openvino":  # every package it needs, named before anything is exported
        require_onnx("OpenVINO export (through ONNX)")
        require_openvino()
        if opts.int8 is not None:
            require_nncf()


def _verifying_device(fmt: str, dev: torch.device, half: bool) -> tuple[torch.device, str]:
    """Where the exported graph runs for the gate, and a note when that is not ``dev``; fp16 needs CUDA there."""
    if half and dev.type != "cuda":
        raise UserError(
            f"{arg('half')}: fp16 export is built and verified on CUDA, and this export runs on the CPU, where "
            "PyTorch has no fp16 kernels to verify against and onnxruntime computes most fp16 operators by "
            f"converting to fp32 (slower, not faster); export fp32 here, or pass {arg('device')} cuda on a GPU "
            "machine"
        )
    if fmt == "openvino":  # OpenVINO runs on the CPU here (its GPU plugin is for Intel GPUs)
        note = "" if dev.type == "cpu" else "the OpenVINO model was verified on the CPU, against PyTorch on " + str(dev)
        return torch.device("cpu"), note
    if fmt != "onnx":
        return dev, ""
    _, ort = require_onnx()
    if dev.type != "cuda" or "CUDAExecutionProvider" in ort.get_available_providers():
        return dev, ""
    if half:
        raise UserError(
            f"{arg('half')}: the fp16 graph is verified with onnxruntime's CUDA provider, which this onnxruntime "
            "lacks; pip install onnxruntime-gpu (in place of onnxruntime), or export fp32"
        )
    # fp32: CUDA eager against onnxruntime's CPU provider is still a check
    return torch.device("cpu"), "onnxruntime has no CUDA provider here: the graph was verified on its CPU provider"


def _destination(weights: Path, fmt: str, out: str | os.PathLike | None, overwrite: bool, int8: bool = False) -> Path:
    """The model file to write (checked: its suffix, not a folder, not taken unless ``overwrite``)."""
    dest = Path(out) if out is not None else default_out(weights, fmt, int8)
    wanted = SUFFIXES[fmt]
    if dest.suffix.lower() not in wanted:
        raise UserError(
            f"{arg('out')} {dest}: name a {fmt} model {' or '.join(wanted)} "
            "(seg eval and seg infer tell models apart by it)"
        )
    if dest.is_dir():
        raise UserError(f"{arg('out')} {dest}: is a folder; give a file name such as {dest / 'model'}.onnx")
    if not overwrite:
        taken = [p for p in (dest, *report_paths(dest)) if p.exists()]
        if taken:
            raise UserError(f"{taken[0]} exists; pass {arg('overwrite')} to replace it, or choose another {arg('out')}")
    require_folder(dest.parent, arg("out"))
    return dest


def _parity_gate(wrapper: ExportWrapper, built: Built, meta: Any, samples: list[Sample]) -> dict[str, Any]:
    """The gate: the exported graph against eager PyTorch through the same adapter (layout, fixed-size resize,
    padding), on the samples resized as `seg eval` resizes them."""
    dev = wrapper.mean.device

    def eager_run(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return wrapper(x.to(dev))

    exported = ExportedModel(built.runner, built.info, meta.num_classes)
    eager = ExportedModel(eager_run, built.info, meta.num_classes)
    with strict_fp32():
        return run_parity(exported, eager, samples, eval_resize(meta.preset), meta.ignore_index)


def _int8(
    built: Built, meta: Any, samples: list[Sample], data_root: Any, how: tuple[Int8Options, dict[str, Any], str]
) -> tuple[Built, dict[str, Any]]:
    """The int8 graph of the verified fp32 one (onnxruntime's quantiser for ONNX, NNCF for OpenVINO), and the
    parity report with its gate (``int8``): the val mIoU drop, and the logits difference and argmax agreement
    against the fp32 graph on the parity images."""
    opts, parity, fmt = how
    quantize = quantize_openvino if fmt == "openvino" else quantize_graph
    q = quantize(built.payload, built.info, meta, data_root, opts)
    info = replace(built.info, int8=True)
    k = meta.num_classes
    vs = run_parity(
        ExportedModel(q.runner, info, k),
        ExportedModel(built.runner, built.info, k),
        samples,
        eval_resize(meta.preset),
        meta.ignore_index,
    )
    q.report["vs_fp32"] = {"max_abs_diff": vs["max_abs_diff"], "agreement": vs["agreement"], "pixels": vs["pixels"]}
    parity = {**parity, "int8": q.report, "passed": q.passed, "failures": parity["failures"] + q.report["failures"]}
    return Built(q.runner, info, q.payload, built.reason, built.blockers), parity


def _write_model(built: Built, fmt: str, weights: Path, meta: Any, final: Path) -> Path:
    """The graph with its metadata written to a temp beside ``final``, then renamed into place."""
    raw = read_metadata(weights)
    if TEMPERATURE_KEY in raw:  # inside the graph: whoever loads it must not divide again
        raw["temperature_in_graph"] = raw.pop(TEMPERATURE_KEY)
    raw.update({"format": EXPORT_FORMAT, **built.info.to_strings(), "segcli_version": __version__})
    raw.update(_readable_meta(meta.preset, meta, built.info, weights))
    if fmt == "onnx":
        onnx, _ = require_onnx()
        proto = onnx.load_from_string(built.payload)
        del proto.metadata_props[:]
        for k, v in raw.items():
            proto.metadata_props.add(key=k, value=v)
        proto.producer_name, proto.producer_version = "segcli", __version__
        writer: Callable[[Path], None] = lambda p: onnx.save(proto, str(p))  # noqa: E731
    elif fmt == "openvino":
        return write_openvino(built.payload, raw, final)
    else:
        extra = {"segcli.json": json.dumps(raw)}

        def writer(p: Path) -> None:
            with _quiet():
                torch.jit.save(built.payload, str(p), _extra_files=extra)

    os.replace(write_temp(final, writer), final)
    return final


def _readable_meta(preset: Any, meta: Any, info: ExportInfo, weights: Path) -> dict[str, str]:
    """Keys a user reading the metadata with another tool finds without parsing the preset."""
    resize = (
        {"size": list(preset.eval.size)}
        if preset.eval.size
        else {"keep_ratio": list(preset.eval.keep_ratio)}
        if preset.eval.keep_ratio
        else "native"
    )
    return {
        "resize": json.dumps(resize),
        "input_multiple": str(info.input_multiple),
        "fixed_size": json.dumps(list(info.fixed_size) if info.fixed_size else None),
        "channels": str(preset.data.channels),
        "normalisation": "x = (image - mean*255) / (std*255) per channel, inside the graph",
        "source_weights": weights.name,
    }


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, float) and obj != obj:
        return None
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


def report_text(result: ExportResult) -> str:
    """The human-readable parity report."""
    p, info = result.parity, result.info
    mode = (
        "dynamic batch, height and width"
        if info.dynamic
        else f"fixed size {info.fixed_size[0]}x{info.fixed_size[1]}"  # type: ignore[index]
        + ("" if info.dynamic_batch else ", batch 1")
    )
    lines = [
        f"segcli {__version__} export: {result.path}",
        f"format: {result.format}"
        + (
            f" ({'converted from ONNX ' if result.format == 'openvino' else ''}opset {info.opset})"
            if info.opset
            else ""
        ),
        f"input: {info.layout}; output: {p['compared']} (bake {info.bake}); {_precision(info, result.format)}",
        f"shapes: {mode}",
    ]
    if result.reason:
        lines.append(f"why fixed: {result.reason}")
    lines.append(f"parity images: {result.source}")
    if result.warning:
        lines.append(f"warning: {result.warning}")
    lines.append(
        f"sizes: {', '.join(f'{h}x{w}' for h, w in p['sizes'])} (padded to multiples of {info.input_multiple})"
    )
    if p["max_abs_diff"] is not None:
        lines.append(f"max |difference|: {p['max_abs_diff']:.3g} (bound {p['bound']:.3g})")
    lines.append(f"argmax agreement: {p['agreement']:.4%} (at least {p['min_agreement']:.1%})")
    if "mIoU" in p:
        lines.append(f"mIoU vs ground truth: exported {p['mIoU']['exported']:.4f}, eager {p['mIoU']['eager']:.4f}")
    if "int8" in p:
        lines.extend(_int8_lines(p["int8"]))
    lines.append("result: " + ("PASSED" if p["passed"] else "FAILED: " + "; ".join(p["failures"])))
    return "\n".join(lines) + "\n"


def _int8_lines(q: dict[str, Any]) -> list[str]:
    """The int8 gate's lines of the parity report."""
    vs = q["vs_fp32"]
    diff = "" if vs["max_abs_diff"] is None else f"max |difference| {vs['max_abs_diff']:.3g}, "
    lines = [
        f"int8: {q['method']} calibration on {q['calib_images']} {q['calib_split']} images; "
        + q.get("scheme", "QDQ, per-channel weights"),
        f"int8 vs fp32 graph: {diff}argmax agreement {vs['agreement']:.4%}",
        f"int8 {q['val_split']} mIoU ({q['val_images']} images): {q['int8_mIoU']:.4f} vs fp32 {q['fp32_mIoU']:.4f}, "
        f"drop {q['drop']:.2f} points (at most {q['max_drop']:g})",
    ]
    if q["worst_classes"]:
        lines.append(
            "int8 worst classes: " + ", ".join(f"{c} -{q['per_class'][c]['drop']:.2f}" for c in q["worst_classes"])
        )
    if q["kept_fp32"]:
        lines.append(f"int8 kept in fp32: {', '.join(q['kept_fp32'])}")
    if len(q["tried"]) > 1:
        lines.append("int8 tried: " + "; ".join(f"{t['method']}{_kept(t)} drop {t['drop']:.2f}" for t in q["tried"]))
    return lines


def _kept(t: dict[str, Any]) -> str:
    return f" +{len(t['kept_fp32'])} nodes fp32" if t["kept_fp32"] else ""


def _precision(info: ExportInfo, fmt: str = "onnx") -> str:
    int8 = "int8 (NNCF)" if fmt == "openvino" else "int8 (QDQ)"
    return int8 if info.int8 else "fp16" if info.half else "fp32"
