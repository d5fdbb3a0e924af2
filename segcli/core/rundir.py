"""The run directory: one type owns its layout, its numbering and its small files.

``<out_dir>/<name>/<N>/`` (N increments, a run never overwrites another)::

    preset.toml               the fully resolved preset
    metrics.csv               one row per epoch
    weights/{last,best,ema}.safetensors
    state.pt                  everything resume needs (:class:`segcli.train.state.TrainState`),
                              at an epoch end or inside an epoch (train.save_every)
    checkpoint.json           the last complete save: epoch, step, its files (:mod:`segcli.train.commit`)
    log.txt                   timestamped lines
    environment.json          versions, device and threads, one record per start or resume
    eval/<split>.json         reports of `seg eval` on this run, each with its <split>_confusion.png
    export/model.onnx         `seg export` models, each with its parity report (``model.onnx.parity.json``/``.txt``)
    plots/                    curves, confusion matrix, sample predictions, pixels per class
    report.html               the self-contained run report (`seg report`, and at the end of training)
    tensorboard/              TensorBoard event files (train.loggers = ["tensorboard"])
    wandb/                    the Weights & Biases run's files (train.loggers = ["wandb"])

Everything else (trainer, evaluator, predictor, checkpoint resolution) asks a :class:`RunDir`
for paths instead of spelling them out.
"""

from __future__ import annotations

import csv
import io
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segcli.config.schema import METRIC_KEYS
from segcli.errors import CheckpointError, UserError
from segcli.io_utils import atomic_write_text, is_temp, next_free_path, next_numbered_dir

CSV_FIELDS = ("epoch", "iterations", "train_loss", "lr", "seconds", *METRIC_KEYS, "ema_mIoU", "val_loss")
_INT_FIELDS = ("epoch", "iterations")
WEIGHTS_PREFERENCE = ("best", "last")
LOCK_NAME = ".lock"  # held by the process writing the run (:mod:`segcli.core.runlock`)


@dataclass(frozen=True)
class RunDir:
    """Paths and small-file I/O of one run directory."""

    path: Path

    # ------------------------------------------------------------------ finding and creating runs
    @classmethod
    def create(cls, parent: str | os.PathLike, name: str) -> RunDir:
        """A new numbered run ``parent/name/N`` (N = one more than the largest taken)."""
        return cls(next_numbered_dir(Path(parent) / name))

    @classmethod
    def open(cls, path: str | os.PathLike) -> RunDir:
        """An existing run; a folder without ``preset.toml`` is a UserError naming it."""
        run = cls(Path(path))
        if not run.preset.is_file():
            if run.path.is_dir() and all(is_temp(f.name) or f.name == LOCK_NAME for f in run.path.iterdir()):
                raise UserError(
                    f"{run.path}: not a run directory: it has no preset.toml (a run killed while starting?); "
                    "delete it or start a new run"
                )
            raise UserError(f"{run.path}: not a run directory (no preset.toml); pass runs/<name>/<N>")
        return run

    @staticmethod
    def is_run(path: str | os.PathLike) -> bool:
        return (Path(path) / "preset.toml").is_file()

    @classmethod
    def numbered(cls, parent: str | os.PathLike) -> list[RunDir]:
        """The numbered runs inside ``parent`` (``runs/quickstart``), oldest first."""
        p = Path(parent)
        if not p.is_dir():
            return []
        return [cls(d) for d in sorted((d for d in p.iterdir() if d.name.isdigit()), key=lambda d: int(d.name))]

    # ------------------------------------------------------------------ the layout
    @property
    def preset(self) -> Path:
        return self.path / "preset.toml"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.csv"

    @property
    def state(self) -> Path:
        return self.path / "state.pt"

    @property
    def manifest(self) -> Path:
        return self.path / "checkpoint.json"

    @property
    def log_file(self) -> Path:
        return self.path / "log.txt"

    @property
    def weights_dir(self) -> Path:
        return self.path / "weights"

    def weights(self, name: str) -> Path:
        """``weights/<name>.safetensors`` (last, best, ema)."""
        return self.weights_dir / f"{name}.safetensors"

    @property
    def eval_dir(self) -> Path:
        return self.path / "eval"

    @property
    def export_dir(self) -> Path:
        """``export/``: models written by `seg export` and their parity reports."""
        return self.path / "export"

    @property
    def plots_dir(self) -> Path:
        return self.path / "plots"

    @property
    def tensorboard_dir(self) -> Path:
        return self.path / "tensorboard"

    @property
    def wandb_dir(self) -> Path:
        """Where W&B keeps its files (``wandb.init(dir=<run>)`` writes ``<run>/wandb/``)."""
        return self.path / "wandb"

    @property
    def report(self) -> Path:
        return self.path / "report.html"

    @property
    def environment(self) -> Path:
        """``environment.json``: versions, device and threads of each start and resume."""
        return self.path / "environment.json"

    def eval_report(self, split: str) -> Path:
        """A fresh ``eval/<split>.json`` (``<split>-2.json``... when taken)."""
        return next_free_path(self.eval_dir / f"{split}.json")

    def best_weights(self) -> Path | None:
        """``best`` weights, else ``last``, else None."""
        return next((w for w in (self.weights(n) for n in WEIGHTS_PREFERENCE) if w.is_file()), None)

    # ------------------------------------------------------------------ small files
    def write_preset(self, text: str) -> None:
        atomic_write_text(self.preset, text)

    def read_metrics(self) -> list[dict[str, Any]]:
        """metrics.csv rows with ints and floats parsed (empty cells → None)."""
        if not self.metrics.is_file():
            return []
        with self.metrics.open(newline="") as f:
            return [
                {k: (int(v) if k in _INT_FIELDS else float(v) if v else None) for k, v in r.items()}
                for r in csv.DictReader(f)
            ]

    @staticmethod
    def metrics_text(rows: list[dict[str, Any]]) -> str:
        """metrics.csv's text for ``rows``."""
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
        return buf.getvalue()

    def write_metrics(self, rows: list[dict[str, Any]]) -> None:
        """Rewrite metrics.csv atomically with ``rows``."""
        atomic_write_text(self.metrics, self.metrics_text(rows))

    def log(self, text: str) -> None:
        """Append a timestamped line to log.txt."""
        with self.log_file.open("a", encoding="utf-8", errors="surrogateescape") as f:  # names as their bytes
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}\n")


def resolve_weights(path: str | os.PathLike) -> Path:
    """WEIGHTS_OR_RUN → a .safetensors file.

    A file is used as is; a run directory gives ``weights/best.safetensors`` (else last); a
    folder of numbered runs (``runs/quickstart``) gives its latest run that has weights.
    """
    p = Path(path)
    if p.is_file():
        return p
    if not p.exists():
        raise CheckpointError(f"{p}: no such weights file or run directory")
    for run in (RunDir(p), *reversed(RunDir.numbered(p))):
        found = run.best_weights()
        if found is not None:
            return found
    raise CheckpointError(f"{p}: no weights/best.safetensors or weights/last.safetensors in this run directory")


def run_of_weights(weights: str | os.PathLike) -> RunDir | None:
    """The run a weights file belongs to (``<run>/weights/x.safetensors``), or None."""
    w = Path(weights)
    if w.parent.name == "weights" and RunDir.is_run(w.parent.parent):
        return RunDir(w.parent.parent)
    return None
