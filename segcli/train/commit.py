"""One save of a run is one consistent set of files: metrics.csv, weights/*.safetensors and state.pt.

A save (:func:`commit`) writes every file to a temp name beside it (``.<name>.XXXX``, as
:func:`segcli.io_utils.atomic_write` does), then writes ``checkpoint.json`` atomically (epoch, step,
the files and the temp name of each), then renames the temps onto the real names. The manifest is
the commit point:

* killed before it: the temps are strays, the files on disk are still the previous save, and the
  manifest still describes it;
* killed after it, during the renames: the manifest names every temp not renamed yet, so
  :func:`recover` finishes the renames (renaming is idempotent: a temp already moved is gone).

Resume calls :func:`recover` first, which finishes a cut-short commit and removes every other temp.

Ctrl-C never cuts a save short: a SIGINT that arrives while one is written is held until it is complete
(a second one stops at once), and a KeyboardInterrupt that comes through a writer anyway makes the save
start again once before it goes on, so the log's "N finished epoch(s) saved" is true.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from segcli.core.rundir import RunDir
from segcli.errors import CheckpointError, OutputError, is_no_space
from segcli.io_utils import atomic_write_text, remove_temps, write_temp

__all__ = ["FORMAT", "InterruptedAfterSave", "commit", "read_manifest", "recover"]

FORMAT = "segcli-checkpoint/1"
Writer = Callable[[Path], None]


def _stage(path: Path, writer: Writer) -> Path:
    """``writer`` into a temp file beside ``path`` (not renamed yet); the temp path."""
    return write_temp(path, writer, durable=True)


def _inside(run: RunDir, path: Path) -> str:
    """``path`` relative to the run directory, as posix text (either may be relative or absolute)."""
    return Path(os.path.relpath(path, run.path)).as_posix()


def _rename(src: Path, dst: Path) -> None:
    os.replace(src, dst)


def _finish(run: RunDir, manifest: Mapping[str, Any]) -> None:
    """Rename every temp the manifest names that is still there onto its file (state.pt last)."""
    pending = dict(manifest.get("pending", {}))
    for name in sorted(pending, key=lambda n: n == run.state.name):
        tmp = run.path / pending[name]
        if tmp.is_file():
            _rename(tmp, run.path / name)


class InterruptedAfterSave(KeyboardInterrupt):
    """Ctrl-C that came during a save, raised once the save was complete: what it wrote is on disk."""


class _Insisted(KeyboardInterrupt):
    """A second Ctrl-C during a save: stop now (the previous save stays), no second try."""


@contextlib.contextmanager
def sigint_held() -> Iterator[None]:
    """Hold Ctrl-C for the block: a SIGINT arriving inside it is raised as KeyboardInterrupt when the block
    has completed; a second one is raised at once (a user who insists stops now, the previous save intact).

    Only the main thread can set signal handlers; elsewhere, or under a handler Python did not set, the block
    runs as it is.
    """
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is None:
        yield
        return
    held: list[int] = []

    def hold(signum: int, frame: object) -> None:
        if held:
            raise _Insisted
        held.append(signum)

    previous = signal.signal(signal.SIGINT, hold)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if held:
        raise InterruptedAfterSave


def commit(run: RunDir, epoch: int, step: int, files: Mapping[Path, Writer]) -> None:
    """Write ``files`` (path → writer) as one save of ``run``: all of them, or (after a kill) none.

    Ctrl-C during the save is raised after it (:func:`sigint_held`); a KeyboardInterrupt raised by a writer
    anyway lets the save start over once, then goes on. Either way as :class:`InterruptedAfterSave`.
    """
    with sigint_held():
        try:
            _commit(run, epoch, step, files)
        except _Insisted:
            raise
        except KeyboardInterrupt:
            _commit(run, epoch, step, files)  # the finished work is saved before stopping
            raise InterruptedAfterSave from None


def _commit(run: RunDir, epoch: int, step: int, files: Mapping[Path, Writer]) -> None:
    staged: dict[Path, Path] = {}
    try:
        for path, writer in files.items():
            staged[path] = _stage(path, writer)
        # relpath, not relative_to: the temps are absolute (mkstemp) even when the run's path is relative
        rel = {_inside(run, p): _inside(run, tmp) for p, tmp in staged.items()}
        manifest = {"format": FORMAT, "epoch": epoch, "step": step, "files": sorted(rel), "pending": rel}
        atomic_write_text(run.manifest, json.dumps(manifest, indent=1) + "\n", durable=True)  # the commit point
    except BaseException as e:
        for tmp in staged.values():
            tmp.unlink(missing_ok=True)
        if is_no_space(e):  # an OSError, or a library's own error for it (safetensors' SafetensorError)
            raise OutputError(
                f"{run.path}: no space left on the disk while saving epoch {epoch} (step {step}); the previous "
                f"checkpoint set is intact: free space, then seg train --resume {run.path}"
            ) from None
        raise
    _finish(run, manifest)


def read_manifest(run: RunDir) -> dict[str, Any] | None:
    """``checkpoint.json``, or None for a run without one (saved before manifests existed, or none yet)."""
    if not run.manifest.is_file():
        return None
    try:
        manifest = json.loads(run.manifest.read_text(encoding="utf-8"))
        if manifest.get("format") != FORMAT:
            raise ValueError(f"format {manifest.get('format')!r}, expected {FORMAT!r}")
        return manifest
    except (ValueError, AttributeError, OSError) as e:
        raise CheckpointError(
            f"{run.manifest}: damaged checkpoint manifest ({e}); delete it to resume from state.pt"
        ) from None


def _strays(run: RunDir) -> list[Path]:
    """Temp files of interrupted writes named as before the ``segtmp`` tag: ``.<name>.*`` beside a run's
    checkpoint files."""
    names = {run.metrics.name, run.state.name, run.manifest.name, run.preset.name}
    names |= {run.weights(n).name for n in ("last", "best", "ema")}
    folders = [d for d in (run.path, run.weights_dir) if d.is_dir()]
    return [f for d in folders for f in d.iterdir() if any(f.name.startswith(f".{n}.") for n in names)]


def recover(run: RunDir) -> dict[str, Any] | None:
    """Before resuming (under the run's lock): finish a commit cut short by a kill and delete every other temp
    file a killed write of training left (checkpoint files, plots, report.html; not eval/ or export/, which
    other commands may be writing now).

    Returns the manifest (None for a run without one).
    """
    manifest = read_manifest(run)
    if manifest is not None:
        _finish(run, manifest)
    for stray in _strays(run):
        stray.unlink(missing_ok=True)
    remove_temps([run.path, run.weights_dir, run.plots_dir])
    return manifest
