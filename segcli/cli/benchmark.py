"""`seg benchmark [PRESET_OR_WEIGHTS]`: throughput of one model on this machine (inference and a training step)."""

from __future__ import annotations

import typer
from rich.markup import escape

from segcli.cli._common import SIZE_METAVAR, JsonOpt, examples_for, hw, out, print_json, table
from segcli.cli.flags import cli_message


def benchmark_cmd(
    target: str = typer.Argument(
        "quickstart",
        help="Bundled preset, preset file, weights file, run directory, or exported .onnx/.xml/.torchscript.",
    ),
    size: str = typer.Option("512x512", "--size", metavar=SIZE_METAVAR, help="Input size: H,W, HxW or N (square)."),
    batch_size: int = typer.Option(1, "--batch-size", min=1, help="Images per inference batch."),
    batch: int = typer.Option(None, "--batch", min=1, hidden=True, help="Old name of --batch-size."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    amp: str = typer.Option("auto", "--amp", help="auto, none, bf16 or fp16 (fp16 needs CUDA)."),
    channels_last: bool = typer.Option(True, "--channels-last/--contiguous", help="Memory format of the inputs."),
    compile: bool = typer.Option(False, "--compile", help="torch.compile the model (backend column says so)."),
    num_classes: int = typer.Option(19, "--classes", min=1, help="Output classes of a preset's model."),
    iters: int = typer.Option(10, "--iters", min=2, help="Timed repetitions (the median is reported)."),
    train: bool = typer.Option(True, "--train/--no-train", help="Also time one training step."),
    data: str = typer.Option(None, "--data", help="A segcli dataset: also report each backend's mIoU on it."),
    split: str = typer.Option("val", "--split", help="The split --data is scored on."),
    onnx: bool = typer.Option(
        False, "--onnx", help="Also export the weights (parity gate included) and time onnxruntime."
    ),
    int8: bool = typer.Option(
        False,
        "--int8",
        help="Also the int8 graph of each exported backend (seg export --int8, its mIoU gate included); implies "
        "--onnx unless --openvino.",
    ),
    openvino: bool = typer.Option(
        False, "--openvino", help="Also export the weights to OpenVINO (parity gate included) and time it."
    ),
    compare: str = typer.Option(
        None,
        "--compare",
        metavar="all|BACKEND,...",
        help="Time these backends beside eager fp32 (the first row and the ratio base), or all: eager bf16, "
        "torch.compile, onnxruntime, onnxruntime-int8, openvino, openvino-int8; one whose package is missing is "
        "skipped with the reason.",
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Images/s and latency of a model on this machine, labelled with everything that decides them."""
    from segcli.infer import BenchmarkOptions, ProtocolChoices, benchmark

    batch_size = batch if batch is not None else batch_size
    protocol = ProtocolChoices(size=hw(size, "--size"), batch_size=batch_size, amp=amp, channels_last=channels_last)
    options = BenchmarkOptions(
        compile=compile,
        num_classes=num_classes,
        iters=iters,
        train=train,
        data=data,
        split=split,
        onnx=onnx,
        int8=int8,
        openvino=openvino,
        compare=tuple(c.strip() for c in compare.split(",")) if compare else (),
    )
    r = benchmark(target, protocol, device=device, options=options)
    if as_json:
        print_json(r)
        return
    labels = ["device_name", "device", "threads", "resolution", "precision", "memory_format", "batch", "backend"]
    out.print(f"{r['model']} ({r['target']}): " + ", ".join(f"{k}={r[k]}" for k in labels))
    if r.get("cpu_flags") is not None and r["device"] == "cpu":
        out.print(f"CPU instruction sets: {', '.join(r['cpu_flags']) or 'none of avx2/avx512/vnni/amx'}")
    rows = []
    scored, ratios = "accuracy" in r, "backends" in r
    for b in [r, *r.get("backends", [])]:
        for key, what in (("inference", "model only"), ("inference_end_to_end", "uint8 in/out")):
            s = b[key]
            figures = [s[k] for k in ("images_per_s", "latency_ms_p50", "latency_ms_p90", "latency_ms_p99")]
            miou = [f"{b['accuracy']['mIoU']:.4f}" if "accuracy" in b else "-"] if scored else []
            ratio = [_ratio(r, b, key)] if ratios else []
            rows.append([f"{b['backend']}, {what}", *(f"{v:.1f}" for v in figures), *ratio, "-", *miou])
    if "train_step" in r:
        t = r["train_step"]
        step = f"training step (batch {t['batch']})"
        cells = ["-", "-", "-", *(["-"] * ratios), f"{t['peak_memory_mb']:.0f}", *(["-"] * scored)]
        rows.append([step, f"{t['images_per_s']:.1f}", *cells])
    ratio_head = [f"x {r['backend']}"] if ratios else []
    head = ["", "images/s", "p50 ms", "p90 ms", "p99 ms", *ratio_head, "peak MiB", *(["mIoU"] * scored)]
    out.print(table("benchmark", head, rows))
    for skipped in r.get("skipped", []):
        out.print(f"[yellow]skipped[/] {skipped['backend']}: {escape(cli_message(skipped['reason']))}")
    for b in (b for b in r.get("backends", []) if "parity" in b):  # the exported ones: their gates
        p = b["parity"]
        verdict = "passed" if p["passed"] else "FAILED"
        ratio = b.get("latency_ratio_to_first")
        speed = f", p50 latency {ratio:.3f} x {r['backend']}'s" if ratio else ""
        drop = f", val mIoU drop {p['miou_drop']:.2f} points" if p.get("miou_drop") is not None else ""
        out.print(
            f"{b['backend']} ({b['shapes']} shapes): parity {verdict}, argmax agreement {p['agreement']:.4%}"
            + drop
            + speed
        )


def _ratio(first: dict, row: dict, key: str) -> str:
    """``row``'s p50 latency as a ratio of the first row's, for the same measurement (``key``)."""
    base = first[key]["latency_ms_p50"]
    return f"{row[key]['latency_ms_p50'] / base:.3f}" if base else "-"


def register(app: typer.Typer) -> None:
    app.command("benchmark", epilog=examples_for("benchmark"))(benchmark_cmd)
