"""``segcli.train(...)``: a training run from Python, in one call.

``fit("quickstart", data="data/shapes", epochs=3, **{"optim.lr": 1e-3})`` turns its keywords into the
``key=value`` overrides `seg train` takes (``data`` → ``data.root``, ``epochs`` → ``train.epochs``; a dotted key
as it is; a bare key such as ``lr`` or ``batch_size`` resolved by the same short-key rules as the command line),
loads and validates the preset once (:func:`training_preset`), and runs the one training call
(:func:`segcli.train.trainer.train`) that `seg train` runs. The result names the run directory, holds its best
validation metrics, and opens the trained model as a :class:`segcli.Model` on first use.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segcli.config.load import LoadedPreset, load_preset
from segcli.config.schema import Preset
from segcli.core.callbacks import Callback
from segcli.core.factory import override_text
from segcli.errors import UserError
from segcli.infer.model import Model
from segcli.train.trainer import TrainResult, train


def training_preset(
    preset: str | os.PathLike | None, overrides: Iterable[str] = (), keys: Mapping[str, Any] | None = None
) -> LoadedPreset:
    """The validated preset a run trains with: ``preset`` (a bundled name or a .toml path; None: the defaults),
    then ``overrides`` (``key=value`` texts), then ``keys`` (Python values; a dotted key as it is, a bare one such
    as ``data``, ``epochs`` or ``lr`` by the command line's short-key rules, ``config.keys``). The preset is
    loaded once here and handed to the trainer as it is."""
    texts = [override_text(k, v) for k, v in (keys or {}).items() if v is not None]
    return load_preset(preset, [*overrides, *texts])


@dataclass
class TrainRun:
    """A finished training run: ``run_dir``; ``metrics``, the best validation row (mIoU, pixel_accuracy, per-class
    IoU, epoch...); ``last``, the last one; ``epochs`` and ``seconds``; ``result``, the trainer's own
    :class:`TrainResult`; ``model``, the run's best weights as a :class:`segcli.Model` (loaded on first use)."""

    run_dir: Path
    metrics: dict[str, Any]
    last: dict[str, Any]
    epochs: int
    seconds: float
    result: TrainResult
    device: str = "auto"
    _model: Model | None = field(default=None, repr=False)

    @property
    def model(self) -> Model:
        if self._model is None:
            self._model = Model(self.run_dir, self.device)
        return self._model


class _Printed(Callback):
    """``verbose``: the run directory, the notes and each epoch's line, printed."""

    def on_message(self, text: str) -> None:
        print(text)

    def on_epoch_end(self, epoch: int, row: dict[str, Any], improved: bool) -> None:
        if "mIoU" in row:
            print(f"epoch {epoch + 1}: loss {row['train_loss']:.4f}  val mIoU {row['mIoU']:.4f}")


def fit(
    preset: str | os.PathLike | LoadedPreset | Preset,
    data: str | os.PathLike | None = None,
    epochs: int | None = None,
    *,
    overrides: Iterable[str] = (),
    verbose: bool = False,
    callbacks: Iterable[Callback] = (),
    **keys: Any,
) -> TrainRun:
    """Train ``preset`` (a bundled name, a .toml path, or a preset already loaded) on ``data`` for ``epochs``,
    with ``overrides`` (``["optim.lr=0.001"]``) and ``keys`` (``**{"optim.lr": 1e-3}``, ``batch_size=8``) on
    top, through the trainer `seg train` runs; returns a :class:`TrainRun`. ``verbose`` prints each epoch;
    ``callbacks`` receive the trainer's events. One process: ``train.devices`` > 1 is `seg train`'s (torchrun)."""
    if isinstance(preset, (LoadedPreset, Preset)):
        if data is not None or epochs is not None or keys or list(overrides):
            raise UserError("a preset already loaded takes no data, epochs or overrides; apply them when loading it")
        target, notes = preset, ()
    else:
        target = training_preset(preset, overrides, {"data": data, "epochs": epochs, **keys})
        notes = target.notes
    p = target.preset if isinstance(target, LoadedPreset) else target
    if p.train.devices > 1 and "WORLD_SIZE" not in os.environ:
        raise UserError(f"train.devices = {p.train.devices} trains through torchrun: run `seg train` with it")
    for note in notes if verbose else ():
        print(f"note: {note}")
    result = train(target, callbacks=[*([_Printed()] if verbose else []), *callbacks])
    return TrainRun(
        Path(result.run_dir),
        dict(result.best),
        dict(result.last),
        result.epochs,
        result.seconds,
        result,
        p.train.device,
    )
