"""What a training failure says (segcli/train/failures.py): out of memory as one line naming the sizes that decide
it, what to try, and that the last save is kept."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from segcli.config.load import load_preset
from segcli.core.rundir import RunDir
from segcli.errors import TrainingError
from segcli.train.failures import is_out_of_memory, out_of_memory

CPU = torch.device("cpu")


def test_out_of_memory_is_recognised_by_type_or_message() -> None:
    oom = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError
    assert is_out_of_memory(oom("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_out_of_memory(RuntimeError("MPS backend out of memory (MPS allocated: 9 GB)"))
    assert not is_out_of_memory(RuntimeError("size mismatch"))
    assert not is_out_of_memory(ValueError("out of memory"))  # only a RuntimeError's message counts


def test_the_training_step_suggests_half_the_batch_twice_the_accumulation(tmp_path: Path) -> None:
    p = load_preset(None, ["data.batch_size=8", "train.accumulate=2", "augment.crop_size=[512, 256]"]).preset
    err = out_of_memory(p, "train", CPU, RunDir(tmp_path / "run"))
    msg = str(err)
    assert isinstance(err, TrainingError) and "\n" not in msg
    assert msg.startswith("cpu ran out of memory in the training step (data.batch_size = 8")
    assert "augment.crop_size = [512, 256]" in msg and "data.batch_size=4 with train.accumulate=4" in msg
    assert msg.endswith(f"train.amp=bf16; the last save in {tmp_path / 'run'} is kept")


def test_a_batch_of_one_is_not_halved_to_zero(tmp_path: Path) -> None:
    p = load_preset(None, ["data.batch_size=1", "eval.batch_size=1"]).preset
    assert "data.batch_size=1 with train.accumulate=2" in str(out_of_memory(p, "train", CPU, RunDir(tmp_path)))
    assert "try eval.batch_size=1," in str(out_of_memory(p, "validation", CPU, RunDir(tmp_path)))


@pytest.mark.parametrize(("size", "shown"), [("[]", "native"), ("[512, 1024]", "[512, 1024]")])
def test_validation_names_the_eval_sizes(tmp_path: Path, size: str, shown: str) -> None:
    p = load_preset(None, ["eval.batch_size=6", f"eval.size={size}"]).preset
    msg = str(out_of_memory(p, "validation", torch.device("cuda", 0), RunDir(tmp_path)))
    assert msg.startswith(f"cuda:0 ran out of memory in validation (eval.batch_size = 6, eval.size = {shown})")
    assert "try eval.batch_size=3, a smaller eval.size or train.amp=bf16" in msg and "\n" not in msg
