"""Devices, autocast and threads: the CPU/CUDA differences in one place."""

from __future__ import annotations

import contextlib
import os

import torch

from segcli.errors import UserError

AMP_MODES = ("auto", "none", "bf16", "fp16")


def select_device(pref: str, local_rank: int | None = None, option: str = "train.device") -> torch.device:
    """``auto`` → CUDA when available (this process's GPU under torchrun), else CPU.

    ``option`` is how the user set it (``train.device`` in a preset, ``errors.arg("device")`` for a call
    argument, which the command line shows as ``--device``), so errors name what to change.
    """
    pref = pref.strip().lower()
    if pref == "auto":
        pref = "cuda" if torch.cuda.is_available() else "cpu"
    if pref.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"{_said(option, pref)} but CUDA is not available here; use {_set(option, 'cpu')}")
        if pref == "cuda" and local_rank is not None:
            pref = f"cuda:{local_rank}"
        dev = torch.device(pref)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UserError(f"{_said(option, pref)}: only {torch.cuda.device_count()} CUDA device(s) here")
        return dev
    if pref == "cpu":
        return torch.device("cpu")
    if pref == "mps" and getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    raise UserError(f"{_said(option, pref)} is not one of auto, cpu, cuda, cuda:N")


def _said(option: str, value: str) -> str:
    """``train.device = 'x'`` for a preset key, ```device` x`` for a call argument (:func:`segcli.errors.arg`;
    the CLI shows its flag), ``--device x`` for a flag named as such."""
    return f"{option} {value}" if option.startswith(("--", "`")) else f"{option} = {value!r}"


def _set(option: str, value: str) -> str:
    return f"{option} {value}" if option.startswith(("--", "`")) else f"{option}={value}"


def bf16_supported(device: torch.device) -> bool:
    """Native bf16 matrix support: AVX512-BF16/AMX on CPU (via oneDNN), Ampere or newer on CUDA."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    return False


def resolve_amp(amp: str, device: torch.device, option: str = "train.amp") -> str:
    """``auto`` → bf16 where native, else fp16 on CUDA, else none; fp16 off CUDA is an error.

    An unknown value is an error naming ``option`` (never a silent fallback to some precision).
    """
    if amp not in AMP_MODES:
        raise UserError(f"{_said(option, amp)} is not one of {', '.join(AMP_MODES)}")
    if amp == "auto":
        if bf16_supported(device):
            return "bf16"
        return "fp16" if device.type == "cuda" else "none"
    if amp == "fp16" and device.type != "cuda":
        raise UserError(f"{_said(option, 'fp16')} needs CUDA; on CPU use {_set(option, 'bf16')} (or auto, or none)")
    return amp


def autocast(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    """The autocast context for ``amp`` in none/bf16/fp16 (fp16 only on CUDA)."""
    if amp == "none":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(device: torch.device, amp: str) -> torch.amp.GradScaler:
    """A real scaler for fp16 on CUDA; a disabled one otherwise (same API, no effect)."""
    return torch.amp.GradScaler(device.type, enabled=(amp == "fp16" and device.type == "cuda"))


def set_threads(threads: int) -> None:
    if threads > 0:
        torch.set_num_threads(threads)


def set_deterministic(on: bool) -> None:
    """Deterministic kernels (bitwise-repeatable runs) when asked; cuDNN autotuning otherwise."""
    if on:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    else:
        torch.backends.cudnn.benchmark = True
