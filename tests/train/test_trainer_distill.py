"""Training with train.distill: a student trains against a teacher saved as segcli weights, records the teacher in
its state, and resumes only with the same teacher file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from segcli.core.callbacks import Callback
from segcli.core.checkpoint import load_state, read_metadata
from segcli.errors import CheckpointError
from segcli.train.trainer import train


class StopAfterEpoch(Callback):
    """Interrupts at the first iteration of ``epoch`` (after the previous epoch's save), like Ctrl-C."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_iter_end(self, epoch: int, it: int, loss: float, lr: float, images_per_s: float) -> None:
        if epoch == self.epoch:
            raise KeyboardInterrupt


@pytest.mark.slow
def test_a_distilled_student_trains_records_its_teacher_and_resumes_only_with_it(
    tiny_overrides: list[str], weights: Path, tmp_path: Path
) -> None:
    teacher = Path(shutil.copy(weights, tmp_path / "teacher.safetensors"))  # resnet18 FPN, the dataset's classes
    over = [
        *tiny_overrides,
        "model.backbone=test_resnet",  # the student: another backbone and width than the teacher
        "model.decoder_channels=8",
        f"train.distill.teacher={teacher}",
        "loss.terms=['ce','kd','cwd']",
        "loss.term_weights=[1.0,0.5,3.0]",
        "loss.kd.temperature=2",
        "train.log_every=1",
    ]
    with pytest.raises(KeyboardInterrupt):
        train("quickstart", over, callbacks=[StopAfterEpoch(1)])
    run = next((tmp_path / "runs").glob("quickstart/*"))
    state = load_state(run / "state.pt")
    assert state["epoch"] == 1 and state["teacher"]["path"] == str(teacher)
    log = (run / "log.txt").read_text(encoding="utf-8")
    assert f"distilling from {teacher}" in log
    assert " kd " in log and " cwd " in log  # the per-term losses of the progress lines

    original = teacher.read_bytes()
    torch.manual_seed(1)  # another teacher at the same path: retrained, or replaced
    tensors = {k: v + 0.01 * torch.randn_like(v) if v.is_floating_point() else v for k, v in load_file(teacher).items()}
    save_file(tensors, str(teacher), metadata=read_metadata(teacher))
    with pytest.raises(CheckpointError, match=r"train\.distill\.teacher: this run was distilled from .* another file"):
        train(resume=run)

    teacher.write_bytes(original)
    result = train(resume=run)
    assert result.epochs == 2 and load_state(run / "state.pt")["teacher"]["sha256"] == state["teacher"]["sha256"]
