"""Inference: the prediction core every path shares (:mod:`.predict_core`: resize, pad, slide, TTA), scoring a
dataset (:mod:`.evaluator`), writing predictions (:mod:`.predictor`), exporting and verifying graphs
(:mod:`.exporter`, :mod:`.backends`) and timing them (:mod:`.benchmarking`).

Public calls: :func:`evaluate`, :func:`predict`, :func:`export_model`, :func:`benchmark` (imported lazily so
``import segcli.infer`` stays cheap).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from segcli.infer.benchmarking import benchmark as benchmark
    from segcli.infer.evaluator import evaluate as evaluate
    from segcli.infer.exporter import export_model as export_model
    from segcli.infer.predictor import predict as predict

_PUBLIC = {
    "evaluate": "segcli.infer.evaluator",
    "predict": "segcli.infer.predictor",
    "export_model": "segcli.infer.exporter",
    "benchmark": "segcli.infer.benchmarking",
}


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        import importlib

        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(name)
