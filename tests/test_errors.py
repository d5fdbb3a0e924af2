"""The exception hierarchy (what the CLI turns into one line, with which exit code) and argument names marked in
engine messages."""

from __future__ import annotations

import pytest

from segcli.errors import (
    CheckpointError,
    DataError,
    ExportError,
    PresetError,
    SegError,
    TrainingError,
    TrainingInterrupted,
    UserError,
    arg,
    named_args,
    render_args,
)


@pytest.mark.parametrize("error", [UserError, PresetError, DataError, CheckpointError])
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
