"""``model.init_from``: start training from a whole model's weights (fine-tuning), not only a backbone's.

Keys that fit load; when the number of classes differs, the classifier layers (the tensors whose first
dimension is the number of classes) keep their fresh initialisation; keys of the file the model lacks
are ignored; any other missing or shape-mismatched key is an error naming them. The report (counts and
names) goes to the run log and the console.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from segcli.errors import CheckpointError

# Buffers the preset sets (input normalisation): never taken from the file.
_PRESET_BUFFERS = ("mean", "std")


@dataclass
class InitReport:
    """What ``init_from`` did with each key."""

    path: str
    loaded: list[str] = field(default_factory=list)
    reinitialised: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    classes_from: int = 0
    classes_to: int = 0

    def lines(self) -> list[str]:
        """The report as run-log lines."""
        head = (
            f"init_from {self.path}: loaded {len(self.loaded)} tensors, re-initialised {len(self.reinitialised)}, "
            f"ignored {len(self.ignored)}"
        )
        out = [head]
        if self.reinitialised:
            out.append(
                f"init_from: classifier re-initialised ({self.classes_from} → {self.classes_to} classes): "
                + ", ".join(self.reinitialised)
            )
        if self.ignored:
            out.append("init_from: ignored (not in this model): " + _short(self.ignored))
        return out


def _short(keys: list[str], n: int = 8) -> str:
    return ", ".join(keys[:n]) + (f", ... ({len(keys)} in all)" if len(keys) > n else "")


def _read(path: Path) -> tuple[dict[str, torch.Tensor], int | None]:
    """Tensors and the number of classes (when the file says) of a segcli weights file or a plain state dict."""
    from segcli.core.checkpoint import FORMAT, load_weights, read_metadata

    if path.suffix == ".safetensors" and read_metadata(path).get("format") == FORMAT:
        state, meta = load_weights(path)
        return state, meta.num_classes
    from segcli.convert.loader import read_checkpoint, unwrap

    return unwrap(read_checkpoint(path), strip=True).state, None


def init_from(model: torch.nn.Module, path: str | os.PathLike) -> InitReport:
    """Load ``path`` into ``model`` (a Segmenter) as described in the module docstring."""
    path = Path(path)
    sd, file_classes = _read(path)
    net = getattr(model, "net", model)
    n_to = int(getattr(net, "num_classes", 0))
    own = model.state_dict()
    report = InitReport(str(path), classes_to=n_to)
    mismatched = [k for k in own if k in sd and sd[k].shape != own[k].shape and k not in _PRESET_BUFFERS]
    # a classifier tensor: only its first dimension differs, and it is the number of classes on each side
    n_from = file_classes or next((int(sd[k].shape[0]) for k in mismatched if own[k].shape[0] == n_to), 0)
    report.classes_from = n_from
    for k in mismatched:
        a, b = sd[k].shape, own[k].shape
        if n_from != n_to and len(a) == len(b) and a[1:] == b[1:] and a[0] == n_from and b[0] == n_to:
            report.reinitialised.append(k)
    bad = [
        f"{k}: file {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
        for k in mismatched
        if k not in report.reinitialised
    ]
    missing = [k for k in own if k not in sd and k not in _PRESET_BUFFERS]
    if bad or missing:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing from the file ({_short(missing, 4)})")
        if bad:
            parts.append(f"{len(bad)} of another shape ({_short(bad, 3)})")
        raise CheckpointError(
            f"model.init_from = {str(path)!r} does not fit this model: {'; '.join(parts)}; is it a checkpoint "
            "of the same model.name / backbone / decoder_channels? (backbone-only weights go in model.pretrained_file)"
        )
    report.ignored = sorted(k for k in sd if k not in own)
    take = {k: v for k, v in sd.items() if k in own and k not in _PRESET_BUFFERS and k not in report.reinitialised}
    report.loaded = sorted(take)
    model.load_state_dict(take, strict=False)
    return report


def init_lines(model: torch.nn.Module, path: str) -> list[str]:
    """The run-log lines of ``init_from(model, path)``; nothing (and nothing loaded) when ``path`` is empty."""
    return init_from(model, path).lines() if path else []
