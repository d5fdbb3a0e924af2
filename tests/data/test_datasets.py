"""The training data path and step: worker counts, persistent workers, the RAM cache, the device-side loss."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest
import torch
from safetensors.torch import load_file
from torch.utils.data import DataLoader, Dataset

from segcli.config.load import load_preset
from segcli.data import datasets
from segcli.errors import PresetError
from segcli.train.meters import LossMeter
from segcli.train.state import Progress
from segcli.train.trainer import loader_options, train


@pytest.mark.parametrize(
    ("cores", "per_node", "value", "expected"),
    [(2, 1, "auto", 1), (1, 1, "auto", 0), (16, 2, "auto", 7), (3, 4, "auto", 0), (2, 1, 5, 5), (8, 1, 0, 0)],
)
def test_auto_workers_leave_a_core_for_the_training_process(
    monkeypatch: pytest.MonkeyPatch, cores: int, per_node: int, value: int | str, expected: int
) -> None:
    monkeypatch.setattr(datasets, "usable_cores", lambda: cores)
    assert datasets.resolve_workers(value, per_node) == expected


def test_num_workers_is_auto_by_default_and_checked_at_load() -> None:
    assert load_preset("quickstart", []).preset.data.num_workers == "auto"
    assert load_preset("quickstart", ["data.num_workers=3"]).preset.data.num_workers == 3
    assert load_preset("quickstart", ["data.cache=ram"]).preset.data.cache == "ram"
    with pytest.raises(PresetError, match="num_workers"):
        load_preset("quickstart", ["data.num_workers=many"])
    with pytest.raises(PresetError, match="out of range"):
        load_preset("quickstart", ["data.num_workers=-1"])
    with pytest.raises(PresetError, match="cache"):
        load_preset("quickstart", ["data.cache=disk"])


def test_loader_options_keep_workers_alive_and_prefetch() -> None:
    assert loader_options(0, pin=False) == {"num_workers": 0, "pin_memory": False}
    opts = loader_options(2, pin=True)
    assert opts["persistent_workers"] and opts["prefetch_factor"] >= 2 and opts["pin_memory"]
    assert opts["worker_init_fn"] is datasets.worker_init


class _Threads(Dataset):
    def __len__(self) -> int:
        return 1

    def __getitem__(self, i: int) -> tuple[int, int]:
        return cv2.getNumThreads(), torch.get_num_threads()


def test_workers_run_opencv_and_torch_single_threaded() -> None:
    loader = DataLoader(_Threads(), batch_size=None, **loader_options(1, pin=False))
    cv_threads, torch_threads = next(iter(loader))
    assert cv_threads <= 1 and torch_threads == 1


def test_loss_meter_sum_does_not_depend_on_when_it_is_read() -> None:
    losses = [torch.tensor(v, dtype=torch.float32) for v in (0.1, 2.7, 1e-3, 0.33, 1.9, 0.05)]
    totals = []
    for read_at in ({5}, {0, 2, 5}, {0, 1, 2, 3, 4, 5}):
        meter, progress = LossMeter(torch.device("cpu"), 0), Progress()
        for i, loss in enumerate(losses):
            meter.add(loss, i)
            if i in read_at:
                assert meter.read(progress) is None
        totals.append(progress.epoch_loss)
    assert totals[0] == totals[1] == totals[2] == sum(float(v) for v in losses)


def test_loss_meter_names_the_first_non_finite_iteration() -> None:
    meter, progress = LossMeter(torch.device("cpu"), 0), Progress()
    for i, v in enumerate([0.5, 0.4, float("inf"), float("nan"), 0.3]):
        meter.add(torch.tensor(v), i)
    assert meter.read(progress) == (2, float("inf"))
    assert progress.epoch_loss == 0.0  # nothing of a broken window is kept


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "weights" / "last.safetensors"))


@pytest.mark.slow
def test_ram_cache_and_persistent_workers_train_bitwise_like_plain_loading(tiny_overrides: list[str]) -> None:
    over = [*tiny_overrides, "train.deterministic=true", "train.log_every=3"]
    plain = train("quickstart", over)
    messages: list[str] = []

    from segcli.core.callbacks import Callback

    class Messages(Callback):
        def on_message(self, text: str) -> None:
            messages.append(text)

    cached = train("quickstart", [*over, "data.cache=ram", "data.num_workers=1"], callbacks=[Messages()])
    assert any(m.startswith("data cache: 16 training samples decoded in RAM") and "MiB" in m for m in messages)
    a, b = _weights(plain.run_dir), _weights(cached.run_dir)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert plain.last["train_loss"] == cached.last["train_loss"]
    log = (cached.run_dir / "log.txt").read_text()
    assert "epoch 2: data wait" in log and "1 loader worker(s)" in log


def test_training_stops_its_loader_workers_before_it_returns(tiny_overrides: list[str]) -> None:
    """Persistent workers end with the run, even while something still holds the training's frames (a kept
    exception, as plotting libraries keep them): else they wait for the garbage collector or interpreter exit,
    where torch joins them one by one with a 5-second timeout each."""
    import multiprocessing

    from segcli.core.callbacks import Callback

    class KeepsTheStack(Callback):
        def on_val_end(self, val: object) -> None:
            try:
                raise RuntimeError("kept with its traceback")
            except RuntimeError as e:
                self.kept = e  # its frames reach train()'s, which hold the loaders

    before = set(multiprocessing.active_children())
    keeper = KeepsTheStack()
    train("quickstart", [*tiny_overrides, "data.num_workers=2", "train.epochs=1"], callbacks=[keeper])
    frame, callers = keeper.kept.__traceback__.tb_frame, set()
    while frame is not None:
        callers.add(frame.f_code.co_name)
        frame = frame.f_back
    assert "train" in callers  # the premise: the kept exception still reaches train()'s frame
    assert set(multiprocessing.active_children()) - before == set()
