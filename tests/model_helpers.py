"""Helpers for the model tests: a tiny model config on timm's ``test_resnet``, seeded images, one CPU thread."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from segcli.config.schema import ModelConfig

NUM_CLASSES = 3
BACKBONE = "test_resnet"  # timm's 0.4 M-parameter ResNet: strides 2..32, dilation support, fast on CPU


def cfg(name: str, **kw) -> ModelConfig:
    """``name`` on the tiny backbone with 16 decoder channels, plus ``kw``."""
    return ModelConfig(name=name, backbone=BACKBONE, decoder_channels=16, **kw)


def image(h: int, w: int, n: int = 2) -> torch.Tensor:
    """``n`` RGB images in [0, 255], seeded by their size."""
    return torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(h * w)) * 255


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def one_thread() -> Iterator[None]:
    """Tiny tensors gain nothing from threads, and on a shared CPU OpenMP threads spin; restore afterwards.

    A plain generator: each file makes it its fixture, ``pytest.fixture(autouse=True, scope="module")(one_thread)``.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def channels_last_output(net: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(output, output with the model and input in channels_last) of ``net`` in eval mode, without gradients."""
    with torch.no_grad():
        ref = net(x)
        got = net.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
    return ref, got


def compiled_output(
    net: torch.nn.Module, x: torch.Tensor, **compile_options: object
) -> tuple[torch.Tensor, torch.Tensor]:
    """(output, output of ``torch.compile(net, **compile_options)``) of ``net``, without gradients.

    The backend defaults to AOTAutograd (``aot_eager``): Dynamo's capture, where a model's code can break, without
    inductor's C++ builds (20-40 s a model on a 2-core CPU, testing torch rather than the model). The inductor
    path is tested once, through the trainer (tests/train/test_trainer_compile.py)."""
    compile_options.setdefault("backend", "aot_eager")
    with torch.no_grad():
        return net(x), torch.compile(net, **compile_options)(x)  # type: ignore[arg-type]
