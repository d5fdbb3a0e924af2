"""Building the loggers of train.loggers (segcli/report/loggers/__init__.py): the flat preset they record, the
pictures they pick up, and a missing package refused before a run starts."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from segcli.cli.app import run
from segcli.config.load import load_preset
from segcli.config.loggers import LOGGERS, LoggerInfo
from segcli.core.callbacks import Callback
from segcli.errors import PresetError
from segcli.report.loggers import flat_preset, make_loggers, plot_images


def test_flat_preset_is_scalars_only() -> None:
    flat = flat_preset(load_preset("quickstart").preset)
    assert flat["optim.lr"] > 0 and isinstance(flat["loss.terms"], str)
    assert all(isinstance(v, (bool, int, float, str)) for v in flat.values())


@pytest.mark.parametrize("name", ["tensorboard", "wandb"])
def test_missing_package_names_the_extra(
    name: str, shapes_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, name, None)  # import (and find_spec) of the package now fails
    with pytest.raises(PresetError, match=rf"pip install 'segcli\[{name}\]'"):
        make_loggers(["csv", name])
    rc = run(
        ["train", "quickstart", f"data.root={shapes_root}", f"train.out_dir={tmp_path}", f'train.loggers=["{name}"]']
    )
    err = capfd.readouterr().err
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and f"pip install 'segcli[{name}]'" in lines[0] and "train.loggers" in lines[0]
    assert not any(tmp_path.iterdir())  # refused before a run directory was made


def test_csv_alone_adds_no_callback() -> None:
    assert make_loggers(["csv"]) == [] and {"csv", "tensorboard", "wandb"} <= set(LOGGERS.names())


def test_flat_preset_writes_lists_as_their_text() -> None:
    preset = load_preset("quickstart", ["augment.crop_size=[64, 32]", 'loss.terms=["ce", "dice"]']).preset
    flat = flat_preset(preset)
    assert flat["augment.crop_size"] == "[64, 32]" and flat["loss.terms"] == "['ce', 'dice']"
    assert flat["train.epochs"] == preset.train.epochs and flat["model.name"] == preset.model.name
    assert flat["loss.ce.label_smoothing"] == 0.0  # nested tables flatten to dotted keys


def test_plot_images_lists_the_validations_pictures_that_exist(tmp_path: Path) -> None:
    assert plot_images(tmp_path, 0) == {}
    (tmp_path / "confusion_matrix.png").write_bytes(b"png")
    (tmp_path / "samples_epoch003.png").write_bytes(b"png")
    (tmp_path / "curves.png").write_bytes(b"png")  # the loggers draw their own curves
    assert plot_images(tmp_path, 2) == {
        "confusion_matrix": tmp_path / "confusion_matrix.png",
        "samples": tmp_path / "samples_epoch003.png",
    }
    assert plot_images(tmp_path, 0) == {"confusion_matrix": tmp_path / "confusion_matrix.png"}


def test_a_logger_named_twice_is_built_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import segcli.report.loggers as loggers

    class Fake(Callback):
        pass

    monkeypatch.setattr(loggers.importlib, "import_module", lambda name: type("M", (), {"Logger": Fake}))
    monkeypatch.setattr(loggers, "logger_problems", lambda names: [])
    monkeypatch.setattr(LOGGERS, "_items", {**LOGGERS._items, "fake": LoggerInfo(module="fake_module", cls="Logger")})
    built = make_loggers(["fake", "csv", "fake"])
    assert len(built) == 1 and isinstance(built[0], Fake)


def test_an_unknown_name_is_a_preset_error() -> None:
    with pytest.raises(PresetError, match=r"train.loggers: unknown logger 'nope'; valid: "):
        make_loggers(["csv", "nope"])
