"""TrainState: what is saved is what is restored (segcli/train/state.py)."""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn as nn

from segcli.core.checkpoint import load_state, save_state
from segcli.train.ema import ModelEMA, TailAverage
from segcli.train.state import FORMAT, Progress, TrainState


def make_state(seed: int, ema: bool = True) -> TrainState:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    return TrainState(model, opt, torch.amp.GradScaler("cpu", enabled=False), ModelEMA(model, 0.9) if ema else None)


def take_steps(st: TrainState, n: int) -> None:
    for _ in range(n):
        loss = st.model(torch.randn(8, 3)).pow(2).mean()
        loss.backward()
        st.optimizer.step()
        st.optimizer.zero_grad()
        st.ema.update(st.model)


def test_round_trip_through_state_pt(tmp_path: Path) -> None:
    st = make_state(0)
    take_steps(st, 3)
    st.progress = Progress(epoch=2, step=3, elapsed=12.5, val_seconds=1.5, reserve=2.5, stale=1, iter=2)
    st.progress.epoch_loss, st.progress.epoch_row = 0.75, {"mIoU": 0.25}
    st.progress.improve(0.7, {"epoch": 2, "mIoU": 0.7})
    save_state(tmp_path / "state.pt", st.state_dict())
    expected_next = torch.rand(3)  # the RNG stream right after saving

    other = make_state(1)
    other.load_state_dict(load_state(tmp_path / "state.pt"))  # weights_only=True inside
    assert torch.rand(3).equal(expected_next)  # RNG restored
    for a, b in zip(st.model.state_dict().values(), other.model.state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(st.ema.module.state_dict().values(), other.ema.module.state_dict().values()):
        assert torch.equal(a, b)
    assert other.ema.updates == st.ema.updates == 3
    assert other.optimizer.state_dict()["state"][0]["step"] == 3
    assert other.progress == st.progress  # every counter, best value and best row
    # the two objects continue identically
    torch.manual_seed(5)
    take_steps(st, 2)
    torch.manual_seed(5)
    take_steps(other, 2)
    for a, b in zip(st.model.parameters(), other.model.parameters()):
        assert torch.equal(a, b)


def test_every_saved_key_is_restored() -> None:
    """A key added to state_dict() without load_state_dict() support fails here."""
    st = make_state(0)
    state = st.state_dict()
    assert state["format"] == FORMAT
    marked = {**state, "epoch": 7, "step": 70, "elapsed": 3.0, "val_seconds": 0.5, "best_value": 0.25}
    marked.update(best_row={"epoch": 6}, stale=2, finished=True)
    marked.update(iter=3, epoch_loss=1.5, epoch_seconds=2.0, epoch_row={"mIoU": 0.5}, reserve=4.0)
    other = make_state(0)
    other.load_state_dict(marked)
    assert other.state_dict().keys() == state.keys()
    assert other.progress == Progress(
        epoch=7,
        step=70,
        elapsed=3.0,
        val_seconds=0.5,
        reserve=4.0,
        best_value=0.25,
        best_row={"epoch": 6},
        stale=2,
        finished=True,
        iter=3,
        epoch_loss=1.5,
        epoch_seconds=2.0,
        epoch_row={"mIoU": 0.5},
    )


def test_reads_the_first_state_format() -> None:
    """segcli-state/1 (no format key) stored the last finished epoch; resume continues after it."""
    st = make_state(0, ema=False)
    old = {k: v for k, v in st.state_dict().items() if k != "format"}
    old["epoch"] = 4
    st.load_state_dict(old)
    assert st.progress.epoch == 5


def test_progress_improve() -> None:
    p = Progress()
    assert p.improve(0.5, {"epoch": 1}) and p.best_value == 0.5 and p.stale == 0
    assert not p.improve(0.5, {"epoch": 2}) and p.stale == 1  # equal is no improvement
    assert not p.improve(float("nan"), {"epoch": 3}) and p.stale == 2
    assert not p.improve(None, {"epoch": 4}) and p.best_row == {"epoch": 1}
    assert p.improve(0.9, {"epoch": 5}) and p.stale == 0 and not math.isinf(p.best_value)


def test_the_weight_average_goes_through_state_pt(tmp_path: Path) -> None:
    """train.average: before its start nothing is saved but its kind; after, the averaged weights."""
    st = make_state(0)
    st.average = TailAverage("swa", 0.5)
    other = make_state(1)
    other.average = TailAverage("swa", 0.5)
    other.load_state_dict(st.state_dict())
    assert other.average.module is None
    st.average.update(st.model, 0.5)
    take_steps(st, 2)
    st.average.update(st.model, 0.9)
    torch.save(st.state_dict(), tmp_path / "state.pt")
    other.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    assert other.average.models == 2
    for a, b in zip(st.average.module.state_dict().values(), other.average.module.state_dict().values()):
        assert torch.equal(a, b)
