"""`seg infer` writing its outputs: every --save kind equal to the prediction core, video, --legend, a binary
model's probability PNG."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from infer_helpers import _core_probs, _json, _weights, write_images

from segcli.core.checkpoint import build_from_weights
from segcli.data.io import read_image, read_mask
from segcli.infer.predict_core import predict_images
from segcli.infer.predictor import OutputOptions, overlay, predict
from segcli.infer.protocol import PredictionProtocol


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _weights(tmp_path_factory.mktemp("w"), 5)


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_images(tmp_path_factory.mktemp("imgs"))


def test_save_all_kinds_match_the_prediction_core(weights: Path, images: list[Path], tmp_path: Path, capsys) -> None:
    res = _json(
        capsys,
        ["infer", str(weights), *map(str, images), "--out", str(tmp_path), "--save", "mask,overlay,ids,probs"]
        + ["--batch-size", "2", "--alpha", "0.3"],
    )
    assert res["images"] == len(images)
    model, meta = build_from_weights(weights, torch.device("cpu"))
    model.eval()
    for src in images:
        image = read_image(src)
        x = torch.from_numpy(image.transpose(2, 0, 1).copy())[None]
        logits = predict_images(model, x, [image.shape[:2]], PredictionProtocol(), torch.device("cpu"))[0]
        expected = logits.argmax(0).numpy()
        stem = src.stem
        assert np.array_equal(read_mask(tmp_path / "masks" / f"{stem}.png"), expected)
        ids = cv2.imread(str(tmp_path / "ids" / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
        assert ids.dtype == np.uint8 and np.array_equal(ids, expected)
        probs = np.load(tmp_path / "probs" / f"{stem}.npy")
        assert probs.dtype == np.float16 and probs.shape == (5, *image.shape[:2])
        np.testing.assert_allclose(probs.astype(np.float32), logits.softmax(0).numpy(), atol=2e-3)
        ov = read_image(tmp_path / "overlays" / f"{stem}.jpg")
        want = overlay(image, expected, np.array(meta.palette, dtype=np.uint8), 0.3)
        jpeg = cv2.imencode(".jpg", cv2.cvtColor(want, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])[1]
        assert np.array_equal(ov, cv2.cvtColor(cv2.imdecode(jpeg, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB))


def test_video_gives_one_mask_per_frame_and_an_overlay_video(weights: Path, tmp_path: Path, capsys) -> None:
    src = tmp_path / "clip.avi"
    vw = cv2.VideoWriter(str(src), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (48, 40))
    assert vw.isOpened()
    rng = np.random.default_rng(1)
    for _ in range(7):
        vw.write(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8))
    vw.release()
    res = _json(capsys, ["infer", str(weights), str(src), "--out", str(tmp_path / "o"), "--batch-size", "3"])
    (item,) = res["outputs"]
    assert item["frames"] == 7
    masks = sorted(Path(item["mask"]).iterdir())
    assert [m.name for m in masks] == [f"{k:06d}.png" for k in range(7)]
    assert read_mask(masks[0]).shape == (40, 48)
    cap = cv2.VideoCapture(item["overlay"])
    count = 0
    while cap.read()[0]:
        count += 1
    cap.release()
    assert count == 7
    assert not list((tmp_path / "o" / "overlays").glob(".*"))  # no temp file left


def test_overlay_legend_flag(weights: Path, images: list[Path], tmp_path: Path, capsys) -> None:
    args = ["infer", str(weights), str(images[4]), "--save", "overlay"]
    plain = _json(capsys, [*args, "--out", str(tmp_path / "a")])
    with_legend = _json(capsys, [*args, "--out", str(tmp_path / "b"), "--legend"])
    a, b = (read_image(r["outputs"][0]["overlay"]) for r in (plain, with_legend))
    assert a.shape == (64, 64, 3) and b.shape[0] > 64 and b.shape[1] == 64
    assert np.abs(b[:56].astype(int) - a[:56].astype(int)).mean() < 3  # the same overlay above (JPEG aside)


def test_binary_model_writes_an_8bit_foreground_probability_png(tmp_path: Path, images: list[Path], capsys) -> None:
    w = _weights(tmp_path, 2)
    res = _json(capsys, ["infer", str(w), str(images[2]), "--out", str(tmp_path / "o"), "--save", "mask,probs"])
    path = Path(res["outputs"][0]["probs"])
    assert path == tmp_path / "o" / "probs" / "im2.png"
    png = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert png.dtype == np.uint8 and png.shape == (37, 45)
    want = np.round(_core_probs(w, images[2])[1] * 255)
    assert np.abs(png.astype(int) - want).max() <= 1
    npy = predict(
        w, [str(images[2])], tmp_path / "n", device="cpu", output=OutputOptions(save="probs", probs_format="npy")
    )
    assert np.load(npy.outputs[0]["probs"]).shape == (2, 37, 45)
