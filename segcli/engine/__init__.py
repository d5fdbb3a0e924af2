"""The engine: pure functions behind every command (train, evaluate, predict).

Each returns a result object and never prints tables or exits; the CLI formats results.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from segcli.engine.evaluator import evaluate as evaluate
    from segcli.engine.predictor import predict as predict
    from segcli.engine.trainer import train as train


def __getattr__(name: str):  # noqa: ANN202 - lazy so `import segcli.engine` stays cheap
    if name == "train":
        from segcli.engine.trainer import train

        return train
    if name == "evaluate":
        from segcli.engine.evaluator import evaluate

        return evaluate
    if name == "predict":
        from segcli.engine.predictor import predict

        return predict
    raise AttributeError(name)
