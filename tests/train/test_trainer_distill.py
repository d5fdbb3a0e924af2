"""Training with train.distill: a student trains against a teacher saved as segcli weights, records the teacher in
its state, and resumes only with the same teacher file."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import FakeClock
from safetensors.torch import load_file, save_file

from segcli.core.callbacks import Callback
from segcli.core.checkpoint import load_state, read_metadata
from segcli.errors import CheckpointError
from segcli.train import distill, trainer
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
        "train.deterministic=true",
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
    # the resumed run ends where an uninterrupted one does
    full = train("quickstart", over)
    a, b = (load_file(str(d / "weights" / "last.safetensors")) for d in (run, full.run_dir))
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_distillation_under_torchrun_keeps_the_ranks_identical(
    tiny_overrides: list[str], weights: Path, tmp_path: Path
) -> None:
    """Two CPU processes (Gloo): each loads the teacher on its own, outside DDP; the students stay in step."""
    ranks = tmp_path / "ranks"
    ranks.mkdir()
    tests = Path(__file__).resolve().parents[1]
    over = [
        *tiny_overrides,
        "train.device=cpu",
        "train.threads=1",
        "train.epochs=1",
        f"train.distill.teacher={weights}",
    ]
    over += ["loss.terms=['ce','kd','cwd']", "model.backbone=test_resnet", "model.decoder_channels=8"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    cmd += [str(tests / "ddp_ranks.py"), "quickstart", *over]
    path = os.pathsep.join(filter(None, [str(tests.parent), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path, "SEG_RANK_DIR": str(ranks)}
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    a, b = (torch.load(ranks / f"rank{r}_epoch1.pt", weights_only=True) for r in (0, 1))
    assert all(torch.equal(a[k], b[k]) for k in a)
    (run,) = (tmp_path / "runs" / "quickstart").iterdir()
    assert "world_size=2" in (run / "log.txt").read_text() and load_state(run / "state.pt")["teacher"]


@pytest.mark.slow
def test_under_a_time_budget_the_teachers_forward_is_part_of_the_step(
    tiny_overrides: list[str], weights: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A clock that moves 1 s per step and 3 s more per teacher forward: a 20 s budget takes 5 steps, not 20."""
    fake = FakeClock()
    monkeypatch.setattr(trainer, "clock", fake)
    forward = distill.Teacher.__call__

    def slow_teacher(self: distill.Teacher, images: torch.Tensor, student: object) -> torch.Tensor:
        fake.now += 3.0
        return forward(self, images, student)

    monkeypatch.setattr(distill.Teacher, "__call__", slow_teacher)
    over = [*tiny_overrides, "train.time_budget=20s", f"train.distill.teacher={weights}", "loss.terms=['ce','kd']"]
    result = train("quickstart", [o for o in over if not o.startswith("train.epochs")], callbacks=[fake])
    assert result.last["iterations"] == 5
