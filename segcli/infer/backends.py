"""Inference backends: a segcli checkpoint, an exported ONNX model, an OpenVINO model (``.xml`` with its ``.bin``)
or a TorchScript module, each seen by the
prediction core as one thing, a module called on a float NCHW batch (RGB in [0, 255]) that returns scores.

The core (:mod:`segcli.infer.predict_core`) pads, slides windows and averages TTA views; a backend only runs
one padded batch. :class:`ExportedModel` adapts an exported graph to that contract: it converts the input to
the graph's layout (uint8 NHWC or float NCHW), resizes to the graph's fixed size when it has one, runs it a
batch (or an image) at a time, and turns a baked output back into scores (softmax → log-probabilities, whose
softmax is the same probabilities; argmax → one-hot), so eval, infer, sliding windows and TTA work unchanged.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from segcli.core.checkpoint import CheckpointMeta, build_from_weights, meta_from_strings
from segcli.errors import CheckpointError, UserError, arg

EXPORT_FORMAT = "segcli-export/1"
LAYOUTS = ("float-nchw", "uint8-nhwc")
BAKES = ("none", "softmax", "argmax")
ONNX_SUFFIXES = (".onnx",)
TORCHSCRIPT_SUFFIXES = (".torchscript", ".ts")  # never .pt: a pickle from torch.save is not ours to open
OPENVINO_SUFFIXES = (".xml",)  # the graph; its weights are the .bin of the same name beside it
INSTALL_HINT = "pip install 'segcli[export]'"
OPENVINO_HINT = "pip install 'segcli[openvino]'"


def require_onnx(what: str = "ONNX export") -> tuple[Any, Any]:
    """(onnx, onnxruntime), imported on first use; a missing package is one line naming the extra."""
    try:
        import onnx
        import onnxruntime
    except ImportError as e:
        raise UserError(f"{what} needs onnx and onnxruntime ({e.name} is not installed): {INSTALL_HINT}") from None
    return onnx, onnxruntime


def require_openvino(what: str = "OpenVINO export") -> Any:
    """The openvino package, imported on first use; a missing package is one line naming the extra."""
    try:
        import openvino
    except ImportError as e:
        raise UserError(f"{what} needs the openvino package ({e.name} is not installed): {OPENVINO_HINT}") from None
    return openvino


@dataclass(frozen=True)
class ExportInfo:
    """How an exported graph is called: what its metadata says beyond the checkpoint's."""

    layout: str = "float-nchw"  # float-nchw: (N, 3, H, W) float RGB 0-255; uint8-nhwc: (N, H, W, 3) uint8 RGB
    bake: str = "none"  # what the graph returns: logits, softmax probabilities or argmax class ids
    dynamic: bool = True  # any height and width (a multiple of input_multiple); False: fixed_size only
    fixed_size: tuple[int, int] | None = None  # (H, W) of a fixed-size graph
    dynamic_batch: bool = True  # False: batch 1 only
    input_multiple: int = 32  # callers pad height and width to multiples of this
    half: bool = False  # fp16 weights and arithmetic inside the graph
    int8: bool = False  # int8 weights and activations (QDQ), quantised from the fp32 graph
    opset: int = 0  # ONNX opset (0 for TorchScript)
    segcli_version: str = ""

    def to_strings(self) -> dict[str, str]:
        d = asdict(self)
        return {"export": json.dumps(d), "input_layout": self.layout, "bake": self.bake}

    @classmethod
    def from_strings(cls, raw: dict[str, str], path: str | os.PathLike) -> ExportInfo:
        try:
            d = json.loads(raw["export"])
            if d.get("fixed_size") is not None:
                d["fixed_size"] = tuple(d["fixed_size"])
            info = cls(**d)
        except (KeyError, TypeError, ValueError) as e:
            raise CheckpointError(f"{path}: damaged segcli export metadata ({type(e).__name__}: {e})") from None
        if info.layout not in LAYOUTS or info.bake not in BAKES:
            raise CheckpointError(f"{path}: unknown input layout {info.layout!r} or bake mode {info.bake!r}")
        return info


