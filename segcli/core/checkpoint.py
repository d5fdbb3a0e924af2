"""Checkpoints: self-describing safetensors weights, and the resumable training state.

``weights/*.safetensors`` holds the model plus metadata (classes, palette, ignore_index,
mean/std, the resolved preset), so inference needs nothing else. ``state.pt`` holds what
resuming needs; it is read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from segcli.config.load import preset_from_dict, preset_to_toml
from segcli.config.schema import Preset
from segcli.config.validate import resolve_normalisation
from segcli.data.format import DataFingerprint, DatasetInfo
from segcli.errors import CheckpointError, SegError
from segcli.io_utils import atomic_write

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

FORMAT = "segcli-weights/1"
TEMPERATURE_KEY = "temperature"  # `seg calibrate`'s temperature scaling: a JSON list, one value or one a class


@dataclass(frozen=True)
class CheckpointMeta:
    """What a weights file says about itself."""

    classes: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    ignore_index: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    preset: Preset
    dataset: str = ""
    epoch: int = 0
    metrics: dict[str, Any] | None = None
    temperature: tuple[float, ...] = ()  # `seg calibrate`'s temperature scaling (one value, or one a class)
    data: DataFingerprint | None = None  # the data it trained on (None: a file written without it)

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module behind DDP / torch.compile wrappers."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


def weights_writer(model: torch.nn.Module, preset: Preset, info: DatasetInfo, **about: Any) -> Callable[[Path], None]:
    """``writer(path)`` writing the model's weights (as they are now) and metadata to a .safetensors file;
    ``about``: the training facts of :func:`weights_metadata` (epoch, metrics, data)."""
    state = {k: v.detach().cpu().contiguous() for k, v in _unwrap(model).state_dict().items()}
    meta = weights_metadata(preset, info, **about)
    return lambda path: save_file(state, str(path), metadata=meta)


def weights_metadata(
    preset: Preset,
    info: DatasetInfo,
    epoch: int = 0,
    metrics: dict[str, Any] | None = None,
    data: DataFingerprint | None = None,
) -> dict[str, str]:
    """The metadata that makes a weights file self-describing (classes, palette, normalisation, preset) and,
    from training, the data it learnt from (``data``: absolute folder, images per split, classes)."""
    # a loaded preset holds numbers already; one built in code may not
    norm = resolve_normalisation(preset.model, preset.data.channels)
    return {
        "format": FORMAT,
        "classes": json.dumps(list(info.classes)),
        "palette": json.dumps([list(c) for c in info.palette]),
        "ignore_index": str(info.ignore_index),
        "mean": json.dumps(list(norm.mean)),
        "std": json.dumps(list(norm.std)),
        "preset": preset_to_toml(preset),
        "dataset": info.name,
        "epoch": str(epoch),
        "metrics": json.dumps(metrics or {}),
        **({"data": data.to_json()} if data is not None else {}),
    }


def save_weights(
    path: str | os.PathLike, model: torch.nn.Module, preset: Preset, info: DatasetInfo, **about: Any
) -> Path:
    """Write the model's weights and metadata to a .safetensors file atomically (``about``: as
    :func:`weights_writer`)."""
    return atomic_write(path, weights_writer(model, preset, info, **about))


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable .safetensors file ({e})") from None


def load_weights(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], CheckpointMeta]:
    """Read weights and metadata; a file without segcli metadata is a clear error."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: weights file not found")
    raw = read_metadata(path)
    if raw.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: not a segcli weights file (no '{FORMAT}' metadata); convert it with seg convert-ckpt"
        )
    meta = meta_from_strings(raw, path)
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{path}: cannot read tensors ({e})") from None
    return state, meta


def meta_from_strings(raw: dict[str, str], path: str | os.PathLike) -> CheckpointMeta:
    """The :class:`CheckpointMeta` of string metadata as :func:`weights_writer` writes it (safetensors
    header, or an exported model's metadata); damaged values are a CheckpointError naming ``path``."""
    try:
        preset = preset_from_dict(tomllib.loads(raw["preset"]), source=f"{path} (embedded preset)")
        return CheckpointMeta(
            classes=tuple(json.loads(raw["classes"])),
            palette=tuple(tuple(c) for c in json.loads(raw["palette"])),
            ignore_index=int(raw["ignore_index"]),
            mean=tuple(json.loads(raw["mean"])),
            std=tuple(json.loads(raw["std"])),
            preset=preset,
            dataset=raw.get("dataset", ""),
            epoch=int(raw.get("epoch", 0)),
            metrics=json.loads(raw.get("metrics", "{}")),
            temperature=tuple(float(t) for t in json.loads(raw.get(TEMPERATURE_KEY, "[]"))),
            data=DataFingerprint.from_json(raw["data"]) if "data" in raw else None,
        )
    except SegError:
        raise
    except (KeyError, ValueError, tomllib.TOMLDecodeError) as e:
        raise CheckpointError(f"{path}: damaged segcli metadata ({type(e).__name__}: {e})") from None


