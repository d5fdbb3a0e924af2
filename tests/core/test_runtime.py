"""Devices, autocast and threads (segcli/core/runtime.py): choices that fail name the key or flag to change."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from cli_helpers import user_error

from segcli.core import runtime
from segcli.core.runtime import autocast, grad_scaler, resolve_amp, select_device, set_deterministic, set_threads
from segcli.errors import UserError

CPU = torch.device("cpu")


@pytest.fixture
def no_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def one_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)


def test_auto_is_cpu_without_cuda_and_values_are_read_loosely(no_cuda: None) -> None:
    assert select_device("auto") == CPU
    assert select_device(" CPU ") == CPU


def test_auto_and_cuda_pick_this_process_gpu_under_torchrun(one_gpu: None) -> None:
    assert select_device("auto") == torch.device("cuda")
    assert select_device("cuda", local_rank=0) == torch.device("cuda", 0)
    assert select_device("cuda:0", local_rank=5) == torch.device("cuda", 0)  # an explicit index wins


def test_cuda_without_cuda_names_the_key_or_the_flag(no_cuda: None) -> None:
    with pytest.raises(UserError, match=r"^train.device = 'cuda' but CUDA is not available here; use train.device=cpu"):
        select_device("cuda")
    with pytest.raises(UserError, match=r"^--device cuda:1 but CUDA is not available here; use --device cpu"):
        select_device("cuda:1", option="--device")


def test_a_gpu_index_past_the_devices_is_refused(one_gpu: None) -> None:
    with pytest.raises(UserError, match=r"train.device = 'cuda:3': only 1 CUDA device\(s\) here"):
        select_device("cuda:3")


def test_an_unknown_device_lists_the_choices() -> None:
    with pytest.raises(UserError, match=r"train.device = 'tpu' is not one of auto, cpu, cuda, cuda:N"):
        select_device("tpu")


def test_auto_amp_is_bf16_where_native_else_fp16_on_cuda_else_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "bf16_supported", lambda device: True)
    assert resolve_amp("auto", CPU) == "bf16"
    monkeypatch.setattr(runtime, "bf16_supported", lambda device: False)
    assert resolve_amp("auto", CPU) == "none"
    assert resolve_amp("auto", torch.device("cuda", 0)) == "fp16"
    assert resolve_amp("none", CPU) == "none" and resolve_amp("bf16", CPU) == "bf16"


def test_amp_errors_name_the_option() -> None:
    with pytest.raises(UserError, match=r"train.amp = 'fp32' is not one of auto, none, bf16, fp16"):
        resolve_amp("fp32", CPU)
    with pytest.raises(UserError, match=r"train.amp = 'fp16' needs CUDA; on CPU use train.amp=bf16"):
        resolve_amp("fp16", CPU)
    with pytest.raises(UserError, match=r"--amp fp16 needs CUDA; on CPU use --amp bf16"):
        resolve_amp("fp16", CPU, option="--amp")


def test_bf16_support_is_false_off_cpu_and_cuda() -> None:
    assert runtime.bf16_supported(torch.device("meta")) is False
    assert isinstance(runtime.bf16_supported(CPU), bool)


def test_autocast_runs_matmuls_in_the_chosen_precision() -> None:
    a, b = torch.randn(4, 4), torch.randn(4, 4)
    assert isinstance(autocast(CPU, "none"), contextlib.nullcontext)
    with autocast(CPU, "bf16"):
        assert (a @ b).dtype == torch.bfloat16
    with autocast(CPU, "none"):
        assert (a @ b).dtype == torch.float32


def test_the_grad_scaler_scales_only_fp16_on_cuda() -> None:
    assert not grad_scaler(CPU, "fp16").is_enabled()
    assert not grad_scaler(CPU, "bf16").is_enabled()


def test_set_threads_leaves_the_default_at_zero() -> None:
    before = torch.get_num_threads()
    try:
        set_threads(0)
        assert torch.get_num_threads() == before
        set_threads(1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_deterministic_switches_kernels_and_cudnn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    before = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.benchmark,
        torch.backends.cudnn.deterministic,
    )
    try:
        set_deterministic(True)
        assert torch.are_deterministic_algorithms_enabled() and not torch.backends.cudnn.benchmark
        assert torch.backends.cudnn.deterministic and runtime.os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
        set_deterministic(False)
        assert torch.backends.cudnn.benchmark
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = before[2], before[3]


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


OPTION_CASES: dict[str, tuple[Callable[[Path, Path, Path], list], tuple[str, ...]]] = {
    "eval --device": (lambda w, d, t: ["eval", w, "--data", d, "--device", "tpu"], ("--device", "tpu")),
    "infer --device": (
        lambda w, d, t: ["infer", w, d / "images" / "val", "--out", t / "o", "--device", "gpu0"],
        ("--device", "gpu0"),
    ),
}


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("case", list(OPTION_CASES))
def test_bad_option(case: str, weights: Path, data: Path, tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    make, needles = OPTION_CASES[case]
    user_error(capfd, make(weights, data, tmp_path), *needles)
