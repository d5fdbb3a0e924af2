"""The run report: one self-contained ``report.html`` gathering everything a run directory holds.

:func:`build_report` reads the run (preset, environment, metrics.csv, log.txt, plots/), evaluates its
best weights (else last) over the validation split to get the per-class table and the worst images
(lowest per-image mIoU), and writes ``<run>/report.html`` atomically. Each piece that is missing (an
interrupted run, a moved dataset, no checkpoint yet) becomes "not available" with the reason, never an
error. :class:`RunReport` records the environment when training starts and writes the report when it ends.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from segcli import __version__
from segcli.core.callbacks import Callback, RunStart
from segcli.core.rundir import RunDir
from segcli.errors import SegError, UserError
from segcli.io_utils import atomic_write_text

WORST = 8  # validation images listed as the worst by default
LOG_TAIL = 60  # log.txt lines shown at the end of the report


# ---------------------------------------------------------------------- the environment
def environment(device: str) -> dict[str, Any]:
    """Versions, device and threads of this process: what a figure in the report depends on."""
    import cv2
    import torch

    from segcli.data.datasets import usable_cores

    try:
        import timm

        timm_version = timm.__version__
    except ImportError:  # pragma: no cover - timm is a dependency
        timm_version = None
    rec: dict[str, Any] = {
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
        "segcli": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "timm": timm_version,
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "platform": platform.platform(),
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "usable_cores": usable_cores(),
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
        "argv": " ".join(sys.argv[1:]),
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        index = torch.device(device).index
        rec["gpu"] = torch.cuda.get_device_name(index if index is not None else torch.cuda.current_device())
        rec["gpu_count"] = torch.cuda.device_count()
    return rec


def record_environment(run: RunDir, device: str, event: str = "start") -> None:
    """Append this process's :func:`environment` to ``environment.json`` (one record per start or resume)."""
    records = read_environment(run)
    records.append({"event": event, **environment(device)})
    atomic_write_text(run.environment, json.dumps(records, indent=2) + "\n")


def read_environment(run: RunDir) -> list[dict[str, Any]]:
    """The records of ``environment.json`` (empty when absent or unreadable)."""
    try:
        data = json.loads(run.environment.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [r for r in data if isinstance(r, dict)] if isinstance(data, list) else []


# ---------------------------------------------------------------------- what the report shows
@dataclass
class Piece:
    """One part of the report: its value, or why it is not available."""

    value: Any = None
    missing: str = ""

    @property
    def ok(self) -> bool:
        return not self.missing


@dataclass
class ReportData:
    """Everything gathered from a run before rendering."""

    run: RunDir
    preset_text: str
    name: str
    monitor: str = "mIoU"
    epochs_planned: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)
    environment: list[dict[str, Any]] = field(default_factory=list)
    evaluation: Piece = field(default_factory=Piece)  # {"weights", "split", "metrics", "worst", "worst_png", ...}
    plots: dict[str, Piece] = field(default_factory=dict)  # title → PNG bytes
    log_tail: list[str] = field(default_factory=list)
    epoch_waits: dict[int, str] = field(default_factory=dict)  # epoch → "12.3% of 45.6s"
    data_lines: list[str] = field(default_factory=list)  # what the run knew of its data and chose from it (log.txt)
    generated: str = ""


@dataclass(frozen=True)
class ReportResult:
    path: Path
    missing: dict[str, str]  # section → reason, for the parts that were not available
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"report": str(self.path), "not_available": self.missing, "seconds": round(self.seconds, 3)}


def _preset_fields(text: str) -> dict[str, Any]:
    """The resolved preset as a dict (empty when it does not parse: the report still shows the text)."""
    try:
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover
            import tomli as tomllib
        return tomllib.loads(text)
    except Exception:  # noqa: BLE001 - a damaged preset.toml is shown as text, not fatal
        return {}


def _epoch_waits(lines: list[str]) -> dict[int, str]:
    """``epoch N: data wait X% of Ys`` lines of log.txt (the last one per epoch)."""
    out: dict[int, str] = {}
    for line in lines:
        _, sep, rest = line.partition(" epoch ")
        if sep and ": data wait " in rest:
            num, _, what = rest.partition(": data wait ")
            if num.strip().isdigit():
                out[int(num)] = what.split(" (")[0].strip()
    return out


DATA_MARKERS = ("data statistics (", "recipe: ", "auto recipe: ", "weight averaging: ")


