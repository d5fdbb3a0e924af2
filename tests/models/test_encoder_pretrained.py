"""Pretrained backbones: a clear offline error, and local files (safetensors, .pth, wrapped keys) that load."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
from cli_helpers import train_args, user_error
from safetensors.torch import save_file

from segcli.config.schema import ModelConfig
from segcli.core.factory import model_from_preset
from segcli.errors import CheckpointError
from segcli.models import build_model
from segcli.models.encoder import TimmEncoder

NAME = "resnet18"


@pytest.fixture(scope="module")
def classifier_state() -> dict[str, torch.Tensor]:
    """A full timm classification model's weights (with its fc head), as a user would download them."""
    torch.manual_seed(0)
    return {k: v.contiguous() for k, v in timm.create_model(NAME, pretrained=False).state_dict().items()}


def test_offline_pretrained_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("segcli.models.encoder._hub_reachable", lambda timeout=3.0: False)  # as on this machine
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty hub cache
    with pytest.raises(
        CheckpointError, match=r"cannot fetch timm's pretrained weights for 'resnet18'.*pretrained_file"
    ):
        TimmEncoder(NAME, pretrained=True)


@pytest.mark.parametrize("fmt", ["safetensors", "pth", "ddp-pth"])
def test_local_file_loads_and_reports_the_head(fmt: str, classifier_state: dict, tmp_path: Path) -> None:
    if fmt == "safetensors":
        path = tmp_path / "w.safetensors"
        save_file(classifier_state, str(path))
    else:
        path = tmp_path / "w.pth"
        state = {f"module.{k}": v for k, v in classifier_state.items()} if fmt == "ddp-pth" else classifier_state
        torch.save({"state_dict": state}, path)
    enc = TimmEncoder(NAME, pretrained=True, pretrained_file=str(path))
    own = enc.body.state_dict()
    assert torch.equal(own["conv1.weight"], classifier_state["conv1.weight"])
    assert torch.equal(own["layer4.1.bn2.running_var"], classifier_state["layer4.1.bn2.running_var"])
    assert "fc.weight" in enc.load_report and f"loaded {len(own)}" in enc.load_report
    # through the builder's options and through the model config too
    model = build_model("fpn", 3, backbone=NAME, pretrained=True, pretrained_file=str(path))
    assert torch.equal(model.net.encoder.body.state_dict()["conv1.weight"], classifier_state["conv1.weight"])
    model = model_from_preset(ModelConfig(backbone=NAME, pretrained=True, pretrained_file=str(path)), 3)
    assert torch.equal(model.net.encoder.body.state_dict()["conv1.weight"], classifier_state["conv1.weight"])


def test_incomplete_or_wrong_file_is_rejected(classifier_state: dict, tmp_path: Path) -> None:
    partial = {k: v for k, v in classifier_state.items() if not k.startswith("layer4")}
    save_file(partial, str(tmp_path / "partial.safetensors"))
    with pytest.raises(CheckpointError, match=r"partial.safetensors: \d+ backbone weights missing, e.g. layer4"):
        TimmEncoder(NAME, pretrained_file=str(tmp_path / "partial.safetensors"))
    bad = dict(classifier_state)
    bad["conv1.weight"] = torch.zeros(8, 3, 7, 7)
    save_file(bad, str(tmp_path / "bad.safetensors"))
    with pytest.raises(CheckpointError, match=r"shape mismatch for conv1.weight"):
        TimmEncoder(NAME, pretrained_file=str(tmp_path / "bad.safetensors"))
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match=r"junk.pth: cannot read weights"):
        TimmEncoder(NAME, pretrained_file=str(tmp_path / "junk.pth"))
    with pytest.raises(CheckpointError, match="pretrained file not found"):
        TimmEncoder(NAME, pretrained_file=str(tmp_path / "nope.safetensors"))


def test_pretrained_weights_without_network(
    data: Path, tmp_path: Path, capfd: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("segcli.models.encoder._hub_reachable", lambda timeout=3.0: False)  # no network
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hub"))  # an empty hub cache
    user_error(capfd, train_args(data, tmp_path, "model.pretrained=true"), "resnet18", "pretrained_file")
    assert not (tmp_path / "runs").exists()  # failed before any run directory was made


class _Evil:
    """Unpickling this would create ``marker`` (code run by a malicious checkpoint)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        import os

        return (os.makedirs, (str(self.marker),))


def test_a_malicious_pretrained_file_is_one_line_that_never_suggests_weights_only_false(
    data: Path, tmp_path: Path, capfd: pytest.CaptureFixture, recwarn: pytest.WarningsRecorder
) -> None:
    """Reported: torch's multi-line UnpicklingError text (advising weights_only=False) and its protocol warning."""
    import pickle

    marker, evil = tmp_path / "pwned", tmp_path / "evil.pth"
    evil.write_bytes(pickle.dumps({"w": _Evil(marker)}, protocol=4))  # a raw pickle, as pickle.dump writes it
    with pytest.raises(CheckpointError) as e:
        TimmEncoder(NAME, pretrained_file=str(evil))
    text = str(e.value)
    assert "not a plain weights file" in text and "only tensors are loaded" in text
    assert "\n" not in text and "weights_only" not in text.lower().replace(" ", "_") and "False" not in text
    assert not recwarn.list and not marker.exists()
    line = user_error(capfd, train_args(data, tmp_path, f"model.pretrained_file={evil}"), "evil.pth", progress=True)
    assert "only tensors are loaded" in line and "weights_only" not in line and not marker.exists()
