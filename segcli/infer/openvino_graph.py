"""OpenVINO export: the verified ONNX graph converted by OpenVINO's own converter into an ``.xml``/``.bin`` pair,
and its int8 graph by NNCF's post-training quantisation, under the same gates as an ONNX export.

- **Conversion.** ``openvino.convert_model`` on the exported fp32 ONNX graph (its dynamic batch, height and width
  kept); saved with fp32 weights (``save_model`` compresses them to fp16 unless told not to).
- **Metadata.** The export's key/value metadata (the same as an ONNX graph's ``metadata_props``) in the model's
  ``rt_info["segcli"]``, read back by :func:`segcli.infer.backends.read_openvino`.
- **INT8.** ``nncf.quantize`` (OpenVINO's own post-training quantiser: per-channel int8 weights, int8
  activations, fast bias correction) calibrated on the same inputs as the onnxruntime int8 export (the run's train
  split through the eval protocol's preprocessing, :func:`segcli.infer.quantize.gate_data`) and gated the same
  way (the val split's mIoU drop, :func:`segcli.infer.quantize.judge`). ``calib_method`` auto uses NNCF's
  performance preset (symmetric activations) and tries its mixed preset (asymmetric activations) when the drop
  does not fit, keeping the better; ``minmax`` takes plain min/max activation ranges.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from segcli.core.checkpoint import CheckpointMeta
from segcli.errors import UserError, arg
from segcli.infer.backends import OPENVINO_HINT, ExportInfo, OpenVinoRunner, require_openvino
from segcli.infer.quantize import Int8Options, Quantized, gate_data, gate_report, judge
from segcli.io_utils import write_temp

OV_METHODS = ("auto", "minmax")
SCHEME = "NNCF post-training quantisation, per-channel int8 weights"


def require_nncf() -> Any:
    """The nncf package (OpenVINO's quantiser), imported on first use; a missing one is one line naming the extra."""
    try:
        import nncf
    except ImportError as e:
        raise UserError(f"OpenVINO int8 export needs nncf ({e.name} is not installed): {OPENVINO_HINT}") from None
    return nncf


def check_openvino_int8(opts: Int8Options) -> None:
    """The int8 options NNCF can honour, checked before anything is exported."""
    if opts.calib_method not in OV_METHODS:
        raise UserError(
            f"{arg('calib_method')} {opts.calib_method}: OpenVINO int8 is calibrated by NNCF; choose "
            f"{' or '.join(OV_METHODS)} (percentile and entropy are onnxruntime's)"
        )
    if opts.keep_fp32:
        raise UserError(
            f"{arg('keep_fp32')} {opts.keep_fp32}: keeping the most sensitive nodes in fp32 is measured with "
            "onnxruntime's tools; it applies to an onnx int8 export, not an OpenVINO one"
        )


def convert_onnx(onnx_bytes: bytes) -> Any:
    """An ``openvino.Model`` converted from an ONNX graph (its dynamic axes kept)."""
    ov = require_openvino()
    with tempfile.TemporaryDirectory(prefix="segcli-ov-") as tmp:
        path = Path(tmp) / "model.onnx"
        path.write_bytes(onnx_bytes)
        return ov.convert_model(str(path))


def write_openvino(model: Any, raw: dict[str, str], final: Path) -> Path:
    """``model`` with ``raw`` in its ``rt_info["segcli"]``, saved (fp32 weights) as ``final`` and the ``.bin``
    beside it: both written to temps, the weights renamed into place first, then the graph."""
    ov = require_openvino()
    for key, value in raw.items():
        model.set_rt_info(value, ["segcli", key])

    def writer(p: Path) -> None:
        try:
            ov.save_model(model, str(p), compress_to_fp16=False)
        except BaseException:
            p.with_suffix(".bin").unlink(missing_ok=True)
            raise

    tmp = write_temp(final, writer)
    os.replace(tmp.with_suffix(".bin"), final.with_suffix(".bin"))
    os.replace(tmp, final)
    return final


@contextlib.contextmanager
def _quiet_nncf(nncf: Any) -> Iterator[None]:
    """NNCF logs its steps and draws progress bars on every call: not the user's business."""
    nncf.set_log_level(logging.ERROR)
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        yield


def _quantize_once(nncf: Any, model: Any, inputs: list[Any], method: str) -> Any:
    """One NNCF quantisation of ``model`` calibrated on ``inputs`` (``method``: performance, mixed or minmax)."""
    kwargs: dict[str, Any] = {"subset_size": len(inputs), "preset": nncf.QuantizationPreset.PERFORMANCE}
    if method == "mixed":
        kwargs["preset"] = nncf.QuantizationPreset.MIXED
    elif method == "minmax":
        from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
        from nncf.quantization.range_estimator import RangeEstimatorParametersSet

        kwargs["advanced_parameters"] = AdvancedQuantizationParameters(
            activations_range_estimator_params=RangeEstimatorParametersSet.MINMAX
        )
    with _quiet_nncf(nncf):
        return nncf.quantize(model, nncf.Dataset(inputs), **kwargs)


def quantize_openvino(
    fp32: Any, info: ExportInfo, meta: CheckpointMeta, data_root: str | os.PathLike, opts: Int8Options
) -> Quantized:
    """The int8 model of the verified fp32 OpenVINO model ``fp32`` (NNCF), calibrated on ``data_root`` and gated
    on its val split as the onnxruntime int8 export is; the report says what was tried and why it passed or failed.
    """
    check_openvino_int8(opts)
    nncf = require_nncf()
    data = gate_data(OpenVinoRunner(fp32), info, meta, data_root, opts.calib_images)

    def attempt(method: str) -> tuple[Any, dict[str, Any]]:
        q = _quantize_once(nncf, fp32, data.inputs, method)
        return q, {"method": method, "kept_fp32": [], **judge(OpenVinoRunner(q), info, meta, data)}

    tried = [attempt("minmax" if opts.calib_method == "minmax" else "performance")]
    if tried[0][1]["drop"] > opts.max_drop and opts.calib_method == "auto":
        tried.append(attempt("mixed"))
    best = min(tried, key=lambda t: t[1]["drop"])
    report = gate_report(best[1], [t[1] for t in tried], data, opts.max_drop, keep_hint=False)
    report["scheme"] = SCHEME
    return Quantized(best[0], OpenVinoRunner(best[0]), report)