def _data_lines(lines: list[str]) -> list[str]:
    """The log lines saying what the run knew of its data and chose from it (the labels' statistics, the auto
    recipe's rules and choice, the weight average's), without their time stamps; a resume's repeats once."""
    out: list[str] = []
    for line in lines:
        at = min((i for i in (line.find(m) for m in DATA_MARKERS) if i >= 0), default=-1)
        if at >= 0 and line[at:] not in out:
            out.append(line[at:])
    return out


def _read_png(path: Path) -> Piece:
    if not path.is_file():
        return Piece(missing=f"{path.name} was not written (train.plots = false, or no validation yet)")
    try:
        return Piece(path.read_bytes())
    except OSError as e:
        return Piece(missing=f"{path}: {e.strerror or e}")


def _gather_plots(run: RunDir, preset: dict[str, Any]) -> dict[str, Piece]:
    plots = run.plots_dir
    samples = sorted(plots.glob("samples_epoch*.png")) if plots.is_dir() else []
    found = {
        "Training curves": _read_png(plots / "curves.png"),
        "Confusion matrix (last validation)": _read_png(plots / "confusion_matrix.png"),
        "Sample predictions": _read_png(samples[-1])
        if samples
        else Piece(missing="no samples_epochNNN.png (train.plots = false, or no validation yet)"),
        "Pixels per class": _read_png(plots / "class_pixels.png"),
    }
    if samples:
        found[f"Sample predictions ({samples[-1].stem.replace('samples_', '')})"] = found.pop("Sample predictions")
    if not found["Pixels per class"].ok:
        found["Pixels per class"] = _class_pixels(preset)
    return found


def _class_pixels(preset: dict[str, Any]) -> Piece:
    """class_pixels.png drawn now when the run has none (plots off), from the dataset if it is here."""
    from segcli.data.format import read_dataset_info
    from segcli.data.stats import class_histogram
    from segcli.report.plots import CLASS_PIXEL_MASKS
    from segcli.viz import draw_cv, encode_png

    data = preset.get("data", {})
    root, split = data.get("root", ""), data.get("train_split", "train")
    try:
        info = read_dataset_info(root)
        hist, read, total = class_histogram(root, split, info.num_classes, info.ignore_index, CLASS_PIXEL_MASKS)
    except (SegError, OSError, ValueError) as e:
        return Piece(missing=f"no plots/class_pixels.png and the dataset cannot be read ({_one_line(e)})")
    sampled = f", {read} of {total} masks" if read < total else ""
    return Piece(encode_png(draw_cv.bars(hist, list(info.classes), f"pixels per class, {split} split{sampled}")))


def _one_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def evaluate_run(run: RunDir, split: str | None = None, worst: int = WORST, device: str = "auto") -> dict[str, Any]:
    """Metrics of the run's best weights (else last) over ``split`` (the preset's val split), its ``worst`` images
    by per-image mIoU, drawn as image | ground truth | prediction rows (PNG bytes), and its calibration (ECE and
    the reliability diagram, PNG bytes)."""
    import torch
    from torch.utils.data import DataLoader

    from segcli.core.runtime import select_device
    from segcli.data.datasets import EvalDataset, eval_collate, resolve_workers, worker_init
    from segcli.infer.evaluator import confusion_with, eval_index, reliability_title
    from segcli.infer.predict_core import class_ids, open_for_prediction, predict_images
    from segcli.infer.protocol import ProtocolChoices
    from segcli.metrics import ConfusionMatrix, ReliabilityBins
    from segcli.viz import draw_cv, encode_png

    weights = run.best_weights()
    if weights is None:
        raise UserError("no weights/best.safetensors or last.safetensors yet (stopped before its first checkpoint)")
    dev = select_device(device, option="--device")
    model, meta, proto = open_for_prediction(weights, dev, ProtocolChoices())  # the preset's own protocol
    preset = meta.preset
    split = split or preset.data.val_split
    index = eval_index(meta, None, split)  # the data it trained on, found from anywhere and checked
    ds = EvalDataset(index, split, proto.size, proto.keep_ratio, preset.data.channels)
    loader = DataLoader(
        ds,
        batch_size=proto.batch_size,
        shuffle=False,
        num_workers=resolve_workers(preset.data.num_workers),
        worker_init_fn=worker_init,
        collate_fn=eval_collate,
        pin_memory=dev.type == "cuda",
    )
    per_image: list[float] = []
    cm = ConfusionMatrix(meta.num_classes, meta.ignore_index, device=dev)
    ece = ReliabilityBins(meta.num_classes, meta.ignore_index, device=dev)
    confusion_with(model, loader, cm, proto, per_image=per_image, watch=lambda lg, t: ece.update(lg, t, proto.tta))
    metrics = cm.compute(preset.eval.absent, meta.classes)
    calibration = ece.summary(meta.classes)
    ranked = sorted((v, i) for i, v in enumerate(per_image) if v == v)[: max(worst, 0)]
    listed, rows = [], []
    with torch.no_grad():
        for v, i in ranked:
            image, mask = ds[i]
            scores = predict_images(model, image[None], [tuple(mask.shape)], proto, dev)[0]
            rgb = image.permute(1, 2, 0).numpy()
            if rgb.shape[:2] != tuple(mask.shape):
                import cv2

                rgb = cv2.resize(rgb, (mask.shape[1], mask.shape[0]), interpolation=cv2.INTER_AREA)
            rows.append((rgb, mask.numpy(), class_ids(scores).cpu().numpy()))
            listed.append({"image": ds.samples[i][0].name, "mIoU": v})
    png = None
    if rows:
        title = f"worst {len(rows)} of {len(ds)} {split} images by per-image mIoU"
        png = encode_png(draw_cv.samples(rows, meta.classes, meta.palette, meta.ignore_index, title))
    return {
        "weights": str(weights.relative_to(run.path)),
        "split": split,
        "images": len(ds),
        "metrics": metrics,
        "worst": listed,
        "worst_png": png,
        "calibration": calibration,
        "reliability_png": encode_png(draw_cv.reliability(calibration["reliability"], reliability_title(calibration))),
        "device": str(dev),
        "palette": [tuple(int(v) for v in c) for c in meta.palette],
    }


