"""Temperature scaling: the fit, the metadata it writes (tensors unchanged), an over-confident model's ECE cut to
under a third with every mask unchanged, and the temperature reaching eval, infer's probabilities, TTA and
exported graphs (inside the graph, never applied twice)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

from segcli.core.checkpoint import build_from_weights, load_weights, read_metadata, save_weights
from segcli.data.format import read_dataset_info
from segcli.errors import UserError
from segcli.infer.calibration import CalibrateOptions, calibrate, fit_temperature, pixel_scores
from segcli.infer.evaluator import EvalOptions, evaluate


def test_fit_recovers_the_temperature_of_sharpened_logits() -> None:
    """Labels drawn from softmax(z) and logits 4z: the fitted temperature is about 4, and lowers the NLL."""
    g = torch.Generator().manual_seed(0)
    z = torch.randn(20000, 5, generator=g)
    y = torch.multinomial(z.softmax(1), 1, generator=g).squeeze(1)
    t = fit_temperature(4 * z, y)
    assert len(t) == 1 and t[0] == pytest.approx(4.0, rel=0.1)
    assert pixel_scores(4 * z, y, t)["nll"] < pixel_scores(4 * z, y, [1.0])["nll"]
    per_class = fit_temperature(4 * z, y, per_class=True)
    assert len(per_class) == 5 and all(v == pytest.approx(4.0, rel=0.25) for v in per_class)


def _self_labelled(weights: Path, shapes_root: Path, dest: Path) -> Path:
    """A copy of the dataset whose val masks are drawn pixel by pixel from the model's own softmax: on it the
    model is calibrated by construction (its ECE is sampling noise)."""
    from segcli.data.datasets import EvalDataset
    from segcli.data.io import write_mask
    from segcli.infer.predict_core import predict_images
    from segcli.infer.protocol import PredictionProtocol

    root = Path(shutil.copytree(shapes_root, dest))
    model, _ = build_from_weights(weights)
    ds = EvalDataset(root, "val")
    g = torch.Generator().manual_seed(0)
    for i, (_, mask_path) in enumerate(ds.samples):
        image, mask = ds[i]
        p = predict_images(model, image[None], [tuple(mask.shape)], PredictionProtocol(), torch.device("cpu"))[0]
        k, h, w = p.shape
        labels = torch.multinomial(p.softmax(0).reshape(k, -1).T, 1, generator=g).reshape(h, w)
        write_mask(mask_path, labels.numpy().astype(np.uint8))
    return root


def _overconfident(weights: Path, shapes_root: Path, dest: Path) -> Path:
    """``weights`` with the classifier's weights and bias x 5: logits x 5, every argmax the same."""
    model, meta = build_from_weights(weights)
    head = [m for m in model.net.modules() if isinstance(m, nn.Conv2d) and m.out_channels == meta.num_classes][-1]
    x = torch.rand(1, 3, 48, 48) * 255
    with torch.no_grad():
        before = model(x)
        head.weight.mul_(5)
        head.bias.mul_(5)
        assert torch.allclose(model(x), 5 * before, rtol=1e-4, atol=1e-4)
    return save_weights(dest, model, meta.preset, read_dataset_info(shapes_root))


