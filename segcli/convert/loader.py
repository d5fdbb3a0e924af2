"""Reading foreign checkpoints safely: ``torch.load(weights_only=True)`` or safetensors, never a pickle
that runs code; then finding the state dict inside and removing wrapper prefixes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from segcli.errors import CheckpointError, arg
from segcli.models.encoder import load_pickled_weights

PICKLE_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin")
# Entries that hold the model's weights, in the order they are preferred.
WRAPPERS = ("state_dict", "model", "module", "ema")
# Entries of a training checkpoint that are not the model (dropped by --strip).
TRAINING_STATE = (
    "optimizer",
    "optimizers",
    "optimizer_states",
    "optim",
    "scheduler",
    "lr_scheduler",
    "lr_schedulers",
    "scaler",
    "grad_scaler",
    "amp",
    "epoch",
    "step",
    "global_step",
    "iteration",
    "iter",
    "rng",
    "args",
    "config",
)
# Wrapper prefixes: DDP / DataParallel, torch.compile.
PREFIXES = ("module.", "_orig_mod.")

RESAVE_HINT = (
    "if you trust the file, load it yourself in trusted code and re-save the weights: "
    "torch.save(model.state_dict(), 'clean.pth')"
)


def read_checkpoint(path: str | os.PathLike) -> Any:
    """The object stored in ``path``: safetensors, or a pickle loaded with ``weights_only=True``.

    A pickle that would import or call anything is refused before any of it runs.
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{p}: checkpoint not found")
    suffix = p.suffix.lower()
    if suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(p))
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f"{p}: not a readable .safetensors file ({e})") from None
    if suffix not in PICKLE_SUFFIXES:
        raise CheckpointError(
            f"{p}: unknown checkpoint type {suffix or '(no suffix)'!r}; expected .safetensors, "
            + ", ".join(PICKLE_SUFFIXES)
        )
    try:
        return load_pickled_weights(p)
    except CheckpointError as e:
        if ": refused," not in str(e):
            raise
        raise CheckpointError(f"{e}; {RESAVE_HINT}") from None


def _is_weights(obj: Any) -> bool:
    """A dict holding at least one tensor (nested dicts of tensors count)."""
    if not isinstance(obj, dict):
        return False
    return any(isinstance(v, torch.Tensor) or _is_weights(v) for v in obj.values())


@dataclass
class Unwrapped:
    """A state dict found inside a checkpoint, and what was done to find it."""

    state: dict[str, torch.Tensor]
    path: list[str] = field(default_factory=list)  # the nested entries descended into
    left: list[str] = field(default_factory=list)  # entries beside them that were left behind
    stripped: dict[str, int] = field(default_factory=dict)  # prefix -> how many keys lost it
    dropped_non_tensor: list[str] = field(default_factory=list)  # with strip: non-weight entries removed


def _flatten(obj: dict[str, Any], prefix: str = "") -> tuple[dict[str, torch.Tensor], list[str]]:
    """Tensors keyed by dotted path; the keys of non-tensor leaves."""
    tensors: dict[str, torch.Tensor] = {}
    other: list[str] = []
    for k, v in obj.items():
        key = f"{prefix}{k}"
        if isinstance(v, torch.Tensor):
            tensors[key] = v
        elif isinstance(v, dict) and _is_weights(v):
            sub, rest = _flatten(v, key + ".")
            tensors.update(sub)
            other += rest
        else:
            other.append(key)
    return tensors, other


def unwrap(obj: Any, key: str | None = None, strip: bool = False) -> Unwrapped:
    """Descend into ``state_dict``/``model``/``module``/``ema`` entries (``key`` picks one explicitly),
    flatten, and strip ``module.`` / ``_orig_mod.`` prefixes.

    Without ``strip`` a state dict that still holds non-tensor entries (an optimizer's step count, an
    epoch) is an error naming them; with it they are dropped and listed.
    """
    if not _is_weights(obj):
        raise CheckpointError("the checkpoint holds no tensors (not a model state dict)")
    path: list[str] = []
    left: list[str] = []
    while True:
        names = [key] if key and not path else list(WRAPPERS)
        if key and not path and key not in obj:
            found = ", ".join(k for k in obj if isinstance(k, str) and _is_weights(obj[k])) or "none"
            raise CheckpointError(
                f"{arg('key')} {key!r}: no such entry in the checkpoint; entries holding tensors: {found}"
            )
        nxt = next((n for n in names if n in obj and _is_weights(obj[n])), None)
        if nxt is None:
            break
        left += [f"{'.'.join(path + [str(k)])}" for k in obj if k != nxt]
        path.append(nxt)
        obj = obj[nxt]
    if not all(isinstance(k, str) for k in obj):
        raise CheckpointError("the state dict has non-string keys (not a model state dict)")
    training = [k for k in obj if k in TRAINING_STATE]
    if training and not strip:
        raise CheckpointError(
            f"the state dict also holds training state ({', '.join(training)}); "
            f"pass {arg('strip')} to keep the model weights only"
        )
    tensors, other = _flatten({k: v for k, v in obj.items() if k not in TRAINING_STATE})
    other = training + other
    if other and not strip:
        shown = ", ".join(other[:6]) + (", ..." if len(other) > 6 else "")
        raise CheckpointError(
            f"the state dict holds {len(other)} entries that are not tensors ({shown}); "
            f"pass {arg('strip')} to keep the model weights only"
        )
    out = Unwrapped(tensors, path, left, dropped_non_tensor=other if strip else [])
    out.state = strip_prefixes(tensors, out.stripped)
    return out


def strip_prefixes(sd: dict[str, torch.Tensor], counts: dict[str, int] | None = None) -> dict[str, torch.Tensor]:
    """Remove ``module.`` and ``_orig_mod.`` wherever they lead a key (repeatedly: both may wrap)."""
    counts = counts if counts is not None else {}
    out = {}
    for k, v in sd.items():
        changed = True
        while changed:
            changed = False
            for pre in PREFIXES:
                if k.startswith(pre):
                    k = k[len(pre) :]
                    counts[pre] = counts.get(pre, 0) + 1
                    changed = True
        if k in out:
            raise CheckpointError(f"two tensors become {k!r} once wrapper prefixes are removed")
        out[k] = v
    return out
