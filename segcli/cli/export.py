"""`seg export WEIGHTS_OR_RUN --onnx|--openvino|--torchscript [--out FILE]`."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from segcli.cli._common import JsonOpt, err, examples_for, hw, out, print_json
from segcli.cli.flags import cli_message


class Bake(str, Enum):
    """What the exported graph returns."""

    none = "none"
    softmax = "softmax"
    argmax = "argmax"


class CalibMethod(str, Enum):
    """How int8 activation ranges are calibrated."""

    auto = "auto"
    percentile = "percentile"
    entropy = "entropy"
    minmax = "minmax"


class Layout(str, Enum):
    """What the exported graph takes."""

    float_nchw = "float-nchw"
    uint8_nhwc = "uint8-nhwc"


def export_cmd(
    weights: Path = typer.Argument(..., help="Weights (.safetensors) or a run directory."),
    onnx: bool = typer.Option(False, "--onnx", help="Export to ONNX (verified with onnxruntime)."),
    openvino: bool = typer.Option(
        False, "--openvino", help="Export to OpenVINO .xml/.bin (converted from the ONNX graph, verified on the CPU)."
    ),
    torchscript: bool = typer.Option(False, "--torchscript", help="Export to TorchScript (traced)."),
    dest: Path = typer.Option(
        None, "--out", "-o", help="Model file (default: <run>/export/model.onnx or .xml, or beside the weights)."
    ),
    opset: int = typer.Option(18, "--opset", help="ONNX opset."),
    bake: Bake = typer.Option(
        Bake.none, "--bake", help="Output: none (logits), softmax (probabilities) or argmax (class ids)."
    ),
    half: bool = typer.Option(False, "--half", help="fp16 weights and arithmetic (CUDA only: needs --device cuda)."),
    layout: Layout = typer.Option(
        Layout.float_nchw,
        "--input",
        help="Input: float-nchw (RGB 0-255) or uint8-nhwc (conversion and normalisation inside the graph).",
    ),
    images: Path = typer.Option(
        None, "--images", help="Folder of images for the parity check (default: the run's dataset)."
    ),
    data: Path = typer.Option(None, "--data", help="Dataset for the parity check (default: the preset's data.root)."),
    parity_images: int = typer.Option(4, "--parity-images", min=1, help="Images the parity check uses."),
    size: str = typer.Option(
        None,
        "--size",
        metavar="H,W|HxW|N",
        help="Size of a fixed-size export (default: eval.size, else the training crop).",
    ),
    fixed: bool = typer.Option(False, "--fixed", help="Export at a fixed size even when the model allows dynamic."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N (where to export and verify)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing model and its report."),
    int8: bool = typer.Option(
        False,
        "--int8",
        help="Quantise to int8 (onnxruntime static QDQ; OpenVINO: NNCF), gated on the val split's mIoU drop.",
    ),
    calib_images: int = typer.Option(64, "--calib-images", min=1, help="--int8: images calibrating the ranges."),
    calib_method: CalibMethod = typer.Option(
        CalibMethod.auto,
        "--calib-method",
        help="--int8: auto (onnx: percentile, then entropy if it fits better; openvino: NNCF's presets), or one.",
    ),
    max_drop: float = typer.Option(1.0, "--max-drop", min=0.0, help="--int8: most val mIoU points int8 may lose."),
    keep_fp32: int = typer.Option(
        0, "--keep-fp32", min=0, help="--int8: keep up to N of the most sensitive nodes in fp32 until the drop fits."
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Export to ONNX or TorchScript with metadata, verified against PyTorch (report saved beside the model)."""
    from segcli.errors import UserError
    from segcli.infer import ExportOptions, Int8Options, export_model

    chosen = [name for name, on in (("onnx", onnx), ("openvino", openvino), ("torchscript", torchscript)) if on]
    if len(chosen) != 1:
        raise UserError("choose one format: --onnx, --openvino or --torchscript")
    options = ExportOptions(
        opset=opset,
        bake=bake.value,
        half=half,
        layout=layout.value,
        images=images,
        data_root=data,
        parity_images=parity_images,
        size=hw(size, "--size"),
        fixed=fixed,
        overwrite=overwrite,
        int8=Int8Options(calib_images, calib_method.value, max_drop, keep_fp32) if int8 else None,
    )
    res = export_model(weights, chosen[0], dest, device=device, options=options)
    if res.warning:
        err.print(f"[yellow]warning:[/] {cli_message(res.warning)}")
    if as_json:
        print_json(res.to_dict())
        return
    out.print(cli_message(res.report_text.read_text(encoding="utf-8").rstrip()))
    out.print(f"report: [bold]{res.report_json}[/]")


def register(app: typer.Typer) -> None:
    app.command("export", no_args_is_help=True, epilog=examples_for("export"))(export_cmd)
