"""Inference: the prediction core every path shares (:mod:`.predict_core`: resize, pad, slide, TTA), scoring a
dataset (:mod:`.evaluator`), writing predictions (:mod:`.predictor`), exporting and verifying graphs
(:mod:`.exporter`, :mod:`.backends`) and timing them (:mod:`.benchmarking`).

Public calls: :func:`evaluate`, :func:`predict`, :func:`export_model`, :func:`benchmark`, :func:`calibrate`
(temperature scaling stored in the weights, :mod:`.calibration`), :class:`Model` (a model loaded once for Python
use: predictions in memory as :class:`Prediction`), with the objects they take: :class:`ProtocolChoices` (the
test protocol asked for, resolved against a checkpoint's preset into a
:class:`PredictionProtocol`) and their options, :class:`EvalOptions`, :class:`OutputOptions`,
:class:`ExportOptions` (with :class:`Int8Options` for an int8 export), :class:`BenchmarkOptions`,
:class:`CalibrateOptions` (imported lazily so ``import segcli.infer`` stays cheap).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from segcli.lazy import lazy_names

if TYPE_CHECKING:  # pragma: no cover
    from segcli.infer.benchmarking import BenchmarkOptions as BenchmarkOptions
    from segcli.infer.benchmarking import benchmark as benchmark
    from segcli.infer.calibration import CalibrateOptions as CalibrateOptions
    from segcli.infer.calibration import calibrate as calibrate
    from segcli.infer.evaluator import EvalOptions as EvalOptions
    from segcli.infer.evaluator import evaluate as evaluate
    from segcli.infer.exporter import ExportOptions as ExportOptions
    from segcli.infer.exporter import export_model as export_model
    from segcli.infer.model import Model as Model
    from segcli.infer.model import Prediction as Prediction
    from segcli.infer.predictor import OutputOptions as OutputOptions
    from segcli.infer.predictor import predict as predict
    from segcli.infer.protocol import PredictionProtocol as PredictionProtocol
    from segcli.infer.protocol import ProtocolChoices as ProtocolChoices
    from segcli.infer.quantize import Int8Options as Int8Options

_PUBLIC = {
    "evaluate": "segcli.infer.evaluator",
    "EvalOptions": "segcli.infer.evaluator",
    "predict": "segcli.infer.predictor",
    "OutputOptions": "segcli.infer.predictor",
    "export_model": "segcli.infer.exporter",
    "ExportOptions": "segcli.infer.exporter",
    "benchmark": "segcli.infer.benchmarking",
    "BenchmarkOptions": "segcli.infer.benchmarking",
    "ProtocolChoices": "segcli.infer.protocol",
    "Model": "segcli.infer.model",
    "Prediction": "segcli.infer.model",
    "PredictionProtocol": "segcli.infer.protocol",
    "Int8Options": "segcli.infer.quantize",
    "calibrate": "segcli.infer.calibration",
    "CalibrateOptions": "segcli.infer.calibration",
}


__getattr__ = lazy_names(__name__, _PUBLIC)
