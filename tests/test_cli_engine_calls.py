"""Each command is a thin wrapper: patch the engine function and check what it received."""

from __future__ import annotations

import pytest


def test_engine_options_are_named_as_the_user_gave_them() -> None:
    """Errors from eval/infer options name --amp/--device, not the preset keys."""
    import torch

    from segcli.core.runtime import resolve_amp, select_device
    from segcli.errors import UserError

    with pytest.raises(UserError, match=r"^--amp fp32 is not one of auto, none, bf16, fp16$"):
        resolve_amp("fp32", torch.device("cpu"), option="--amp")
    with pytest.raises(UserError, match=r"^--amp fp16 needs CUDA; on CPU use --amp bf16"):
        resolve_amp("fp16", torch.device("cpu"), option="--amp")
    with pytest.raises(UserError, match=r"^--device tpu is not one of"):
        select_device("tpu", option="--device")
    with pytest.raises(UserError, match=r"^train.amp = 'fp32' is not one of"):
        resolve_amp("fp32", torch.device("cpu"))
