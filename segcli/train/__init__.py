"""Training: the loop (:mod:`.trainer`), what is due when (:mod:`.budget`), the run's state and its commits
to disk (:mod:`.state`, :mod:`.commit`), resume and extend (:mod:`.extend`), the auto recipe
(:mod:`.auto_recipe`), optimisers and schedules (:mod:`.optim`), EMA weights (:mod:`.ema`), initialising from
other weights (:mod:`.init_from`) and what a failure leaves behind (:mod:`.failures`).

The top of the engine: it uses infer (validation), report (logs, plots, the run report) and core.
Public call: :func:`train` (imported lazily so ``import segcli.train`` stays cheap).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from segcli.train.trainer import train as train

_PUBLIC = {"train": "segcli.train.trainer"}


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        import importlib

        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(name)
