"""The trainer end to end on tiny data: iterations, accumulation, EMA, early stopping, time budgets,
the callback events, and that a bad preset leaves no run directory behind."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch
from cli_helpers import train_args, user_error
from conftest import FakeClock

from segcli.core.callbacks import Callback, IterStats, RunStart
from segcli.errors import UserError
from segcli.train.trainer import train


def rows(run_dir: Path) -> list[dict]:
    return list(csv.DictReader((run_dir / "metrics.csv").open()))


@pytest.mark.slow
def test_iterations_accumulation_ema(tiny_overrides: list[str]) -> None:
    res = train("quickstart", [*tiny_overrides, "train.iters=5", "train.accumulate=2", "train.ema=0.9"])
    r = rows(res.run_dir)
    # 16 images / batch 4 = 4 batches = 2 optimiser steps per epoch → 3 epochs, the last one partial
    assert [int(x["iterations"]) for x in r] == [2, 4, 5]
    assert all(x["ema_mIoU"] for x in r)
    assert (res.run_dir / "weights" / "ema.safetensors").is_file()


def test_early_stopping(tiny_overrides: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The monitored mIoU peaks at epoch 2; with patience 2 the run stops after epoch 4."""
    import segcli.train.trainer as trainer

    scores = iter([0.5, 0.6, 0.55, 0.6, 0.9, 0.9, 0.9, 0.9])

    class FakeMatrix:
        mat = torch.zeros(5, 5, dtype=torch.int64)  # the validation event hands the matrix to callbacks

        def compute(self, absent: str = "nan", names: object = None) -> dict:
            return {"mIoU": next(scores), "pixel_accuracy": 0.9, "mean_accuracy": 0.8, "fwIoU": 0.8, "mean_dice": 0.7}

    monkeypatch.setattr(trainer, "confusion_with", lambda *a, **k: FakeMatrix())  # the model's validation
    res = train("quickstart", [*tiny_overrides, "train.epochs=8", "train.patience=2"])
    assert [float(x["mIoU"]) for x in rows(res.run_dir)] == [0.5, 0.6, 0.55, 0.6]  # 0.6 again is no improvement
    assert res.best["epoch"] == 2


def test_time_budget_ends_annealed_with_validation(tiny_overrides: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import segcli.train.trainer as trainer

    fake = FakeClock()
    monkeypatch.setattr(trainer, "clock", fake)
    # 16 images / batch 4 = 4 iterations per epoch; a 10 s budget at 1 s per iteration is 10 iterations
    # the budget decides the length: train.epochs back at its default (quickstart sets 12, tiny_overrides 2)
    over = [*tiny_overrides, "train.epochs=10", "train.time_budget=10s", "schedule.warmup_iters=0"]
    res = train("quickstart", over, callbacks=[fake])
    r = rows(res.run_dir)
    assert [int(x["iterations"]) for x in r] == [4, 8, 10]  # stopped mid-epoch 3, exactly at the budget
    assert all(x["mIoU"] != "" for x in r)  # every epoch validated, the cut-short last one included
    assert not math.isnan(float(r[-1]["mIoU"]))
    # the lr of the last step was set at 9/10 of the budget: poly(0.9) of the remaining 10%
    assert float(r[-1]["lr"]) == pytest.approx(0.002 * 0.1**0.9, rel=1e-4)
    state = torch.load(res.run_dir / "state.pt", weights_only=True)
    assert state["elapsed"] == pytest.approx(10.0) and state["finished"] is True


class Recorder(Callback):
    """Keeps every event the trainer sends, in order."""

    def __init__(self) -> None:
        self.events: list[tuple] = []

    def on_train_start(self, start: RunStart) -> None:
        self.events.append(("start", start.epochs, start.iters_per_epoch, start.first_epoch, start.resumed))

    def on_iter_end(self, epoch: int, it: int, loss: float, lr: float, images_per_s: float) -> None:
        assert math.isfinite(loss) and lr > 0 and images_per_s > 0
        self.events.append(("iter", epoch, it))

    def on_epoch_end(self, epoch: int, row: dict, improved: bool) -> None:
        self.events.append(("epoch", epoch, row["epoch"], "mIoU" in row))

    def on_train_end(self, result: object) -> None:
        self.events.append(("end", result.epochs))


def test_callbacks_see_every_event_in_order(tiny_overrides: list[str]) -> None:
    rec = Recorder()
    res = train("quickstart", [*tiny_overrides, "train.val_every=2", "train.epochs=3"], callbacks=[rec])
    iters = [(e, i) for kind, e, i, *_ in [ev for ev in rec.events if ev[0] == "iter"]]
    assert rec.events[0] == ("start", 3, 4, 0, False)
    assert iters == [(e, i) for e in range(3) for i in range(4)]
    # validated on epoch 2 (val_every) and on the last epoch
    assert [ev for ev in rec.events if ev[0] == "epoch"] == [
        ("epoch", 0, 1, False),
        ("epoch", 1, 2, True),
        ("epoch", 2, 3, True),
    ]
    assert rec.events[-1] == ("end", 3)
    log = (res.run_dir / "log.txt").read_text()
    assert "start: device=cpu" in log and log.count("epoch=") == 3


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("model.name=fnp", 'did you mean "fpn"'),
        ('loss.terms=["dise"]', 'did you mean "dice"'),
        ("train.time_budget=ten minutes", "train.time_budget"),
    ],
)
def test_bad_preset_leaves_no_run_directory(
    tiny_overrides: list[str], tmp_path: Path, override: str, needle: str
) -> None:
    with pytest.raises(UserError, match=needle):
        train("quickstart", [*tiny_overrides, override])
    assert not (tmp_path / "runs").exists()


