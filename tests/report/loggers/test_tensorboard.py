"""The TensorBoard logger (segcli/report/loggers/tensorboard.py): scalars, images and hparams read back from the
event files, every log_every iterations, one run continued on resume."""

from __future__ import annotations

from pathlib import Path

import pytest

from segcli.core.callbacks import Callback, IterStats
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
    assert abs(acc.Scalars("val/loss")[-1].value - res.last["val_loss"]) < 1e-5
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


def test_tensorboard_continues_a_resumed_run(tiny_overrides: list[str]) -> None:
    pytest.importorskip("tensorboard")
    over = [*tiny_overrides, 'train.loggers=["tensorboard"]', "train.log_every=2", "train.epochs=1"]
    first = train("quickstart", over)
    train(resume=first.run_dir, extend=["train.epochs=2"])
    acc = _events(first.run_dir / "tensorboard")
    assert [e.step for e in acc.Scalars("train/loss")] == [2, 4, 6, 8]  # no step twice
    assert [e.step for e in acc.Scalars("val/mIoU")] == [4, 8]