def to_graph_input(x: torch.Tensor, layout: str, half: bool = False) -> torch.Tensor:
    """A float NCHW batch (RGB 0-255) in the graph's input layout: uint8 NHWC is rounded and clamped."""
    if layout == "uint8-nhwc":
        return x.float().round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()
    return x.to(torch.float16 if half else torch.float32).contiguous()


def scores_from_output(out: torch.Tensor, bake: str, num_classes: int) -> torch.Tensor:
    """A graph's output → scores whose argmax is the mask and whose softmax is the probabilities."""
    if bake == "argmax":
        return F.one_hot(out.long(), num_classes).permute(0, 3, 1, 2).float()
    out = out.float()
    if bake == "softmax":
        return out.clamp_min(1e-30).log()
    return out


class ExportedModel(nn.Module):
    """An exported graph as the prediction core's model: float NCHW (0-255) in, scores (N, K, H, W) out.

    ``runner`` calls the graph on its own input layout and returns its raw output as a CPU or device tensor.
    """

    def __init__(self, runner: Callable[[torch.Tensor], torch.Tensor], info: ExportInfo, num_classes: int) -> None:
        super().__init__()
        self.runner, self.info, self.num_classes = runner, info, num_classes
        self.input_multiple = info.input_multiple

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):  # the graph has its own precision
            return self._forward(x.float())

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        size = tuple(x.shape[-2:])
        fixed = self.info.fixed_size if not self.info.dynamic else None
        if fixed is not None and size != tuple(fixed):
            x = F.interpolate(x, size=fixed, mode="bilinear", align_corners=False)
        g = to_graph_input(x, self.info.layout, self.info.half)
        if self.info.dynamic_batch or g.shape[0] == 1:
            out = self.runner(g)
        else:
            out = torch.cat([self.runner(g[i : i + 1]) for i in range(g.shape[0])])
        scores = scores_from_output(out, self.info.bake, self.num_classes).to(x.device)
        if tuple(scores.shape[-2:]) != size:
            mode = "nearest" if self.info.bake == "argmax" else "bilinear"
            kw = {} if mode == "nearest" else {"align_corners": False}
            scores = F.interpolate(scores, size=size, mode=mode, **kw)
        return scores


def onnx_providers(device: torch.device) -> list[str]:
    """onnxruntime providers for ``device``: CUDA first on a GPU (when this onnxruntime has it), then CPU."""
    _, ort = require_onnx("Running an ONNX model")
    have = ort.get_available_providers()
    if device.type == "cuda":
        if "CUDAExecutionProvider" not in have:
            raise UserError(
                f"this onnxruntime has no CUDA provider; pip install onnxruntime-gpu, or use {arg('device')} cpu"
            )
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class OnnxRunner:
    """An onnxruntime session called with a torch tensor (moved to the host), returning a torch tensor."""

    def __init__(self, path_or_bytes: str | os.PathLike | bytes, device: torch.device, threads: int = 0) -> None:
        _, ort = require_onnx("Running an ONNX model")
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads > 0:
            opts.intra_op_num_threads = threads
        src = path_or_bytes if isinstance(path_or_bytes, bytes) else str(path_or_bytes)
        try:
            self.session = ort.InferenceSession(src, opts, providers=onnx_providers(device))
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own types for a bad file
            first = (str(e).strip().splitlines() or [""])[0]
            raise CheckpointError(f"{path_or_bytes if not isinstance(src, bytes) else 'model'}: {first}") from None
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        arr = x.detach().cpu().numpy()
        return torch.from_numpy(self.session.run(None, {self.input_name: arr})[0])


class OpenVinoRunner:
    """An OpenVINO model compiled for the CPU, called with a torch tensor (moved to the host).

    The arithmetic is pinned to fp32 (``INFERENCE_PRECISION_HINT``): OpenVINO's CPU plugin otherwise runs fp32
    graphs in bf16 on CPUs that have it (AVX-512 bf16, AMX), which is another model than the one the parity gate
    verified. An int8 graph runs its quantised layers in int8 and the rest in fp32.
    """

    def __init__(self, model: Any, threads: int = 0) -> None:
        ov = require_openvino("Running an OpenVINO model")
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
        if threads > 0:
            config["INFERENCE_NUM_THREADS"] = threads
        try:
            self.compiled = ov.Core().compile_model(model, "CPU", config)
        except Exception as e:  # noqa: BLE001 - OpenVINO raises RuntimeError for a model it cannot compile
            first = (str(e).strip().splitlines() or [""])[0]
            raise CheckpointError(f"OpenVINO could not compile the model: {first[:240]}") from None
        self.request = self.compiled.create_infer_request()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.request.infer({0: x.detach().cpu().numpy()})
        return torch.from_numpy(self.request.get_output_tensor(0).data.copy())