def test_extend_a_time_budget(tiny_overrides: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import segcli.train.trainer as trainer

    fake = FakeClock()
    monkeypatch.setattr(trainer, "clock", fake)
    over = [*tiny_overrides, "train.epochs=10", "train.time_budget=10s", "schedule.warmup_iters=0"]
    res = train("quickstart", over, callbacks=[fake])
    with pytest.raises(UserError, match="sets the run's length with train.time_budget"):
        train(resume=res.run_dir, extend=["train.epochs=20"])
    train(resume=res.run_dir, extend=["train.time_budget=14s"], callbacks=[fake])
    # 4 more seconds at 1 s per iteration: one more epoch of 4 iterations, ending annealed at the new budget
    assert [int(x["iterations"]) for x in rows(res.run_dir)] == [4, 8, 10, 14]
    assert float(rows(res.run_dir)[-1]["lr"]) == pytest.approx(0.002 * (1 / 14) ** 0.9, rel=1e-4)


class LrLog(Callback):
    def __init__(self) -> None:
        self.lrs: list[float] = []

    def on_iter_end(self, epoch: int, it: int, loss: float, lr: float, images_per_s: float) -> None:
        self.lrs.append(lr)


def test_time_budget_reserves_the_final_validation_from_the_start(
    tiny_overrides: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Validation costs 1 s per image here (8 val images: 8 s), the first epoch-based validation would
    come after 12 s of training: the reserve must be known before it, or the run overruns its budget."""
    import segcli.train.trainer as trainer

    fake = FakeClock()
    monkeypatch.setattr(trainer, "clock", fake)
    real = trainer.confusion_over_loader

    def slow_validation(model, loader, *a, **k):  # noqa: ANN001, ANN002, ANN003, ANN202
        for _, masks in loader:
            fake.now += len(masks)  # 1 s per image
        return real(model, loader, *a, **k)

    real_with = trainer.confusion_with

    def slow_model_validation(model, batches, *a, **k):  # noqa: ANN001, ANN002, ANN003, ANN202
        def charged():  # noqa: ANN202 - the model's validation reads a generator of batches
            for images, masks in batches:
                fake.now += len(masks)
                yield images, masks

        return real_with(model, charged(), *a, **k)

    monkeypatch.setattr(trainer, "confusion_over_loader", slow_validation)
    monkeypatch.setattr(trainer, "confusion_with", slow_model_validation)
    lrs = LrLog()
    over = [*tiny_overrides, "train.epochs=10", "train.time_budget=20s", "schedule.warmup_iters=0"]
    res = train("quickstart", [*over, "train.val_every=3", "eval.batch_size=1"], callbacks=[fake, lrs])
    # training, the reserve's estimate, and the final validation end at the budget
    assert res.seconds == pytest.approx(20.0, rel=0.02)
    assert all(b <= a for a, b in zip(lrs.lrs, lrs.lrs[1:]))  # the lr never jumps up
    assert rows(res.run_dir)[-1]["mIoU"] != ""
    assert torch.load(res.run_dir / "state.pt", weights_only=True)["reserve"] == pytest.approx(8.0)


OOM = getattr(torch, "OutOfMemoryError", None)


def _oom() -> BaseException:
    return OOM("CUDA out of memory. Tried to allocate 2.00 GiB") if OOM else RuntimeError("CUDA out of memory")


@pytest.mark.parametrize(("when", "needle"), [("train", "in the training step"), ("eval", "in validation")])
def test_out_of_memory_is_one_line_naming_the_sizes(
    tiny_overrides: list[str], monkeypatch: pytest.MonkeyPatch, when: str, needle: str
) -> None:
    import segcli.train.trainer as trainer
    from segcli.errors import TrainingError

    real = trainer.model_from_preset
    calls = {"train": 0}

    def model_that_runs_out(*a, **k):  # noqa: ANN002, ANN003, ANN202
        model = real(*a, **k)
        forward = model.forward

        def oom_forward(x):  # noqa: ANN001, ANN202
            if model.training:
                calls["train"] += 1
            if (when == "train" and model.training and calls["train"] > 5) or (when == "eval" and not model.training):
                raise _oom()
            return forward(x)

        model.forward = oom_forward
        return model

    monkeypatch.setattr(trainer, "model_from_preset", model_that_runs_out)
    with pytest.raises(TrainingError) as info:
        train("quickstart", [*tiny_overrides, "train.epochs=3", "train.accumulate=2"])
    msg = str(info.value)
    assert "\n" not in msg and needle in msg and "out of memory" in msg
    run_dir = Path(tiny_overrides[1].split("=", 1)[1]) / "quickstart" / "1"
    assert f"the last save in {run_dir} is kept" in msg
    if when == "train":
        assert "data.batch_size = 4" in msg and "augment.crop_size = [32, 32]" in msg
        assert "data.batch_size=2 with train.accumulate=4" in msg and "train.amp=bf16" in msg
        # failed in epoch 2: epoch 1's save is still there
        assert torch.load(run_dir / "state.pt", weights_only=True)["epoch"] == 1
    else:
        assert "eval.batch_size = 4" in msg and "eval.batch_size=2" in msg


def test_validation_resizes_as_seg_eval_does(tiny_overrides: list[str]) -> None:
    """Validation during training uses the preset's keep-ratio resize, like `seg eval` on the run."""
    from segcli.config.load import load_preset
    from segcli.train.trainer import build_data, setup_runtime

    p = load_preset("quickstart", [*tiny_overrides, "eval.keep_ratio=[64,40]"]).preset
    data = build_data(p, setup_runtime(p))
    val = data.val_loader.dataset.dataset
    assert val.keep_ratio == (64, 40) and val.size == ()
    image, mask = val[0]
    assert max(image.shape[-2:]) <= 64 and min(image.shape[-2:]) <= 40 and mask.shape == (48, 48)


def test_train_into_a_relative_out_dir(
    tiny_overrides: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default train.out_dir is the relative "runs" (the README's demo trains that way)."""
    monkeypatch.chdir(tmp_path)
    over = [o for o in tiny_overrides if not o.startswith("train.out_dir")] + ["train.out_dir=runs", "train.epochs=1"]
    res = train("quickstart", over)
    assert res.run_dir == Path("runs/quickstart/1") and (tmp_path / res.run_dir / "checkpoint.json").is_file()
    assert train(resume=res.run_dir).run_dir == res.run_dir  # finished: resumes to nothing


@pytest.mark.filterwarnings("ignore")
def test_nan_loss_names_the_iteration_and_what_to_try(
    data: Path, tmp_path: Path, capfd: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    import segcli.train.trainer as trainer

    real = trainer.loss_from_preset

    def nan_loss(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202 - the real signature
        criterion = real(*args, **kwargs)

        class NaN(torch.nn.Module):
            def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
                return criterion(logits, target) * float("nan")

        return NaN()

    monkeypatch.setattr(trainer, "loss_from_preset", nan_loss)
    line = user_error(capfd, train_args(data, tmp_path), "loss became nan", "iteration 1", code=1, progress=True)
    assert "train.amp=none" in line and "optim.lr" in line


class Live(Callback):
    """What a console sees: every IterStats, the validation's progress and the messages."""

    def __init__(self) -> None:
        self.stats: list[IterStats] = []
        self.val: list[tuple[int, int]] = []
        self.messages: list[str] = []

    def on_iter_stats(self, stats: IterStats) -> None:
        self.stats.append(stats)

    def on_val_progress(self, done: int, total: int) -> None:
        self.val.append((done, total))

    def on_message(self, text: str) -> None:
        self.messages.append(text)


def test_live_figures_are_exact_when_log_every_exceeds_the_epoch(tiny_overrides: list[str]) -> None:
    """Reported: with train.log_every=10 the line showed iteration 1's loss at iterations 1, 3 and 4 of 4 while the
    epoch line said another; the curves were flat. Every iteration's loss now reaches the callbacks at the log
    points (the first and last iteration here), and their mean is the epoch's train_loss. Validation reports its
    progress (the console's bar) and its loss, and the silent report evaluation at the end is announced."""
    rec = Live()
    over = [*tiny_overrides, "train.epochs=1", "train.log_every=10", "eval.batch_size=4"]
    res = train("quickstart", over, callbacks=[rec])
    assert [s.it for s in rec.stats] == [0, 1, 2, 3]
    losses = [v for s in rec.stats for v in s.losses]
    assert len(losses) == 4 and len(set(losses)) == 4  # one exact value per iteration
    assert [s.fresh for s in rec.stats] == [True, False, False, True]
    epoch_loss = res.last["train_loss"]
    assert sum(losses) / 4 == pytest.approx(epoch_loss, rel=1e-12)
    last = rec.stats[-1]
    assert last.loss_mean == pytest.approx(epoch_loss, rel=1e-12)
    assert last.loss == pytest.approx(sum(losses[1:]) / 3) and last.loss != rec.stats[0].loss
    line = [ln for ln in (res.run_dir / "log.txt").read_text().splitlines() if " it 4/4 " in ln]
    assert len(line) == 1 and f"(mean {epoch_loss:.4f})" in line[0]

    assert rec.val == [(0, 8), (4, 8), (8, 8)]  # 8 validation images in batches of 4
    assert res.last["val_loss"] > 0 and math.isfinite(res.last["val_loss"])
    with (res.run_dir / "metrics.csv").open() as f:
        assert float(next(csv.DictReader(f))["val_loss"]) == pytest.approx(res.last["val_loss"], rel=1e-5)
    assert rec.messages[-1] == "evaluating best weights for the report..."


def test_n_channel_data_without_statistics_is_warned_of(tmp_path: Path) -> None:
    from segcli.config.load import load_preset
    from segcli.train.trainer import guessed_normalisation

    guessed = load_preset(None, ["data.channels=4", f"data.root={tmp_path}", "model.backbone=resnet18"]).preset
    (line,) = guessed_normalisation(guessed)
    assert "4-channel data are a guess" in line and "seg check --stats" in line and "0.5" in line
    own = ["data.channels=4", f"data.root={tmp_path}", "model.mean=[0.1,0.2,0.3,0.4]", "model.std=[0.2,0.2,0.2,0.2]"]
    assert guessed_normalisation(load_preset(None, own).preset) == []
    assert guessed_normalisation(load_preset(None, [f"data.root={tmp_path}"]).preset) == []  # RGB: as always
