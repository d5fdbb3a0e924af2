"""train.loggers: TensorBoard events read back, W&B offline runs, the errors for bad names and missing packages."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from segcli.cli.app import run
from segcli.config.load import load_preset
from segcli.config.loggers import LOGGERS
from segcli.core.callbacks import Callback, IterStats
from segcli.errors import PresetError
from segcli.report.loggers import flat_preset, make_loggers
from segcli.train.trainer import train


class Steps(Callback):
    """Counts iterations, to know how many train/loss points to expect."""

    def __init__(self) -> None:
        self.n = 0

    def on_iter_stats(self, stats: IterStats) -> None:
        self.n += 1


def _events(log_dir: Path):  # noqa: ANN202
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc


def test_tensorboard_scalars_images_and_hparams(tiny_overrides: list[str]) -> None:
    pytest.importorskip("tensorboard")
    steps = Steps()
    res = train(
        "quickstart", [*tiny_overrides, 'train.loggers=["csv","tensorboard"]', "train.log_every=1"], callbacks=[steps]
    )
    log_dir = res.run_dir / "tensorboard"
    assert list(log_dir.glob("events.out.tfevents.*"))
    assert (res.run_dir / "metrics.csv").is_file()  # csv stays on
    acc = _events(log_dir)
    tags = acc.Tags()
    loss = acc.Scalars("train/loss")
    assert len(loss) == steps.n == 8  # 16 images / batch 4 = 4 iterations, 2 epochs, log_every=1
    assert [e.step for e in loss] == list(range(1, 9))
    assert len(acc.Scalars("train/lr")) == 8
    assert len(acc.Scalars("train/epoch_loss")) == 2
    miou = acc.Scalars("val/mIoU")
    assert [e.step for e in miou] == [4, 8]  # one validation per epoch
    assert abs(miou[-1].value - res.last["mIoU"]) < 1e-5
    iou_tags = [t for t in tags["scalars"] if t.startswith("val_iou/")]
    assert "val_iou/background" in iou_tags
    assert {"val/confusion_matrix", "val/samples", "dataset/class_pixels"} <= set(tags["images"])
    assert len(acc.Images("val/samples")) == 2
    assert acc.Images("val/confusion_matrix")[-1].width > 100
    assert "preset/text_summary" in tags["tensors"]  # the resolved preset as text
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    start = HParamsPluginData.FromString(acc.PluginTagToContent("hparams")["_hparams_/session_start_info"])
    hp = start.session_start_info.hparams
    assert hp["train.loggers"].string_value == "['csv', 'tensorboard']" and hp["optim.lr"].number_value > 0


def test_tensorboard_logs_every_log_every(tiny_overrides: list[str]) -> None:
    pytest.importorskip("tensorboard")
    res = train("quickstart", [*tiny_overrides, 'train.loggers=["tensorboard"]', "train.log_every=3"])
    assert [e.step for e in _events(res.run_dir / "tensorboard").Scalars("train/loss")] == [3, 6]


def test_flat_preset_is_scalars_only() -> None:
    flat = flat_preset(load_preset("quickstart").preset)
    assert flat["optim.lr"] > 0 and isinstance(flat["loss.terms"], str)
    assert all(isinstance(v, (bool, int, float, str)) for v in flat.values())


def test_unknown_logger_lists_the_valid_ones(capfd: pytest.CaptureFixture) -> None:
    rc = run(["presets", "show", "quickstart", 'train.loggers=["csv","tensorbord"]'])
    err = capfd.readouterr().err
    assert rc == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "train.loggers" in err and "tensorbord" in err and "csv, tensorboard, wandb" in err
    assert 'did you mean "tensorboard"' in err


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
    assert make_loggers(["csv"]) == [] and LOGGERS.names() == ["csv", "tensorboard", "wandb"]


@pytest.fixture
def wandb_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """W&B in offline mode with every directory it writes in tmp_path and no key (no network, no prompt)."""
    pytest.importorskip("wandb", reason="wandb is not installed (pip install 'segcli[wandb]')")
    home = tmp_path / "wandb_home"
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(home / "dir"))
    for var in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(var, str(home / var.lower()))
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # any attempt to reach a server fails at once
    return home


def test_wandb_offline_run(tiny_overrides: list[str], wandb_offline: Path) -> None:
    res = train("quickstart", [*tiny_overrides, 'train.loggers=["csv","wandb"]', "train.log_every=2"])
    runs = list((res.run_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, list((res.run_dir / "wandb").iterdir())
    assert list(runs[0].glob("run-*.wandb")) and (runs[0] / "files").is_dir()
    run_id = (res.run_dir / "wandb" / "run_id.txt").read_text().strip()
    assert runs[0].name.endswith(run_id)
    # offline, config, history and summary live in the run's record file, written by W&B's service process
    needles = (b"optim", b"train/loss", b"train/lr", b"val/mIoU", b"val_iou/background", b"best/mIoU")
    record_file = next(runs[0].glob("run-*.wandb"))
    for _ in range(60):  # the service may still be writing it on a loaded machine: wait for it, up to ~30 s
        records = record_file.read_bytes()
        if all(n in records for n in needles):
            break
        time.sleep(0.5)
    missing = [n for n in needles if n not in records]
    assert not missing, (missing, len(records), sorted(p.name for p in runs[0].rglob("*")))
    files = runs[0] / "files"
    media = list((files / "media" / "images").rglob("*.png"))
    assert any("samples" in str(m) for m in media) and any("confusion_matrix" in str(m) for m in media)


def test_wandb_mode_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from segcli.report.loggers.wandb import wandb_mode

    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    assert wandb_mode() == "offline"  # no key: never a login prompt
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert wandb_mode() == "online"
    monkeypatch.setenv("WANDB_MODE", "Disabled")
    assert wandb_mode() == "disabled"


def test_wandb_that_cannot_start_is_one_line(
    tiny_overrides: list[str], wandb_offline: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("WANDB_MODE", "sideways")  # not a mode wandb knows
    rc = run(["train", "quickstart", *tiny_overrides, 'train.loggers=["wandb"]', "train.epochs=1"])
    err = capfd.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith("error:") and "W&B could not start in sideways mode" in line and "WANDB_MODE=offline" in line


@pytest.mark.slow
def test_train_to_a_file_with_loggers_is_plain_text(
    tiny_overrides: list[str], wandb_offline: Path, tmp_path: Path
) -> None:
    """`seg train ... > file 2>&1` with TensorBoard and W&B on: plain lines, no terminal control codes."""
    import os
    import subprocess

    pytest.importorskip("tensorboard")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TERM": "xterm-256color"}
    env.pop("FORCE_COLOR", None)
    env.pop("WANDB_SILENT", None)  # let W&B print what it prints to a file
    cmd = [sys.executable, "-m", "segcli", "train", "quickstart", *tiny_overrides, "train.log_every=2"]
    cmd.append('train.loggers=["csv","tensorboard","wandb"]')
    out = tmp_path / "train.out"
    with out.open("wb") as f:
        done = subprocess.run(
            cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=Path(__file__).parents[3], timeout=300
        )
    text = out.read_text()
    assert done.returncode == 0, text
    assert "\x1b" not in text and "\r" not in text, repr(text[:2000])
    assert sum(line.startswith("epoch 2/2 it 4/4") for line in text.splitlines()) == 1


def test_tensorboard_continues_a_resumed_run(tiny_overrides: list[str]) -> None:
    pytest.importorskip("tensorboard")
    over = [*tiny_overrides, 'train.loggers=["tensorboard"]', "train.log_every=2", "train.epochs=1"]
    first = train("quickstart", over)
    train(resume=first.run_dir, extend=["train.epochs=2"])
    acc = _events(first.run_dir / "tensorboard")
    assert [e.step for e in acc.Scalars("train/loss")] == [2, 4, 6, 8]  # no step twice
    assert [e.step for e in acc.Scalars("val/mIoU")] == [4, 8]


def test_wandb_continues_a_resumed_run(tiny_overrides: list[str], wandb_offline: Path) -> None:
    first = train("quickstart", [*tiny_overrides, 'train.loggers=["wandb"]', "train.epochs=1"])
    run_id = (first.run_dir / "wandb" / "run_id.txt").read_text().strip()
    train(resume=first.run_dir, extend=["train.epochs=2"])
    runs = sorted((first.run_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 2 and all(r.name.endswith(run_id) for r in runs)  # one W&B run, two attempts
