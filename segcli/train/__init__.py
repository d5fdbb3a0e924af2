"""Training: the loop (:mod:`.trainer`), what is due when (:mod:`.budget`), the run's state and its commits
to disk (:mod:`.state`, :mod:`.commit`), resume and extend (:mod:`.extend`), the auto recipe
(:mod:`.auto_recipe`), optimisers and schedules (:mod:`.optim`), EMA weights (:mod:`.ema`), initialising from
other weights (:mod:`.init_from`) and what a failure leaves behind (:mod:`.failures`).

The top of the engine: it uses infer (validation), report (logs, plots, the run report) and core.
Public calls: :func:`train` (the trainer `seg train` runs), :func:`training_preset` (the preset `seg train` and
``segcli.train(...)`` load) and :class:`TrainRun` (what ``segcli.train(...)`` returns), imported lazily so
``import segcli.train`` stays cheap.

The package itself is callable: ``from segcli import train`` gives this package (a subpackage's name wins over
anything ``segcli`` could put there, once it is imported), and ``train("quickstart", data=..., epochs=3)`` is
:func:`segcli.train.fit.fit` (training from Python keywords: ``data=``, ``epochs=``, ``**{"optim.lr": 1e-3}``).
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING, Any

from segcli.lazy import lazy_names

if TYPE_CHECKING:  # pragma: no cover
    from segcli.train.fit import TrainRun as TrainRun
    from segcli.train.fit import training_preset as training_preset
    from segcli.train.trainer import train as train

_PUBLIC = {
    "train": "segcli.train.trainer",
    "TrainRun": "segcli.train.fit",
    "training_preset": "segcli.train.fit",
}


__getattr__ = lazy_names(__name__, _PUBLIC)


class _CallablePackage(types.ModuleType):
    """``segcli.train`` as a module that can be called: ``segcli.train(...)`` is :func:`fit`."""

    def __call__(
        self,
        preset: Any,
        data: Any = None,
        epochs: int | None = None,
        *,
        overrides: Any = (),
        verbose: bool = False,
        callbacks: Any = (),
        **keys: Any,
    ) -> TrainRun:
        """Train ``preset`` on ``data`` for ``epochs`` with ``overrides`` and ``keys`` on top, through the trainer
        `seg train` runs, and return the :class:`TrainRun` (:func:`segcli.train.fit.fit`, which says more)."""
        from segcli.train.fit import fit

        return fit(preset, data, epochs, overrides=overrides, verbose=verbose, callbacks=callbacks, **keys)


sys.modules[__name__].__class__ = _CallablePackage
