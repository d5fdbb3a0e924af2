"""A read-only output folder or a full disk, in every command that writes: one line with the path and what to do,
exit 2 (not "unexpected OSError"). The mapping is made once, where `seg` turns errors into lines (cli/app.py)."""

from __future__ import annotations

import errno
import io
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from cli_helpers import user_error
from conftest import TINY

READ_ONLY = "the file system is read-only; write somewhere else"
DENIED = "permission denied; choose a folder you can write to"
FULL = "no space left on the disk; free some space"


def read_only(folder: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Make ``folder`` unwritable: chmod where that stops writes, else (root) every way of writing under it raises
    EROFS (os.open for writing, os.mkdir, io.open with a writing mode). The words the error line will use."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        for d in [folder, *(p for p in folder.rglob("*") if p.is_dir())]:
            d.chmod(0o555)
        return DENIED

    def under(path: object) -> bool:
        return Path(os.fsdecode(path)).resolve().is_relative_to(folder.resolve())

    def refuse(path: object) -> OSError:
        return OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(path))

    real_open, real_mkdir, real_io_open = os.open, os.mkdir, io.open

    def os_open(path: object, flags: int, *args: object, **kwargs: object) -> int:
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and under(path):
            raise refuse(path)
        return real_open(path, flags, *args, **kwargs)

    def mkdir(path: object, *args: object, **kwargs: object) -> None:
        if under(path):
            raise FileExistsError(errno.EEXIST, "exists", path) if Path(path).exists() else refuse(path)
        real_mkdir(path, *args, **kwargs)

    def io_open(file: object, mode: str = "r", *args: object, **kwargs: object) -> object:
        if isinstance(file, (str, bytes, os.PathLike)) and set(mode) & set("wax+") and under(file):
            raise refuse(file)
        return real_io_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr(io, "open", io_open)
    return READ_ONLY


def writable_again(folder: Path) -> None:
    for d in [folder, *(p for p in folder.rglob("*") if p.is_dir())]:
        if not d.is_symlink():
            d.chmod(0o755)


# each command writing into the folder ``ro`` (weights, dataset, a run directory copy, ro)
COMMANDS: dict[str, Callable[[Path, Path, Path, Path], list]] = {
    "prepare": lambda w, d, run, ro: ["prepare", "shapes", "--out", ro / "ds", "--train", 2, "--val", 1],
    "train": lambda w, d, run, ro: ["train", "quickstart", *TINY, f"data.root={d}", f"train.out_dir={ro}"],
    "infer": lambda w, d, run, ro: ["infer", w, d / "images" / "val", "--out", ro / "pred", "--device", "cpu"],
    "eval": lambda w, d, run, ro: ["eval", w, "--data", d, "--out", ro / "e.json", "--device", "cpu"],
    "export": lambda w, d, run, ro: ["export", w, "--torchscript", "--out", ro / "m.ts", "--device", "cpu"],
    "report": lambda w, d, run, ro: ["report", run, "--no-eval", "--worst", 0],
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_read_only_output_is_one_line_naming_the_path(
    command: str,
    weights: Path,
    shapes_root: Path,
    trained: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture,
) -> None:
    ro = tmp_path / "ro"
    run = Path(shutil.copytree(trained, ro / "run")) if command == "report" else trained
    words = read_only(ro, monkeypatch)
    try:
        line = user_error(capfd, COMMANDS[command](weights, shapes_root, run, ro), words, progress=True)
    finally:
        writable_again(ro)
    assert str(ro) in line, line


@pytest.mark.parametrize("command", ["infer", "prepare"])
def test_a_full_disk_is_one_line_naming_the_file(
    command: str,
    weights: Path,
    shapes_root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture,
) -> None:
    """``os.write`` on a full disk names no file ("81920 requested and 34752 written"): the line names it."""

    def full(fd: int, data: object) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", full)
    out = tmp_path / "out"
    line = user_error(capfd, COMMANDS[command](weights, shapes_root, tmp_path, out), FULL, progress=True)
    assert f"error: {out}" in line, line
    assert not [p for p in out.rglob("*") if p.is_file() and "segtmp" in p.name]
