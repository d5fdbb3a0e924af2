"""Any timm backbone as a multi-scale feature encoder (``features_only``).

The decoders read ``channels`` and ``reductions`` (strides) from timm's ``feature_info``, so
one decoder works on every backbone that supports ``features_only``.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import timm
import torch
import torch.nn as nn

from segcli.errors import CheckpointError, PresetError, UserError
from segcli.models.checks import backbone_problem, backbone_stride_problem

_PREFIXES = ("module.", "_orig_mod.", "model.", "backbone.", "encoder.")


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0][:200]


def unpickler_reason(e: BaseException) -> str:
    """What torch's weights-only unpickler refused, in a few words, without torch's advice around it (its
    text spans lines and suggests ``weights_only=False`` or allow-listing globals: never right for a file
    that was refused)."""
    text = str(e)
    tail = text.split("WeightsUnpickler error:", 1)[1] if "WeightsUnpickler error:" in text else ""
    line = next((ln.strip() for ln in tail.splitlines() if ln.strip()), "objects other than tensors")
    return line.split(". ", 1)[0].rstrip(".")[:160]


def load_pickled_weights(path: str | os.PathLike) -> object:
    """``torch.load(weights_only=True)`` of a pickled checkpoint (.pth/.pt/.bin), quietly.

    A pickle holding anything but tensors and plain containers is refused before any of it runs: one
    CheckpointError line saying so (never torch's several lines of advice); torch's warnings about the
    pickle protocol are not shown. Any other failure is one line naming the file."""
    import pickle
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "Weights only load failed" not in str(e):  # not a pickle at all ("invalid load key")
            raise CheckpointError(f"{path}: cannot read weights (UnpicklingError: {_first_line(e)})") from None
        raise CheckpointError(
            f"{path}: refused, not a plain weights file: it holds Python objects ({unpickler_reason(e)}); "
            "only tensors are loaded, so nothing in it was run"
        ) from None
    except Exception as e:  # noqa: BLE001 - any other failure means a damaged or foreign file
        raise CheckpointError(f"{path}: cannot read weights ({type(e).__name__}: {_first_line(e)})") from None


def load_state_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state dict from .safetensors, or .pth/.pt/.bin via ``torch.load(weights_only=True)``."""
    p = Path(path)
    if p.is_dir():
        cands = [p / n for n in ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin")]
        found = next((c for c in cands if c.is_file()), None)
        if found is None:
            raise CheckpointError(f"{p}: no model.safetensors or pytorch_model.bin in this folder")
        p = found
    if not p.is_file():
        raise CheckpointError(f"{p}: pretrained file not found (model.pretrained_file)")
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(p))
        else:
            sd = load_pickled_weights(p)
    except CheckpointError:
        raise
    except Exception as e:  # noqa: BLE001 - any decode failure is the file's fault
        raise CheckpointError(f"{p}: cannot read weights ({type(e).__name__}: {_first_line(e)})") from None
    for key in ("state_dict", "model", "model_ema"):
        if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
            sd = sd[key]
            break
    if not isinstance(sd, dict):
        raise CheckpointError(f"{p}: does not hold a state dict")
    return sd


def _clean_keys(sd: dict[str, torch.Tensor], wanted: set[str]) -> dict[str, torch.Tensor]:
    """Strip wrapper prefixes (DDP, torch.compile, ...) until the keys match the model's."""
    out = dict(sd)
    for _ in range(3):
        if len(wanted & out.keys()) >= len(wanted) // 2:
            break
        for pre in _PREFIXES:
            if sum(k.startswith(pre) for k in out) > len(out) // 2:
                out = {k[len(pre) :] if k.startswith(pre) else k: v for k, v in out.items()}
    return out


def _adapt_stem(weight: torch.Tensor, own: torch.Tensor) -> torch.Tensor:
    """A file's convolution weight for another number of input channels than the model's (an RGB stem for a
    1- or 4-channel model) adapted as timm adapts its own pretrained stems (``adapt_input_conv``: summed for
    one channel, the RGB kernels repeated and rescaled for more); any other tensor unchanged."""
    if weight.ndim != 4 or own.ndim != 4 or weight.shape[1] != 3 or own.shape[1] == 3:
        return weight
    if weight.shape[0] != own.shape[0] or weight.shape[2:] != own.shape[2:]:
        return weight
    from timm.models import adapt_input_conv

    return adapt_input_conv(int(own.shape[1]), weight)


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub (or HF_ENDPOINT) answers a TCP connect within ``timeout`` seconds."""
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


@contextlib.contextmanager
def _offline_if_unreachable(active: bool) -> Iterator[None]:
    """Use the local hub cache only when the hub cannot be reached, instead of a minute of retries."""
    if not active or _hub_reachable():
        yield
        return
    import huggingface_hub.constants as hub

    before = hub.HF_HUB_OFFLINE
    hub.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        hub.HF_HUB_OFFLINE = before


class TimmEncoder(nn.Module):
    """Wraps ``timm.create_model(name, features_only=True)``; forward returns a list of maps."""

    def __init__(
        self,
        name: str,
        pretrained: bool = False,
        pretrained_file: str = "",
        out_indices: tuple[int, ...] | None = None,
        output_stride: int | None = None,
        in_chans: int = 3,
    ) -> None:
        super().__init__()
        kwargs: dict = {"features_only": True, "in_chans": in_chans}
        if out_indices is not None:
            kwargs["out_indices"] = out_indices
        if output_stride not in (None, 32):
            kwargs["output_stride"] = output_stride
        use_hub = pretrained and not pretrained_file
        try:
            with _offline_if_unreachable(use_hub):
                self.body = timm.create_model(name, pretrained=use_hub, **kwargs)
        except Exception as e:  # noqa: BLE001 - timm and hub clients raise many error types
            msg = str(e)
            if "Unknown model" in msg:
                raise PresetError(backbone_problem(name) or f"model.backbone = {name!r}: {msg}") from None
            if "features_only" in msg:
                raise PresetError(f"model.backbone = {name!r} does not support features_only in timm") from None
            if "output_stride" in msg:
                raise PresetError(backbone_stride_problem(name, output_stride)) from None
            if use_hub:
                raise self._offline_error(name, e) from None
            raise
        self.load_report = ""  # what loading pretrained_file did, for the run log
        if pretrained_file:
            report = self.load_pretrained_file(pretrained_file)
            ignored = report["unexpected"]
            self.load_report = f"loaded {report['loaded']} backbone tensors from {pretrained_file}" + (
                f"; ignored {len(ignored)} keys not in the encoder: {', '.join(ignored[:6])}" if ignored else ""
            )
        self.name = name
        self.channels: list[int] = list(self.body.feature_info.channels())
        self.reductions: list[int] = list(self.body.feature_info.reduction())
        if output_stride not in (None, 32) and max(self.reductions) != output_stride:
            raise PresetError(backbone_stride_problem(name, output_stride, reached=self.reductions))
        # Some timm models (Swin, ...) return channels-last maps; the decoders expect NCHW.
        self.nhwc = str(getattr(self.body, "output_fmt", "NCHW")).endswith("NHWC")
        size = getattr(self.body, "pretrained_cfg", {}).get("input_size") or (3, 224, 224)
        self.fixed_size: tuple[int, int] = (int(size[-2]), int(size[-1]))

    def _size_error(self, msg: str, x: torch.Tensor) -> Exception:
        """A UserError naming the input size the backbone accepts (or the original assertion)."""
        h, w = x.shape[-2:]
        m = re.search(r"divisible by patch size \((\d+)\)", msg)
        if m:
            k = int(m.group(1))
            ph, pw = -(-h // k) * k, -(-w // k) * k
            return UserError(
                f"backbone {self.name!r} needs input height and width divisible by {k}, got {h}x{w}; "
                f"pad or resize to {ph}x{pw}"
            )
        if "doesn't match model" in msg:
            fh, fw = self.fixed_size
            return UserError(
                f"backbone {self.name!r} only accepts {fh}x{fw} input, got {h}x{w}; "
                f"resize or pad to {fh}x{fw} (eval.size / augment.crop_size) or pick a CNN backbone"
            )
        return AssertionError(msg)

    @staticmethod
    def _offline_error(name: str, err: Exception) -> CheckpointError:
        return CheckpointError(
            f"cannot fetch timm's pretrained weights for {name!r} ({type(err).__name__}); offline? "
            f"Download them elsewhere and set model.pretrained_file=/path/to/{name}.safetensors "
            "(or a .pth file, or a timm/Hugging Face model folder), or set model.pretrained=false"
        )

    def load_pretrained_file(self, path: str | os.PathLike) -> dict:
        """Load backbone weights; keys must cover the encoder (a classifier head is ignored)."""
        sd = load_state_file(path)
        own = self.body.state_dict()
        sd = _clean_keys(sd, set(own))
        missing = sorted(set(own) - set(sd))
        unexpected = sorted(set(sd) - set(own))
        if missing:
            raise CheckpointError(
                f"{path}: {len(missing)} backbone weights missing, e.g. {', '.join(missing[:4])}; "
                f"is it a checkpoint of {type(self.body).__name__} / the right timm model?"
            )
        sd = {k: _adapt_stem(sd[k], own[k]) for k in own}
        bad = [k for k in own if sd[k].shape != own[k].shape]
        if bad:
            k = bad[0]
            raise CheckpointError(
                f"{path}: shape mismatch for {k}: file {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
            )
        self.body.load_state_dict({k: sd[k] for k in own}, strict=True)
        return {"loaded": len(own), "missing": missing, "unexpected": unexpected}

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        try:
            feats = self.body(x)
        except AssertionError as e:  # timm's patch embeddings (ViT, Swin) assert on the input size
            raise self._size_error(str(e), x) from None
        if self.nhwc:
            feats = [f.permute(0, 3, 1, 2) for f in feats]
        return feats
