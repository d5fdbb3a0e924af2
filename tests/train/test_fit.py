"""Training from Python (segcli/train/fit.py): keywords become the overrides `seg train` takes, the preset is
loaded once and handed to the same trainer, and the result names the run, its metrics and its model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from segcli.config.load import LoadedPreset
from segcli.errors import UserError
from segcli.train import fit as fit_module
from segcli.train.fit import TrainRun, fit, training_preset
from segcli.train.trainer import TrainResult


def test_keywords_map_to_preset_keys_after_the_overrides(tmp_path: Path) -> None:
    loaded = training_preset(
        "quickstart",
        ["train.epochs=7", "train.seed=3"],
        {"data": tmp_path, "epochs": 4, "optim.lr": 1e-3, "augment.scale": (0.5, 1.0), "batch_size": 2, "x": None},
    )
    p = loaded.preset
    assert (p.data.root, p.train.epochs, p.train.seed) == (str(tmp_path), 4, 3)  # the keyword wins over the text
    assert (p.optim.lr, p.augment.scale, p.data.batch_size) == (1e-3, (0.5, 1.0), 2)
    assert any("batch_size=2 read as data.batch_size=2" in n for n in loaded.notes)  # the command line's short keys


def test_fit_hands_the_loaded_preset_to_the_engines_train(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The one training call `seg train` makes, with the preset loaded once; nothing trains here."""
    seen: dict[str, Any] = {}

    def fake_train(preset: Any, callbacks: Any = ()) -> TrainResult:
        seen["preset"], seen["callbacks"] = preset, list(callbacks)
        return TrainResult(tmp_path / "runs" / "q" / "1", 2, {"mIoU": 0.5, "epoch": 2}, {"mIoU": 0.4}, 1.5)

    monkeypatch.setattr(fit_module, "train", fake_train)
    run = fit("quickstart", data=tmp_path, epochs=2, overrides=["train.seed=5"], **{"optim.lr": 0.01})
    assert isinstance(seen["preset"], LoadedPreset)
    p = seen["preset"].preset
    assert (p.data.root, p.train.epochs, p.train.seed, p.optim.lr) == (str(tmp_path), 2, 5, 0.01)
    assert seen["callbacks"] == []  # quiet unless verbose
    assert isinstance(run, TrainRun) and run.run_dir == tmp_path / "runs" / "q" / "1"
    assert (run.metrics["mIoU"], run.last["mIoU"], run.epochs, run.seconds) == (0.5, 0.4, 2, 1.5)


def test_a_loaded_preset_takes_no_more_keys_and_several_devices_need_the_command_line() -> None:
    loaded = training_preset("quickstart")
    with pytest.raises(UserError, match="already loaded"):
        fit(loaded, epochs=3)
    with pytest.raises(UserError, match="seg train"):
        fit("quickstart", **{"train.devices": 2})


def test_the_run_gives_its_metrics_and_its_model(trained_run: TrainRun, shapes_root: Path) -> None:
    """The session's tiny run, trained through ``segcli.train``: best metrics, the run directory, the model."""
    assert isinstance(trained_run, TrainRun)
    assert (trained_run.run_dir / "weights" / "best.safetensors").is_file()
    assert 0.0 <= trained_run.metrics["mIoU"] <= 1.0 and trained_run.epochs == 2
    model = trained_run.model
    assert model is trained_run.model  # loaded once
    assert model.weights == trained_run.run_dir / "weights" / "best.safetensors"
    pred = model.predict(np.zeros((20, 30, 3), np.uint8))
    assert pred.mask.shape == (20, 30) and pred.classes == model.classes