def build_from_weights(
    path: str | os.PathLike, device: torch.device | str = "cpu"
) -> tuple[torch.nn.Module, CheckpointMeta]:
    """The ready-to-run model (eval mode) and its metadata from a weights file."""
    from dataclasses import replace

    from segcli.core.factory import model_from_preset

    state, meta = load_weights(path)
    cfg = replace(meta.preset.model, pretrained=False, pretrained_file="")
    model = _built_without_init(lambda: model_from_preset(cfg, meta.num_classes), state)
    if model is None:
        model = model_from_preset(cfg, meta.num_classes)
        own = model.state_dict()
        problems = state_mismatch(own, state)
        if problems:
            raise CheckpointError(
                f"{path}: weights do not fit the model its metadata describes ({cfg.name}, {cfg.backbone}, "
                f"{meta.num_classes} classes): {problems}; its metadata and tensors disagree: use the file its "
                "run wrote"
            )
        model.load_state_dict(state, strict=True)
    return model.to(device).eval(), meta


def state_mismatch(own: dict[str, torch.Tensor], state: dict[str, torch.Tensor]) -> str:
    """One line summing up how ``state`` fails to fit a model whose state dict is ``own`` ("" when it fits):
    "N missing keys e.g. ..., M not in the model e.g. ..., K of another shape e.g. key (file [...], model [...])",
    instead of ``load_state_dict``'s several lines listing every key."""
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing key(s) e.g. {', '.join(missing[:2])}")
    if unexpected:
        parts.append(f"{len(unexpected)} not in the model e.g. {', '.join(unexpected[:2])}")
    if shapes:
        k = shapes[0]
        parts.append(
            f"{len(shapes)} of another shape e.g. {k} (file {list(state[k].shape)}, model {list(own[k].shape)})"
        )
    return ", ".join(parts)


def _built_without_init(build: Callable[[], torch.nn.Module], state: dict[str, torch.Tensor]) -> torch.nn.Module | None:
    """The model holding ``state``, built on the meta device and given the checkpoint's tensors: no random
    initialisation, which is most of the time to load a model (about 60 of 80 ms for a ResNet-18 FPN on
    this CPU). None when that cannot be done exactly (a model that does not build on meta, a tensor the
    checkpoint lacks such as a non-persistent buffer, a key mismatch): the caller builds it the ordinary way."""
    try:
        with torch.device("meta"):
            model = build()
    except Exception:  # noqa: BLE001 - any failure here means: build it the ordinary way
        return None
    own = model.state_dict()
    tensors = {n for n, _ in model.named_parameters(remove_duplicate=False)}
    tensors |= {n for n, _ in model.named_buffers(remove_duplicate=False)}
    if set(own) != set(state) or not tensors <= set(own):
        return None
    if any(own[k].shape != v.shape for k, v in state.items()):
        return None
    model.to_empty(device="cpu")  # fresh storage (aligned as the ordinary build's: same kernels, same sums)
    model.load_state_dict(state, strict=True)
    return model


def state_writer(state: dict[str, Any]) -> Callable[[Path], None]:
    """``writer(path)`` writing the resumable training state."""
    return lambda path: torch.save(state, path)


def save_state(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write the resumable training state atomically."""
    return atomic_write(path, state_writer(state))


def load_state(path: str | os.PathLike) -> dict[str, Any]:
    """Read ``state.pt`` safely (``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no training state to resume from (the run ended before its first epoch?)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # torch's message (several lines) advises weights_only=False: never the right advice for a file we refused
        raise CheckpointError(
            f"{path}: not a segcli training state or unsafe to load (it holds objects other than tensors "
            "and plain values); resume only runs that segcli wrote"
        ) from None
    except Exception as e:  # noqa: BLE001 - any other failure means a damaged file
        first = (str(e).strip().splitlines() or [""])[0]
        raise CheckpointError(f"{path}: cannot read training state ({type(e).__name__}: {first})") from None


def update_metadata(path: str | os.PathLike, updates: dict[str, str | None]) -> Path:
    """Rewrite a .safetensors file with its metadata changed (a None value removes the key), atomically: the
    tensors are copied unchanged."""
    meta = read_metadata(path)
    for k, v in updates.items():
        if v is None:
            meta.pop(k, None)
        else:
            meta[k] = v
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{path}: cannot read tensors ({e})") from None
    return atomic_write(path, lambda p: save_file(state, str(p), metadata=meta))
