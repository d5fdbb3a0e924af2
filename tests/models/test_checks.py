"""Each fact about a model choice is checked by one function, and every caller gives its message."""

from __future__ import annotations

import pytest

from segcli.cli.app import run
from segcli.config.load import load_preset
from segcli.errors import PresetError, arg
from segcli.models.checks import backbone_problem, stride_problem


def test_backbone_problem() -> None:
    assert backbone_problem("resnet18") is None
    assert backbone_problem("hf-hub:someone/model") is None  # not checkable offline
    assert backbone_problem("torchvision:mobilenet_v3_large") is None
    msg = backbone_problem("resnet18x")
    assert msg.startswith("model.backbone = 'resnet18x' is not a timm model") and "resnet18" in msg
    assert "torchvision backbones available: torchvision:" in backbone_problem("torchvision:nope")
    assert backbone_problem("resnet18x", key=arg("backbone")).startswith("`backbone` resnet18x is not a timm model")


def test_stride_problem() -> None:
    assert stride_problem(0, "bisenetv1") is None and stride_problem(16) is None
    assert "must be 8, 16 or 32" in stride_problem(12)
    assert stride_problem(16, "bisenetv1") == "model.output_stride = 16: model 'bisenetv1' supports 32"


def test_validation_and_the_cli_say_the_same(capfd: pytest.CaptureFixture) -> None:
    with pytest.raises(PresetError, match="model.backbone = 'resnet18x' is not a timm model"):
        load_preset("quickstart", ["model.backbone=resnet18x"])
    assert run(["models", "--backbone", "resnet18x"]) == 2
    err = capfd.readouterr().err
    assert "--backbone resnet18x is not a timm model" in err and err.count("\n") == 1
