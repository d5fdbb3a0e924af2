"""The train package itself (segcli/train/__init__.py): its public names, imported on first use, and the
package as a call, so that ``from segcli import train; train(...)`` works however the package was imported."""

from __future__ import annotations

import inspect
import subprocess
import sys
from typing import Any

import pytest


def test_the_package_is_callable_and_calls_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    import segcli.train.trainer  # the subpackage's name is now bound on segcli: the package, not a function
    from segcli import train
    from segcli.train import fit as fit_module

    calls: list[Any] = []
    monkeypatch.setattr(fit_module, "fit", lambda *a, **k: calls.append((a, k)) or "run")
    assert train("quickstart", data="d", epochs=3) == "run"
    assert calls == [(("quickstart", "d", 3), {"overrides": (), "verbose": False, "callbacks": ()})]
    assert list(inspect.signature(train).parameters)[:3] == ["preset", "data", "epochs"]  # shown by help(train)
    assert train.train is segcli.train.trainer.train  # the engine's call is still there
    assert {"TrainRun", "training_preset"} <= set(train._PUBLIC)
    assert train.fit is fit_module  # the module: its function is the package's call, not a second public name


def test_importing_segcli_imports_no_engine() -> None:
    """``import segcli`` is cheap: torch and the engine come with the first public name used; dir lists them."""
    code = (
        "import sys, segcli; assert 'torch' not in sys.modules and 'segcli.train' not in sys.modules; "
        "names = dir(segcli); print(','.join(n for n in names if not n.startswith('_')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert set(out.split(",")) == {"Model", "Prediction", "ProtocolChoices", "TrainRun", "build_model", "train"}
