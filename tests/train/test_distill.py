"""The teacher of train.distill (segcli/train/distill.py): loaded frozen from a weights file or a run directory,
classes matched by name (reordered, or a one-line error), logits resized to the student's, identity checked."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest
import torch

from segcli.config.load import load_preset
from segcli.config.schema import DistillConfig
from segcli.core.checkpoint import save_weights
from segcli.core.factory import model_from_preset
from segcli.data.format import read_dataset_info
from segcli.errors import CheckpointError, UserError
from segcli.train.distill import check_resumed_teacher, class_order, file_sha256, load_teacher

CPU = torch.device("cpu")


def _save(path: Path, shapes_root: Path, classes: tuple[str, ...] | None = None) -> tuple[Path, torch.nn.Module]:
    """A random tiny FPN saved as segcli weights, with the dataset's classes (or ``classes``) in its metadata."""
    preset = load_preset("quickstart", ["model.backbone=test_resnet", "model.decoder_channels=8"]).preset
    info = read_dataset_info(shapes_root)
    if classes is not None:
        info = dataclasses.replace(info, classes=classes, palette=info.palette[: len(classes)])
    torch.manual_seed(0)
    model = model_from_preset(preset.model, info.num_classes).eval()
    return save_weights(path, model, preset, info), model


def test_class_order_same_reordered_and_different() -> None:
    assert class_order(("a", "b", "c"), ("a", "b", "c")) is None
    assert class_order(("c", "a", "b"), ("a", "b", "c")) == [1, 2, 0]  # teacher channel of each student class
    with pytest.raises(UserError) as e:
        class_order(("a", "b", "x"), ("a", "b", "c"))
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("train.distill.teacher: the teacher's classes must be the dataset's")
    assert "the teacher's x not in the dataset; the dataset's c not in the teacher" in msg
    with pytest.raises(UserError, match="the dataset's c not in the teacher"):
        class_order(("a", "b"), ("a", "b", "c"))
    with pytest.raises(UserError, match="repeats"):
        class_order(("a", "a", "b"), ("a", "b", "b"))


def test_a_teacher_loads_frozen_in_eval_mode_with_its_identity(tmp_path: Path, shapes_root: Path) -> None:
    path, model = _save(tmp_path / "t.safetensors", shapes_root)
    classes = read_dataset_info(shapes_root).classes
    teacher = load_teacher(DistillConfig(teacher=str(path)), classes, CPU)
    assert teacher is not None and teacher.order is None
    assert not teacher.model.training and not any(p.requires_grad for p in teacher.model.parameters())
    assert teacher.identity == {"path": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    assert "distilling from" in teacher.describe() and "reordered" not in teacher.describe()
    x = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(teacher(x, torch.zeros(2, 5, 32, 32)), model(x))
    assert load_teacher(DistillConfig(), classes, CPU) is None


def test_a_teacher_in_another_class_order_is_reordered(tmp_path: Path, shapes_root: Path) -> None:
    classes = read_dataset_info(shapes_root).classes
    shuffled = (classes[2], classes[0], classes[4], classes[1], classes[3])
    path, model = _save(tmp_path / "t.safetensors", shapes_root, shuffled)
    teacher = load_teacher(DistillConfig(teacher=str(path)), classes, CPU)
    assert teacher.order == [1, 3, 0, 4, 2] and "classes reordered" in teacher.describe()
    x = torch.rand(1, 3, 32, 32)
    got, raw = teacher(x, torch.zeros(1, 5, 32, 32)), model(x)
    for i, name in enumerate(classes):  # channel i of the result is the teacher's channel for class ``name``
        torch.testing.assert_close(got[:, i], raw[:, shuffled.index(name)])


def test_a_teacher_with_other_class_names_is_refused(tmp_path: Path, shapes_root: Path) -> None:
    path, _ = _save(tmp_path / "t.safetensors", shapes_root, ("background", "circle", "square", "triangle", "star"))
    with pytest.raises(UserError, match=r"the teacher's star not in the dataset; the dataset's cross not in"):
        load_teacher(DistillConfig(teacher=str(path)), read_dataset_info(shapes_root).classes, CPU)


def test_teacher_logits_are_resized_to_the_students(tmp_path: Path, shapes_root: Path) -> None:
    path, model = _save(tmp_path / "t.safetensors", shapes_root)
    teacher = load_teacher(DistillConfig(teacher=str(path)), read_dataset_info(shapes_root).classes, CPU)
    x = torch.rand(1, 3, 32, 32)
    student = {"out": torch.zeros(1, 5, 16, 16), "aux": [torch.zeros(1, 5, 32, 32)]}  # a training output
    got = teacher(x, student)
    want = torch.nn.functional.interpolate(model(x), size=(16, 16), mode="bilinear", align_corners=False)
    assert got.shape == (1, 5, 16, 16) and not got.requires_grad
    torch.testing.assert_close(got, want)


def test_a_run_directory_gives_its_best_weights(tmp_path: Path, shapes_root: Path) -> None:
    run = tmp_path / "run"
    (run / "weights").mkdir(parents=True)
    (run / "preset.toml").write_text("", encoding="utf-8")
    path, _ = _save(run / "weights" / "best.safetensors", shapes_root)
    teacher = load_teacher(DistillConfig(teacher=str(run)), read_dataset_info(shapes_root).classes, CPU)
    assert teacher.path == path
    with pytest.raises(CheckpointError, match=r"^train\.distill\.teacher: .*no weights/best"):
        load_teacher(DistillConfig(teacher=str(tmp_path)), ("a",), CPU)


def test_resume_refuses_another_teacher_file(tmp_path: Path, shapes_root: Path) -> None:
    path, _ = _save(tmp_path / "t.safetensors", shapes_root)
    teacher = load_teacher(DistillConfig(teacher=str(path)), read_dataset_info(shapes_root).classes, CPU)
    check_resumed_teacher(teacher, {"path": "elsewhere", "sha256": file_sha256(path)})  # same file, moved: fine
    check_resumed_teacher(None, None)  # no distillation on either side
    with pytest.raises(CheckpointError, match=r"distilled from /x/old\.safetensors \(sha256 000000000000\), but"):
        check_resumed_teacher(teacher, {"path": "/x/old.safetensors", "sha256": "0" * 64})
    with pytest.raises(CheckpointError, match="trained without a teacher"):
        check_resumed_teacher(teacher, None)
    with pytest.raises(CheckpointError, match="resumes only with that teacher"):
        check_resumed_teacher(None, teacher.identity)