@pytest.fixture(scope="module")
def calibrated_data(trained: Path, shapes_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    best = trained / "weights" / "best.safetensors"
    return _self_labelled(best, shapes_root, tmp_path_factory.mktemp("selfdata") / "shapes")


@pytest.fixture
def sharp(trained: Path, calibrated_data: Path, tmp_path: Path) -> Path:
    return _overconfident(trained / "weights" / "best.safetensors", calibrated_data, tmp_path / "sharp.safetensors")


def _eval(weights: Path, shapes_root: Path, out: Path, **protocol: object) -> dict:
    from segcli.infer.protocol import ProtocolChoices

    res = evaluate(weights, shapes_root, "val", "cpu", ProtocolChoices(**protocol), EvalOptions(out=out))
    return res.metrics


def test_calibration_cuts_an_overconfident_models_ece_to_under_a_third_masks_unchanged(
    sharp: Path, calibrated_data: Path, tmp_path: Path
) -> None:
    tensors_before, _ = load_weights(sharp)
    before = _eval(sharp, calibrated_data, tmp_path / "before.json")
    res = calibrate(sharp, calibrated_data, "cpu")
    assert res.written and len(res.temperature) == 1 and res.temperature[0] == pytest.approx(5.0, rel=0.2)
    assert res.after["ece"] < res.before["ece"] and res.after["nll"] < res.before["nll"]
    assert json.loads(read_metadata(sharp)["temperature"]) == res.temperature
    tensors_after, meta = load_weights(sharp)
    assert meta.temperature == tuple(res.temperature)
    assert all(torch.equal(tensors_before[k], tensors_after[k]) for k in tensors_before)  # only metadata changed
    after = _eval(sharp, calibrated_data, tmp_path / "after.json")
    assert after["calibration"]["ece"] < before["calibration"]["ece"] / 3
    assert after["confusion_matrix"]["matrix"] == before["confusion_matrix"]["matrix"]  # every argmax the same
    assert set(after["calibration"]["per_class"]) == set(meta.classes)
    assert len(after["calibration"]["reliability"]) == 15


def test_dry_run_and_reset_leave_or_remove_the_temperature(sharp: Path, calibrated_data: Path) -> None:
    res = calibrate(sharp, calibrated_data, "cpu", options=CalibrateOptions(dry_run=True, per_class=True))
    assert not res.written and len(res.temperature) == 5 and "temperature" not in read_metadata(sharp)
    calibrate(sharp, calibrated_data, "cpu", options=CalibrateOptions(max_pixels=500))
    assert "temperature" in read_metadata(sharp)
    calibrate(sharp, calibrated_data, "cpu", options=CalibrateOptions(reset=True))
    assert "temperature" not in read_metadata(sharp)


def test_calibrate_refuses_what_it_cannot_write(weights: Path, tmp_path: Path) -> None:
    onnx_file = tmp_path / "m.onnx"
    onnx_file.write_bytes(b"")
    with pytest.raises(UserError, match="safetensors"):
        calibrate(onnx_file, options=CalibrateOptions())
    with pytest.raises(UserError, match="`max_pixels`"):
        calibrate(weights, options=CalibrateOptions(max_pixels=0))


def _with_temperature(weights: Path, dest: Path, t: list[float]) -> Path:
    from segcli.core.checkpoint import update_metadata

    shutil.copy(weights, dest)
    return update_metadata(dest, {"temperature": json.dumps(t)})


def test_temperature_reaches_infer_probabilities_tta_and_the_exported_softmax(
    sharp: Path, shapes_root: Path, tmp_path: Path, images_dir: Path
) -> None:
    pytest.importorskip("onnxruntime")
    from segcli.data.io import read_mask
    from segcli.infer.exporter import ExportOptions, export_model
    from segcli.infer.predictor import OutputOptions, predict

    hot = _with_temperature(sharp, tmp_path / "hot.safetensors", [5.0])
    out = {}
    for name, w in (("raw", sharp), ("hot", hot)):
        predict(w, [str(images_dir)], tmp_path / name, "cpu", output=OutputOptions(save="mask,probs,uncertainty"))
        out[name] = np.load(tmp_path / name / "probs" / "im0.npy").astype(np.float32)
        assert np.array_equal(
            read_mask(tmp_path / name / "masks" / "im0.png"), read_mask(tmp_path / "raw" / "masks" / "im0.png")
        )
    assert out["hot"].max(0).mean() < out["raw"].max(0).mean()  # softer probabilities, same masks
    unc = {n: read_mask(tmp_path / n / "uncertainty" / "im0.png").astype(np.float32) for n in ("raw", "hot")}
    assert unc["hot"].mean() > unc["raw"].mean()
    # TTA averages the calibrated probabilities (softer than the raw model's; the average's argmax may differ)
    from segcli.infer.protocol import ProtocolChoices

    tta = {}
    for name, w in (("raw", sharp), ("hot", hot)):
        dest = tmp_path / f"tta_{name}"
        predict(
            w, [str(images_dir)], dest, "cpu", ProtocolChoices(tta_scales=(1.0, 1.25)), OutputOptions(save="mask,probs")
        )
        tta[name] = np.load(dest / "probs" / "im0.npy").astype(np.float32)
    assert tta["hot"].max(0).mean() < tta["raw"].max(0).mean()
    # the exported softmax graph has the temperature inside, and is not divided a second time when it runs
    res = export_model(hot, "onnx", tmp_path / "hot.onnx", "cpu", ExportOptions(images=images_dir, bake="softmax"))
    assert res.passed
    from segcli.infer.backends import read_onnx_metadata

    meta = read_onnx_metadata(res.path)
    assert "temperature" not in meta and json.loads(meta["temperature_in_graph"]) == [5.0]
    predict(res.path, [str(images_dir)], tmp_path / "onnx", "cpu", output=OutputOptions(save="probs"))
    assert np.allclose(np.load(tmp_path / "onnx" / "probs" / "im0.npy").astype(np.float32), out["hot"], atol=2e-3)