def gather(run: RunDir, worst: int = WORST, evaluate: bool = True, device: str = "auto") -> ReportData:
    """Read everything the report shows; each unavailable piece carries its reason."""
    preset_text = run.preset.read_text(encoding="utf-8", errors="replace")
    preset = _preset_fields(preset_text)
    train = preset.get("train", {})
    log = run.log_file
    log_lines = log.read_text(encoding="utf-8", errors="replace").splitlines() if log.is_file() else []
    data = ReportData(
        run=run,
        preset_text=preset_text,
        name=f"{run.path.parent.name}/{run.path.name}",
        monitor=str(train.get("monitor", "mIoU")),
        epochs_planned=0 if train.get("time_budget") or train.get("iters") else int(train.get("epochs", 0) or 0),
        rows=run.read_metrics(),
        environment=read_environment(run),
        plots=_gather_plots(run, preset),
        log_tail=log_lines[-LOG_TAIL:],
        epoch_waits=_epoch_waits(log_lines),
        data_lines=_data_lines(log_lines),
        generated=time.strftime("%Y-%m-%d %H:%M:%S"),
    )
    if not evaluate:
        data.evaluation = Piece(missing="evaluation skipped (--no-eval)")
        return data
    try:
        data.evaluation = Piece(evaluate_run(run, worst=worst, device=device))
    except (SegError, OSError) as e:
        data.evaluation = Piece(missing=_one_line(e))
    return data


def build_report(
    run_dir: str | os.PathLike, worst: int = WORST, evaluate: bool = True, device: str = "auto"
) -> ReportResult:
    """Write ``<run>/report.html`` for the run at ``run_dir`` (a UserError when it is not a run)."""
    from segcli.report.html import render

    t0 = time.perf_counter()
    if worst < 0:
        raise UserError(f"--worst {worst}: give a number of images >= 0")
    run = RunDir.open(run_dir)
    data = gather(run, worst=worst, evaluate=evaluate, device=device)
    html, missing = render(data)
    atomic_write_text(run.report, html)
    return ReportResult(run.report, missing, time.perf_counter() - t0)


class RunReport(Callback):
    """Records the environment when training starts; writes ``report.html`` when it ends (rank 0)."""

    def __init__(self, worst: int = WORST) -> None:
        self.run: RunDir | None = None
        self.device = "auto"
        self.worst = worst

    def on_train_start(self, start: RunStart) -> None:
        from segcli.core.runtime import select_device

        self.run = start.run
        p = start.preset
        if p is not None:
            local = os.environ.get("LOCAL_RANK")
            self.device = str(select_device(p.train.device, int(local) if local and local.isdigit() else None))
        try:
            record_environment(start.run, self.device, "resume" if start.resumed else "start")
        except OSError as e:  # a report is not worth stopping a run for
            start.run.log(f"environment.json not written: {_one_line(e)}")

    def on_train_end(self, result: Any) -> None:
        if self.run is None:
            return
        try:
            res = build_report(self.run.path, worst=self.worst, device=self.device)
        except (SegError, OSError) as e:
            self.run.log(f"report not written: {_one_line(e)}")
            return
        self.run.log(f"report: {res.path}")
