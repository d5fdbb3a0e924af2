"""Shared by the checkpoint-conversion tests: source checkpoints (a DDP training one, a malicious pickle), the
quickstart model they fit, and the logit comparison of a converted model against its source."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from segcli.models import build_model


class _Evil:
    """Unpickling this would create a marker file (os.system-style code execution)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return (os.makedirs, (str(self.marker),))


def _quickstart_model(num_classes: int = 4) -> torch.nn.Module:
    return build_model("fpn", num_classes, backbone="resnet18", decoder_channels=16)


def _qs16(tmp_path: Path) -> Path:
    """The quickstart preset with a 16-channel decoder (what _quickstart_model builds)."""
    from segcli.config.load import presets_dir

    preset = tmp_path / "qs16.toml"
    preset.write_text(f'extends = "{presets_dir() / "quickstart.toml"}"\n[model]\ndecoder_channels = 16\n')
    return preset


def _training_checkpoint(path: Path, model: torch.nn.Module) -> None:
    """A DDP-style checkpoint: ``module.`` prefixes, plus an optimizer and an epoch beside the model."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()(torch.rand(2, 3, 64, 64) * 255).mean().backward()
    opt.step()
    sd = {f"module.{k}": v for k, v in model.state_dict().items()}
    torch.save({"model": sd, "optimizer": opt.state_dict(), "epoch": 3}, path)


MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)


STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def _randomise_norms(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random BatchNorm/GroupNorm statistics and affines, so a wrongly mapped norm cannot go unnoticed."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.GroupNorm)):
            m.weight.data = torch.rand(m.weight.shape, generator=g) + 0.5
            m.bias.data = torch.rand(m.bias.shape, generator=g) - 0.5
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean = torch.rand(m.running_mean.shape, generator=g) - 0.5
            m.running_var = torch.rand(m.running_var.shape, generator=g) + 0.5
    return model.eval()


def _compare(theirs: torch.nn.Module, ours: torch.nn.Module, x: torch.Tensor) -> tuple[float, float]:
    """(max abs logit difference, argmax agreement) of ``theirs(x)`` and segcli's on the same pixels."""
    with torch.no_grad():
        a = theirs(x)
        a = a["out"] if isinstance(a, dict) else a
        b = ours.net(x)
    return float((a - b).abs().max()), float((a.argmax(1) == b.argmax(1)).float().mean())


def _real_image(fixtures_dir: Path, multiple: int) -> torch.Tensor:
    """The mmseg colour fixture as a normalised (1, 3, H, W) tensor, cropped to a multiple of ``multiple``."""
    from segcli.data.io import read_image

    img = read_image(fixtures_dir / "mmseg" / "color.jpg")
    h, w = (img.shape[0] // multiple) * multiple, (img.shape[1] // multiple) * multiple
    x = torch.from_numpy(np.ascontiguousarray(img[:h, :w])).permute(2, 0, 1)[None].float() / 255.0
    return (x - MEAN) / STD


def _check(theirs: torch.nn.Module, ours: torch.nn.Module, sizes: list[tuple[int, int]]) -> None:
    g = torch.Generator().manual_seed(1)
    for h, w in sizes:
        diff, agree = _compare(theirs, ours, torch.randn(2, 3, h, w, generator=g))
        print(f"{h}x{w}: max abs logit diff {diff:.2e}, argmax agreement {agree:.5f}")
        assert agree >= 0.999 and diff < 1e-4
