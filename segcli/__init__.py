"""segcli: semantic segmentation from one command, `seg`, and from Python (docs/python.md).

``from segcli import Model, train, build_model``: :class:`Model` loads a run, a weights file, an exported graph or
a fresh preset model once and predicts in memory; ``train(...)`` (the ``segcli.train`` package, callable) trains a
preset through the trainer `seg train` runs; ``build_model(...)`` is a network as a plain ``nn.Module``. Each is
imported on first use, so ``import segcli`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from segcli.lazy import lazy_names

if TYPE_CHECKING:  # pragma: no cover
    from segcli import train as train
    from segcli.core.factory import build_network as build_model  # noqa: F401 - in __all__
    from segcli.infer.model import Model as Model
    from segcli.infer.model import Prediction as Prediction
    from segcli.infer.protocol import ProtocolChoices as ProtocolChoices
    from segcli.train.fit import TrainRun as TrainRun

__version__ = "0.1.0"

# public name → where it lives (segcli.lazy.lazy_names): "module:attribute", "module:" for the module itself
_PUBLIC = {
    "Model": "segcli.infer.model",
    "Prediction": "segcli.infer.model",
    "ProtocolChoices": "segcli.infer.protocol",
    "train": "segcli.train:",
    "TrainRun": "segcli.train.fit",
    "build_model": "segcli.core.factory:build_network",
}
__all__ = [*_PUBLIC, "__version__"]


__getattr__ = lazy_names(__name__, _PUBLIC)


def __dir__() -> list[str]:
    return sorted({*__all__, *(n for n in globals() if n.startswith("__"))})
