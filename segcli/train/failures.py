"""What a training failure says: out of memory as one line naming the sizes that decide it and what to try."""

from __future__ import annotations

import torch

from segcli.config.schema import Preset
from segcli.core.rundir import RunDir
from segcli.errors import TrainingError


def is_out_of_memory(e: BaseException) -> bool:
    """torch.OutOfMemoryError (torch >= 2.5), or the RuntimeError older versions and other backends raise."""
    oom = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", None)
    return (oom is not None and isinstance(e, oom)) or (isinstance(e, RuntimeError) and "out of memory" in str(e))


def out_of_memory(p: Preset, where: str, device: torch.device, run: RunDir) -> TrainingError:
    """One line: what ran out of memory, the sizes that decide it and what to try."""
    kept = f"the last save in {run.path} is kept"
    if where == "validation":
        size = f"[{', '.join(map(str, p.eval.size))}]" if p.eval.size else "native"
        return TrainingError(
            f"{device} ran out of memory in validation (eval.batch_size = {p.eval.batch_size}, eval.size = {size}); "
            f"try eval.batch_size={max(1, p.eval.batch_size // 2)}, a smaller eval.size or train.amp=bf16; {kept}"
        )
    bs, acc = p.data.batch_size, p.train.accumulate
    crop = f"[{', '.join(map(str, p.augment.crop_size))}]"
    return TrainingError(
        f"{device} ran out of memory in the training step (data.batch_size = {bs}, augment.crop_size = {crop}); "
        f"try data.batch_size={max(1, bs // 2)} with train.accumulate={acc * 2} to keep the effective batch, "
        f"a smaller augment.crop_size, or train.amp=bf16; {kept}"
    )
