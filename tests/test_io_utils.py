"""Atomic writes (a temp file beside the target, renamed; nothing half-written, no temp left), the --out folder
check every command makes before writing, never-overwrite paths, and strict JSON."""

from __future__ import annotations

import json
import math
import os
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import user_error, write_file

from segcli.errors import UserError
from segcli.io_utils import (
    atomic_write,
    atomic_write_text,
    dumps_json,
    is_temp,
    json_safe,
    next_free_path,
    next_numbered_dir,
    remove_temps,
    require_folder,
    write_temp,
)

pytestmark = pytest.mark.filterwarnings("ignore")


def _a_file(tmp_path: Path) -> Path:
    return write_file(tmp_path / "taken", "not a folder")


OUT_IS_A_FILE: dict[str, Callable[[Path, Path, Path], list]] = {
    "infer": lambda w, d, f: ["infer", w, d / "images" / "val", "--out", f, "--device", "cpu"],
    "eval": lambda w, d, f: ["eval", w, "--data", d, "--out", f, "--device", "cpu"],
    "eval json": lambda w, d, f: ["eval", w, "--data", d, "--out", f / "r.json", "--device", "cpu"],
    "prepare": lambda w, d, f: ["prepare", "shapes", "--out", f, "--train", 2, "--val", 1],
    "prepare below": lambda w, d, f: ["prepare", "shapes", "--out", f / "sub", "--train", 2, "--val", 1],
    "crop-by-mask": lambda w, d, f: ["crop-by-mask", d, "--out", f],
}


@pytest.mark.parametrize("command", list(OUT_IS_A_FILE))
def test_out_is_a_file(command: str, weights: Path, data: Path, tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    taken = _a_file(tmp_path)
    user_error(capfd, OUT_IS_A_FILE[command](weights, data, taken), str(taken), "--out must be a folder")
    assert taken.read_text() == "not a folder"


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_outputs_get_the_umask_mode(umask: int, tmp_path: Path) -> None:
    from segcli.data.io import write_mask
    from segcli.io_utils import atomic_write_text

    old = os.umask(umask)
    try:
        written = [
            atomic_write_text(tmp_path / "a.txt", "x"),
            write_mask(tmp_path / "m.png", np.zeros((2, 2), np.uint8)),
        ]
    finally:
        os.umask(old)
    for path in written:
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask, path


def test_atomic_writes_leave_one_file_and_no_temp(tmp_path: Path) -> None:
    """Bytes go through a temp file beside the target; missing folders are made; a leftover temp file of a
    killed process with the same name is stepped over, never written into; a failing writer leaves nothing."""
    import itertools

    from segcli import io_utils
    from segcli.io_utils import atomic_write, atomic_write_bytes

    target = tmp_path / "new" / "sub" / "a.png"
    assert atomic_write_bytes(target, b"one").read_bytes() == b"one"
    assert atomic_write_bytes(target, b"two").read_bytes() == b"two"  # replaced whole
    assert [p.name for p in target.parent.iterdir()] == ["a.png"]
    counter = io_utils._TEMP_COUNTER
    try:
        io_utils._TEMP_COUNTER = itertools.count(7)
        import threading

        stale = target.with_name(f".a.png.{os.getpid()}-{threading.get_native_id()}-7.png")
        stale.write_bytes(b"stale")
        atomic_write_bytes(target, b"three")
        assert target.read_bytes() == b"three" and stale.read_bytes() == b"stale"
        stale.unlink()
    finally:
        io_utils._TEMP_COUNTER = counter

    def fail(p: Path) -> None:
        p.write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, fail)
    assert [p.name for p in target.parent.iterdir()] == ["a.png"] and target.read_bytes() == b"three"


def test_atomic_write_text_is_utf8_and_durable_writes_the_same(tmp_path: Path) -> None:
    a = atomic_write_text(tmp_path / "deep" / "a.toml", "café = 1\n")
    b = atomic_write_text(tmp_path / "b.toml", "café = 1\n", durable=True)
    assert a.read_bytes() == b.read_bytes() == "café = 1\n".encode()
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.toml", "b.toml", "deep"]


def test_the_temp_file_keeps_the_suffix_the_writer_needs(tmp_path: Path) -> None:
    """OpenCV picks its encoder from the extension: the writer sees ``.png`` (or the suffix asked for)."""
    seen: list[Path] = []
    atomic_write(tmp_path / "m.png", lambda p: seen.append(p) or p.write_bytes(b"x"))
    atomic_write(tmp_path / "m.bin", lambda p: seen.append(p) or p.write_bytes(b"y"), suffix=".jpg")
    assert [p.suffix for p in seen] == [".png", ".jpg"]
    assert all(p.parent == tmp_path and p.name.startswith(".m.") and not p.exists() for p in seen)
    assert (tmp_path / "m.bin").read_bytes() == b"y"


