"""Checkpoint and validation cadence in iterations: mid-epoch saves, resuming from the next batch,
the minimum time between saves, and validation every N iterations."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from conftest import FakeClock
from safetensors.torch import load_file

from segcli.core.callbacks import Callback
from segcli.errors import TrainingInterrupted
from segcli.train.trainer import train


class Kill(Callback):
    """Raises ``exc`` at (epoch, iteration): a RuntimeError is a kill (nothing saved), KeyboardInterrupt is Ctrl-C."""

    def __init__(self, epoch: int, it: int, exc: BaseException) -> None:
        self.at, self.exc = (epoch, it), exc

    def on_iter_end(self, epoch: int, it: int, loss: float, lr: float, images_per_s: float) -> None:
        if (epoch, it) == self.at:
            raise self.exc


def rows(run_dir: Path) -> list[dict]:
    return list(csv.DictReader((run_dir / "metrics.csv").open()))


def same_weights(a: Path, b: Path) -> None:
    wa, wb = load_file(str(a / "weights" / "last.safetensors")), load_file(str(b / "weights" / "last.safetensors"))
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


@pytest.mark.slow
def test_resume_from_a_mid_epoch_save_is_bitwise_identical(tiny_overrides: list[str]) -> None:
    over = [*tiny_overrides, "train.epochs=3", "train.deterministic=true", "data.num_workers=0"]
    full = train("quickstart", over)
    parent = full.run_dir.parent
    # 4 iterations per epoch; saves every 2 iterations: the kill at epoch 2, iteration 3 lands right after the
    # save taken after iteration 2
    cadence = [*over, "train.save_every=2", "train.save_min_seconds=0"]
    with pytest.raises(RuntimeError, match="killed"):
        train("quickstart", cadence, callbacks=[Kill(1, 2, RuntimeError("killed"))])
    killed = parent / "2"
    state = torch.load(killed / "state.pt", weights_only=True)
    assert (state["epoch"], state["iter"], state["step"]) == (1, 2, 6)
    assert [r["epoch"] for r in rows(killed)] == ["1"]  # the partial epoch has no row
    train(resume=killed)
    assert [r["epoch"] for r in rows(killed)] == ["1", "2", "3"]  # each epoch once
    same_weights(full.run_dir, killed)
    assert [r["train_loss"] for r in rows(killed)] == [r["train_loss"] for r in rows(full.run_dir)]
    assert [r["iterations"] for r in rows(killed)] == [r["iterations"] for r in rows(full.run_dir)]

    # Ctrl-C between two saves: the interrupted save keeps the current batch, resume goes on from the next
    cadence = [*over, "train.save_every=100", "train.save_min_seconds=0"]
    with pytest.raises(TrainingInterrupted, match="resume with seg train --resume"):
        train("quickstart", cadence, callbacks=[Kill(1, 2, KeyboardInterrupt())])
    stopped = parent / "3"
    state = torch.load(stopped / "state.pt", weights_only=True)
    assert (state["epoch"], state["iter"], state["step"]) == (1, 3, 7)
    assert "and epoch 2 up to iteration 3 of 4" in (stopped / "log.txt").read_text()
    train(resume=stopped)
    assert [r["epoch"] for r in rows(stopped)] == ["1", "2", "3"]
    same_weights(full.run_dir, stopped)


def test_save_min_seconds_spaces_mid_epoch_saves(tiny_overrides: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import segcli.train.trainer as trainer

    fake = FakeClock()
    monkeypatch.setattr(trainer, "clock", fake)
    saves: list[tuple[float, bool]] = []
    real_commit = trainer.commit

    def recording_commit(run, epoch, step, files):  # noqa: ANN001, ANN202
        saves.append((fake.now, run.metrics in files))
        real_commit(run, epoch, step, files)

    monkeypatch.setattr(trainer, "commit", recording_commit)
    over = [*tiny_overrides, "train.epochs=3", "train.save_every=1", "train.save_min_seconds=3"]
    train("quickstart", over, callbacks=[fake])
    mid = [t for t, epoch_end in saves if not epoch_end]
    assert [epoch_end for _, epoch_end in saves].count(True) == 3  # every epoch end still saves
    assert mid and all(b - a >= 3 for a, b in zip(mid, mid[1:]))
    # and never sooner than 3 s after the previous save of any kind
    times = [t for t, _ in saves]
    for (t, epoch_end), prev in zip(saves[1:], times):
        assert epoch_end or t - prev >= 3


def test_validate_every_n_iterations(tiny_overrides: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import segcli.train.trainer as trainer

    calls: list[int] = []
    real = trainer.confusion_with  # the model's validation

    def counting(*a, **k):  # noqa: ANN002, ANN003, ANN202
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(trainer, "confusion_with", counting)
    # 4 iterations per epoch, 3 epochs: validations after iterations 5 and 10 (inside epochs 2 and 3) and at the end
    res = train("quickstart", [*tiny_overrides, "train.epochs=3", "train.val_every_iters=5"])
    r = rows(res.run_dir)
    assert [x["epoch"] for x in r] == ["1", "2", "3"]
    assert r[0]["mIoU"] == "" and r[1]["mIoU"] != "" and r[2]["mIoU"] != ""
    assert len(calls) == 3
    assert (res.run_dir / "weights" / "best.safetensors").is_file()


def test_early_stop_inside_an_epoch_ends_it_without_validating_twice(
    tiny_overrides: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import segcli.train.trainer as trainer

    scores = iter([0.5, 0.6, 0.55])

    class FakeMatrix:
        mat = torch.zeros(5, 5, dtype=torch.int64)  # the validation event hands the matrix to callbacks

        def compute(self, absent: str = "nan", names: object = None) -> dict:
            return {"mIoU": next(scores), "pixel_accuracy": 0.9, "mean_accuracy": 0.8, "fwIoU": 0.8, "mean_dice": 0.7}

    monkeypatch.setattr(trainer, "confusion_with", lambda *a, **k: FakeMatrix())  # the model's validation
    # validations after iterations 3, 6 and 9 (the first of epoch 3): patience 1 stops right there
    res = train("quickstart", [*tiny_overrides, "train.epochs=5", "train.val_every_iters=3", "train.patience=1"])
    r = rows(res.run_dir)
    assert [(x["epoch"], x["iterations"], x["mIoU"]) for x in r] == [
        ("1", "4", "0.5"),
        ("2", "8", "0.6"),
        ("3", "9", "0.55"),
    ]
    assert res.best["mIoU"] == 0.6
    state = torch.load(res.run_dir / "state.pt", weights_only=True)
    assert state["finished"] is True and state["iter"] == 0 and state["epoch"] == 3


def test_val_every_and_val_every_iters_conflict(tiny_overrides: list[str], tmp_path: Path) -> None:
    from segcli.errors import UserError

    with pytest.raises(UserError, match=r"train.val_every = 2 and train.val_every_iters = 5 both set"):
        train("quickstart", [*tiny_overrides, "train.val_every=2", "train.val_every_iters=5"])
    assert not (tmp_path / "runs").exists()
