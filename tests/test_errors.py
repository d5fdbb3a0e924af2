"""The exception hierarchy (what the CLI turns into one line, with which exit code) and argument names marked in
engine messages."""

from __future__ import annotations

import pytest

from segcli.errors import (
    CheckpointError,
    DataError,
    ExportError,
    OutputError,
    PresetError,
    SegError,
    TrainingError,
    TrainingInterrupted,
    UserError,
    arg,
    from_os_error,
    is_no_space,
    named_args,
    os_errno,
    render_args,
)


@pytest.mark.parametrize("error", [UserError, PresetError, DataError, CheckpointError, OutputError])
def test_the_users_errors_exit_2(error: type[SegError]) -> None:
    assert issubclass(error, UserError) and issubclass(error, SegError) and error("x").exit_code == 2


@pytest.mark.parametrize("error", [SegError, ExportError, TrainingError])
def test_failures_of_valid_work_exit_1(error: type[SegError]) -> None:
    assert not issubclass(error, UserError) and error("x").exit_code == 1


def test_an_interrupt_is_never_caught_as_an_exception() -> None:
    """Ctrl-C during training must get past every ``except Exception``."""
    assert issubclass(TrainingInterrupted, KeyboardInterrupt) and not issubclass(TrainingInterrupted, Exception)
    assert TrainingInterrupted.exit_code == 130
    with pytest.raises(KeyboardInterrupt):
        try:
            raise TrainingInterrupted("saved after epoch 2")
        except Exception:  # noqa: BLE001 - the point: it does not catch the interrupt
            pytest.fail("an except Exception caught the interrupt")


def test_arg_marks_a_name_and_named_args_finds_them_in_order() -> None:
    message = f"{arg('tile')} is larger than {arg('size')}; see {arg('tile')}"
    assert message == "`tile` is larger than `size`; see `tile`"
    assert named_args(message) == ["tile", "size", "tile"]
    assert named_args("train.amp = 'fp32' is not one of auto, none") == []


def test_render_args_replaces_only_marked_names() -> None:
    message = f"{arg('out_dir')} exists; `Not_A_Name`, `x-y` and `` stay; {arg('tta_scales')} 0"
    shown = render_args(message, lambda name: "--" + name.replace("_", "-"))
    assert shown == "--out-dir exists; `Not_A_Name`, `x-y` and `` stay; --tta-scales 0"
    assert render_args(message, str) == message.replace("`out_dir`", "out_dir").replace("`tta_scales`", "tta_scales")


def test_file_system_errors_the_user_can_fix_are_one_line_with_the_path() -> None:
    """Read-only, permission, full disk and quota become an OutputError naming the path and what to do, also when
    a library reports ENOSPC as text (safetensors) or as the cause of its own error; others are left alone."""
    import errno

    def os_error(code: int, name: str | None = "/out/x.png") -> OSError:
        return OSError(code, "text", name)

    assert str(from_os_error(os_error(errno.EROFS))).startswith("/out/x.png: the file system is read-only; write")
    assert "permission denied" in str(from_os_error(os_error(errno.EACCES)))
    assert "disk quota exceeded" in str(from_os_error(os_error(errno.EDQUOT)))
    assert from_os_error(os_error(errno.ENOSPC, None)) is None  # no path known: not this one line
    assert str(from_os_error(os_error(errno.ENOSPC, None), "/out")).startswith("/out: no space left on the disk")
    assert from_os_error(os_error(errno.ENOENT)) is None and from_os_error(ValueError("x"), "/out") is None
    rust = RuntimeError('IoError(Os { code: 28, kind: StorageFull, message: "No space left on device" })')
    assert os_errno(rust) == errno.ENOSPC and is_no_space(rust)
    assert is_no_space(OSError("81920 requested and 34752 written"))  # numpy's tofile on a full disk: no errno
    try:
        try:
            raise os_error(errno.EDQUOT)
        except OSError as e:
            raise RuntimeError("wrapped") from e
    except RuntimeError as wrapped:
        assert is_no_space(wrapped)
    assert not is_no_space(os_error(errno.EROFS))