def test_write_temp_leaves_the_rename_to_the_caller_and_cleans_up_a_failure(tmp_path: Path) -> None:
    tmp = write_temp(tmp_path / "w.safetensors", lambda p: p.write_bytes(b"w"), durable=True)
    assert tmp.read_bytes() == b"w" and not (tmp_path / "w.safetensors").exists()
    assert tmp.name.startswith(f".w.safetensors.segtmp-{os.getpid()}-{threading.get_native_id()}-")
    assert is_temp(tmp.name)

    def interrupted(p: Path) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_temp(tmp_path / "x.txt", interrupted)
    assert sorted(p.name for p in tmp_path.iterdir()) == [tmp.name]


def test_require_folder_names_the_file_in_the_way(tmp_path: Path) -> None:
    assert require_folder(tmp_path) == tmp_path
    assert require_folder(str(tmp_path / "new" / "deeper")) == tmp_path / "new" / "deeper"  # may not exist yet
    taken = write_file(tmp_path / "taken", "x")
    with pytest.raises(UserError) as info:
        require_folder(taken / "sub" / "dir", "--report")
    assert str(info.value) == f"{taken}: --report must be a folder, but this is a file; choose another --report"


def test_next_numbered_dir_counts_past_the_largest(tmp_path: Path) -> None:
    parent = tmp_path / "runs" / "quickstart"
    assert next_numbered_dir(parent) == parent / "1" and (parent / "1").is_dir()
    (parent / "7").mkdir()
    (parent / "notes").mkdir()
    (parent / "9.bak").mkdir()
    assert next_numbered_dir(parent) == parent / "8"
    assert next_numbered_dir(parent) == parent / "9"


def test_next_numbered_dir_from_threads_never_shares_a_folder(tmp_path: Path) -> None:
    made: list[Path] = []
    threads = [threading.Thread(target=lambda: made.append(next_numbered_dir(tmp_path))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(int(p.name) for p in made) == list(range(1, 9))


def test_next_free_path_never_overwrites(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    assert next_free_path(target) == target
    target.write_text("{}")
    assert next_free_path(target) == tmp_path / "report-2.json"
    (tmp_path / "report-2.json").write_text("{}")
    assert next_free_path(str(target)) == tmp_path / "report-3.json"


def test_json_is_strict_nan_and_inf_become_null(tmp_path: Path) -> None:
    obj = {"a": math.nan, 1: [math.inf, -math.inf, 0.5], "p": tmp_path, "t": (1, "x"), "n": None, "ok": True}
    assert json_safe(obj) == {
        "a": None,
        "1": [None, None, 0.5],
        "p": str(tmp_path),
        "t": [1, "x"],
        "n": None,
        "ok": True,
    }
    text = dumps_json(obj)
    assert json.loads(text) == json_safe(obj) and "NaN" not in text and "Infinity" not in text
    assert dumps_json({"a": [1, 2]}, indent=None) == '{"a": [1, 2]}'


def test_temp_files_are_recognisable_and_cleanup_touches_only_ours(tmp_path: Path) -> None:
    """A killed write leaves ``.<name>.segtmp-…``; cleanup removes exactly those, not a user's dot-files."""
    ours = write_temp(tmp_path / "curves.png", lambda p: p.write_bytes(b"x"))
    theirs = [write_file(tmp_path / n, "keep") for n in (".hidden", ".report.html.bak", ".a.tmp-1-2-3.png")]
    assert is_temp(ours.name) and not any(is_temp(p.name) for p in theirs)
    assert remove_temps([tmp_path, tmp_path / "missing"]) == [ours]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in theirs)


@pytest.mark.parametrize("writer", ["atomic_write", "atomic_write_bytes"])
def test_a_full_disk_names_the_file_being_written(writer: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``os.write`` on a full disk names no file (and safetensors turns ENOSPC into its own error): the
    error raised names the target, and no temp is left."""
    import errno

    import segcli.io_utils as io_utils
    from segcli.errors import from_os_error, is_no_space

    target = tmp_path / "out" / "m.png"

    def full(*args: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    class LibraryError(Exception):
        pass

    def library(p: Path) -> None:
        raise LibraryError(
            'Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space left on device" })'
        )

    if writer == "atomic_write_bytes":
        monkeypatch.setattr(io_utils.os, "write", full)
        call = lambda: io_utils.atomic_write_bytes(target, b"x" * 100)  # noqa: E731
    else:
        call = lambda: io_utils.atomic_write(target, library)  # noqa: E731
    with pytest.raises(OSError) as info:
        call()
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(target) and is_no_space(info.value)
    assert list(target.parent.iterdir()) == []
    message = str(from_os_error(info.value))
    assert message.startswith(f"{target}: no space left on the disk; free some space")


def test_a_writer_that_makes_the_file_anew_keeps_the_umask_mode(tmp_path: Path) -> None:
    """safetensors' save_file replaces the temp file by one of mode 0600: the output still gets the umask's."""

    def recreate(p: Path) -> None:
        p.unlink()
        os.close(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))

    old = os.umask(0o022)
    try:
        out = atomic_write(tmp_path / "w.safetensors", recreate)
    finally:
        os.umask(old)
    assert out.stat().st_mode & 0o777 == 0o644