def read_openvino(path: str | os.PathLike) -> tuple[Any, dict[str, str]]:
    """An OpenVINO model (``.xml`` and the ``.bin`` beside it) and its segcli metadata (``rt_info["segcli"]``)."""
    ov = require_openvino("Reading an OpenVINO model")
    path = Path(path)
    if not path.with_suffix(".bin").is_file():
        raise CheckpointError(f"{path}: its weights {path.with_suffix('.bin').name} are not beside it")
    try:
        model = ov.Core().read_model(str(path))
    except Exception as e:  # noqa: BLE001 - a damaged or foreign XML
        first = (str(e).strip().splitlines() or [""])[0]
        raise CheckpointError(f"{path}: not a readable OpenVINO model ({first[:200]})") from None
    if not model.has_rt_info(["segcli"]):
        return model, {}
    return model, {k: v.astype(str) for k, v in model.get_rt_info(["segcli"]).astype(dict).items()}


def read_onnx_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata_props of an ONNX file (the weights are not loaded)."""
    onnx, _ = require_onnx("Reading an ONNX model")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # noqa: BLE001 - protobuf errors for a damaged file
        raise CheckpointError(f"{path}: not a readable ONNX file ({type(e).__name__})") from None
    return {p.key: p.value for p in model.metadata_props}


def _segcli_meta(raw: dict[str, str], path: Path) -> tuple[CheckpointMeta, ExportInfo]:
    if raw.get("format") != EXPORT_FORMAT:
        raise CheckpointError(
            f"{path}: exported without segcli metadata (no '{EXPORT_FORMAT}'); export it with seg export, "
            "or pass the segcli .safetensors weights"
        )
    return meta_from_strings(raw, path), ExportInfo.from_strings(raw, path)


def load_torchscript(path: Path, device: torch.device) -> tuple[torch.jit.ScriptModule, dict[str, str]]:
    """A TorchScript module and its segcli metadata (the ``segcli.json`` extra file)."""
    extra = {"segcli.json": ""}
    try:
        with warnings.catch_warnings():  # torch.jit's deprecation note, on every load
            warnings.simplefilter("ignore", FutureWarning)
            module = torch.jit.load(str(path), map_location=device, _extra_files=extra)
    except Exception as e:  # noqa: BLE001 - any failure: not a TorchScript archive
        first = (str(e).strip().splitlines() or [""])[0]
        raise CheckpointError(f"{path}: not a TorchScript model ({first[:200]})") from None
    try:
        raw = json.loads(extra["segcli.json"] or "{}")
    except ValueError:
        raw = {}
    return module.eval(), raw


def load_inference_model(path: str | os.PathLike, device: torch.device) -> tuple[nn.Module, CheckpointMeta]:
    """The model the prediction core runs and its metadata: a segcli .safetensors checkpoint, an exported
    ``.onnx`` (through onnxruntime), an OpenVINO ``.xml`` (on the CPU, whatever ``device``) or a TorchScript file
    (``.torchscript``/``.ts``)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in ONNX_SUFFIXES:
        meta, info = _segcli_meta(read_onnx_metadata(path), path)
        return ExportedModel(OnnxRunner(path, device), info, meta.num_classes).eval(), meta
    if suffix in OPENVINO_SUFFIXES:
        graph, raw = read_openvino(path)
        meta, info = _segcli_meta(raw, path)
        return ExportedModel(OpenVinoRunner(graph), info, meta.num_classes).eval(), meta
    if suffix in TORCHSCRIPT_SUFFIXES:
        module, raw = load_torchscript(path, device)
        meta, info = _segcli_meta(raw, path)

        def run(x: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return module(x.to(device))

        return ExportedModel(run, info, meta.num_classes).eval(), meta
    return build_from_weights(path, device)
