"""The dense CRF in the prediction protocol: ``eval.crf`` and ``ProtocolChoices.crf`` resolve it once, the prediction
core refines with it, and `seg eval` / `seg infer` take ``--crf`` (a tiny untrained model on the shapes data)."""

from __future__ import annotations

import dataclasses
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from infer_helpers import _json
from model_helpers import one_thread

from segcli.cli.app import run
from segcli.config.load import load_preset
from segcli.config.schema import CrfConfig
from segcli.data.io import read_mask
from segcli.errors import UserError
from segcli.infer.crf import refine_scores
from segcli.infer.predict_core import predict_images
from segcli.infer.protocol import PredictionProtocol, ProtocolChoices, resolve_protocol

_one_thread = pytest.fixture(autouse=True, scope="module")(one_thread)
CPU = torch.device("cpu")


def test_choices_and_preset_resolve_the_crf() -> None:
    preset = load_preset("quickstart", ["eval.crf.bi_w=5"]).preset
    assert resolve_protocol(ProtocolChoices(), preset, CPU).crf is None  # off by default
    on = resolve_protocol(ProtocolChoices(crf=True), preset, CPU).crf
    assert on == CrfConfig(enabled=True, bi_w=5.0)  # the preset's parameters, on
    enabled = load_preset("quickstart", ["eval.crf.enabled=true"]).preset
    assert resolve_protocol(ProtocolChoices(), enabled, CPU).crf is not None
    assert resolve_protocol(ProtocolChoices(crf=False), enabled, CPU).crf is None
    tuned = resolve_protocol(ProtocolChoices(crf_params={"bi_w": 1, "iterations": 3}), preset, CPU).crf
    assert tuned == CrfConfig(enabled=True, bi_w=1.0, iterations=3)  # parameters given: on, over the preset's
    assert resolve_protocol(ProtocolChoices(crf=False, crf_params={"bi_w": 1}), preset, CPU).crf is None
    for bad, says in [({"bi_wt": 1}, "not an eval.crf key"), ({"pos_xy_std": 0}, "must be in 0.01..inf")]:
        with pytest.raises(UserError, match=says):
            resolve_protocol(ProtocolChoices(crf_params=bad), preset, CPU)


class _Tiny(torch.nn.Module):
    """Two classes from uint8 images, as a segcli model takes them (normalisation inside)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x.float() / 255)


@pytest.mark.parametrize("tta", [False, True])
def test_the_core_refines_each_image_with_its_own_colours(tta: bool) -> None:
    torch.manual_seed(0)
    model = _Tiny().eval()
    images = (torch.rand(2, 3, 32, 32) * 255).to(torch.uint8)
    plain = PredictionProtocol(tta_scales=(1.0,) if tta else ())
    crf = replace(plain, crf=CrfConfig(iterations=3))
    sizes = [(32, 32), (40, 40)]  # the second resized: its colours are resized with it
    base = predict_images(model, images, sizes, plain, CPU)
    got = predict_images(model, images, sizes, crf, CPU)
    colours = torch.nn.functional.interpolate(images[1:].float(), size=(40, 40), mode="bilinear", align_corners=False)
    want = refine_scores(base[1], colours[0], crf.crf, probabilities=tta)
    assert torch.allclose(got[1], want, atol=1e-5)
    assert torch.allclose(got[0], refine_scores(base[0], images[0].float(), crf.crf, probabilities=tta), atol=1e-5)


def test_eval_and_infer_take_the_flag(weights: Path, shapes_root: Path, tmp_path: Path, capsys) -> None:
    common = ["--data", str(shapes_root), "--workers", "0"]
    off = _json(capsys, ["eval", str(weights), *common, "--out", str(tmp_path / "off.json")])
    on = _json(capsys, ["eval", str(weights), *common, "--out", str(tmp_path / "on.json"), "--crf"])
    assert off["protocol"]["crf"] is None
    assert on["protocol"]["crf"] == {**dataclasses.asdict(CrfConfig()), "enabled": True}
    assert 0 <= on["mIoU"] <= 1
    tuned = _json(capsys, ["eval", str(weights), *common, "--out", str(tmp_path / "t.json"), "--crf-params", "bi_w=1"])
    assert tuned["protocol"]["crf"]["bi_w"] == 1.0 and tuned["protocol"]["crf"]["enabled"] is True
    capsys.readouterr()
    assert run(["eval", str(weights), *common, "--out", str(tmp_path / "table.json"), "--crf"]) == 0
    assert "boundary F (2 px)" in capsys.readouterr().out  # the table's row, next to the mIoU
    for bad in ("bi_w", "nope=1"):
        assert run(["eval", str(weights), *common, "--crf-params", bad]) == 2
        assert "--crf-params" in capsys.readouterr().err
    images = shapes_root / "images" / "val"
    res = _json(
        capsys, ["infer", str(weights), str(images), "--out", str(tmp_path / "pred"), "--crf", "--workers", "0"]
    )
    masks = sorted((tmp_path / "pred" / "masks").glob("*.png"))
    assert res["images"] == len(list(images.iterdir())) == len(masks)
    assert np.isin(read_mask(masks[0]), range(4)).all()
