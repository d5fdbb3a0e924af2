"""The trainer's data path: loader options, the RAM cache trained bitwise like files, the workers stopped at the end."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from segcli.data import datasets
from segcli.train.trainer import loader_options, train


def test_loader_options_keep_workers_alive_and_prefetch() -> None:
    assert loader_options(0, pin=False) == {"num_workers": 0, "pin_memory": False}
    opts = loader_options(2, pin=True)
    assert opts["persistent_workers"] and opts["prefetch_factor"] >= 2 and opts["pin_memory"]
    assert opts["worker_init_fn"] is datasets.worker_init


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
