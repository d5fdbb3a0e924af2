"""The teacher of ``train.distill``: a segcli model loaded frozen, whose logits the distillation terms
(``kd``, ``cwd`` in :mod:`segcli.losses.distill`) compare the student's with.

It may be another architecture and trained at another resolution: it sees the same augmented batch as the
student, under the same autocast, and its logits are resized (bilinear) to the student's when their sizes
differ. Its classes must be the dataset's by name; when only their order differs its channels are reordered.
Its identity (the weights file's path and sha256) is kept in the run's state and its weights' metadata, so a
resumed run refuses a teacher whose file changed since.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from segcli.config.schema import DistillConfig
from segcli.core.checkpoint import build_from_weights
from segcli.core.rundir import resolve_weights
from segcli.errors import CheckpointError, UserError
from segcli.losses.outputs import main_logits

KEY = "train.distill.teacher"


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def class_order(teacher: tuple[str, ...], student: tuple[str, ...]) -> list[int] | None:
    """The teacher channel of each student class (None when the order is the same); a UserError when the
    names differ."""
    if tuple(teacher) == tuple(student):
        return None
    if len(teacher) == len(student) == len(set(teacher)) and set(teacher) == set(student):
        return [teacher.index(c) for c in student]
    extra = [c for c in teacher if c not in student]
    lacking = [c for c in student if c not in teacher]
    what = (
        "; ".join(
            part
            for part in (
                f"the teacher's {', '.join(extra)} not in the dataset" if extra else "",
                f"the dataset's {', '.join(lacking)} not in the teacher" if lacking else "",
            )
            if part
        )
        or f"{len(teacher)} teacher classes with repeats against {len(student)}"
    )
    raise UserError(f"{KEY}: the teacher's classes must be the dataset's by name ({what})")


@dataclass
class Teacher:
    """A frozen model in eval mode; call it on the student's batch for logits in the student's class order."""

    model: torch.nn.Module
    path: Path
    sha256: str
    order: list[int] | None = None

    def __post_init__(self) -> None:
        device = next(self.model.parameters()).device  # the reordering index lives there: no copy per step
        self._index = None if self.order is None else torch.tensor(self.order, device=device)

    @property
    def identity(self) -> dict[str, str]:
        """What the run records of its teacher: the weights file and its sha256."""
        return {"path": str(self.path), "sha256": self.sha256}

    def describe(self) -> str:
        """The run-log line saying which teacher is used and how its classes were matched."""
        order = ", classes reordered to the dataset's" if self.order is not None else ""
        return f"distilling from {self.path} (sha256 {self.sha256[:12]}{order}); the teacher is frozen in eval mode"

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, student: Any) -> torch.Tensor:
        """The teacher's logits on ``images`` (B, 3, H, W), detached, in the class order and at the size of the
        main logits of ``student`` (the student's output on the same batch: logits or ``{"out", ...}``)."""
        logits = main_logits(self.model(images))
        if self._index is not None:
            logits = logits.index_select(1, self._index)
        size = tuple(main_logits(student).shape[-2:])
        if tuple(logits.shape[-2:]) != size:
            logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        return logits

    def check_identity(self, recorded: dict[str, str] | None) -> None:
        """Refuse to resume a run distilled from another teacher file (another sha256)."""
        if recorded is None:
            raise CheckpointError(
                f"{KEY}: this run was trained without a teacher; it cannot be resumed with one ({self.path})"
            )
        if recorded.get("sha256") != self.sha256:
            raise CheckpointError(
                f"{KEY}: this run was distilled from {recorded.get('path')} (sha256 "
                f"{str(recorded.get('sha256'))[:12]}), but {self.path} is another file (sha256 {self.sha256[:12]}); "
                "resume with the same teacher"
            )


def load_teacher(
    cfg: DistillConfig, classes: tuple[str, ...], device: torch.device, channels_last: bool = False
) -> Teacher | None:
    """The teacher of ``train.distill`` for a dataset of ``classes`` on ``device`` (None when there is none)."""
    if not cfg.teacher:
        return None
    try:
        path = resolve_weights(cfg.teacher)
    except CheckpointError as e:
        raise CheckpointError(f"{KEY}: {e}") from None
    model, meta = build_from_weights(path, device)
    order = class_order(tuple(meta.classes), tuple(classes))
    model.requires_grad_(False)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return Teacher(model.eval(), path, file_sha256(path), order)


def check_resumed_teacher(teacher: Teacher | None, recorded: dict[str, str] | None) -> None:
    """On resume: the run's recorded teacher (from its state) and the one loaded now must be the same file."""
    if teacher is not None:
        teacher.check_identity(recorded)
    elif recorded is not None:
        raise CheckpointError(
            f"{KEY}: this run was distilled from {recorded.get('path')}; it resumes only with that teacher"
        )
