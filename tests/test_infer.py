"""`seg infer` at full strength: --save kinds, --alpha, uint16 ids, protocols, batching, video, stdin."""

from __future__ import annotations

import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from segcli.cli.app import run
from segcli.config.load import load_preset
from segcli.data.format import DatasetInfo
from segcli.data.io import read_image, read_mask, write_image
from segcli.engine.checkpoint import build_from_weights, save_weights
from segcli.engine.factory import model_from_preset
from segcli.engine.predict_core import Protocol, predict_images
from segcli.engine.predictor import overlay, predict
from segcli.errors import UserError
from tests.conftest import TINY


def _weights(folder: Path, classes: int) -> Path:
    preset = load_preset("quickstart", TINY).preset
    torch.manual_seed(0)
    model = model_from_preset(preset.model, classes)
    palette = tuple((i % 256, (7 * i) % 256, (13 * i) % 256) for i in range(classes))
    info = DatasetInfo("t", tuple(f"c{i}" for i in range(classes)), palette)
    return save_weights(folder / f"w{classes}.safetensors", model, preset, info)


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _weights(tmp_path_factory.mktemp("w"), 5)


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    sizes = [(40, 56), (40, 56), (37, 45), (40, 56), (64, 64)]
    paths = []
    for i, (h, w) in enumerate(sizes):
        paths.append(write_image(folder / f"im{i}.png", rng.integers(0, 256, (h, w, 3), dtype=np.uint8)))
    return paths


def _json(capsys: pytest.CaptureFixture, args: list[str]) -> dict:
    capsys.readouterr()
    assert run([*args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


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
        logits = predict_images(model, x, [image.shape[:2]], Protocol(), torch.device("cpu"))[0]
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


def test_overlay_alpha_and_untinted_background() -> None:
    image = np.full((2, 2, 3), 100, np.uint8)
    mask = np.array([[0, 1], [1, 0]])
    palette = np.array([[0, 0, 0], [200, 0, 0]], np.uint8)
    ov = overlay(image, mask, palette, alpha=0.5, alpha_bg=0.0)
    assert ov[0, 0].tolist() == [100, 100, 100] and ov[0, 1].tolist() == [150, 50, 50]
    assert overlay(image, mask, palette, alpha=0.5)[0, 0].tolist() == [50, 50, 50]


def test_ids_are_uint16_above_256_classes(tmp_path: Path, images: list[Path]) -> None:
    w = _weights(tmp_path, 300)
    res = predict(w, [str(images[0])], tmp_path / "o", device="cpu", save="ids,mask")
    ids = cv2.imread(res.outputs[0]["ids"], cv2.IMREAD_UNCHANGED)
    assert ids.dtype == np.uint16 and ids.shape == (40, 56)
    assert cv2.imread(res.outputs[0]["mask"], cv2.IMREAD_UNCHANGED).dtype == np.uint16


def test_protocol_options_and_size(weights: Path, images: list[Path], tmp_path: Path, capsys) -> None:
    plain = predict(weights, [str(images[2])], tmp_path / "a", device="cpu", save="ids")
    big_tile = predict(weights, [str(images[2])], tmp_path / "b", device="cpu", save="ids", slide=True, tile=(64, 64))
    tta1 = predict(weights, [str(images[2])], tmp_path / "c", device="cpu", save="ids", tta=False)
    a, b, c = (cv2.imread(r.outputs[0]["ids"], cv2.IMREAD_UNCHANGED) for r in (plain, big_tile, tta1))
    assert np.array_equal(a, b) and np.array_equal(a, c)
    res = _json(
        capsys,
        ["infer", str(weights), str(images[4]), "--out", str(tmp_path / "d"), "--size", "32,48", "--tta"]
        + ["--slide", "--tile", "32", "--save", "ids"],
    )
    assert cv2.imread(res["outputs"][0]["ids"], cv2.IMREAD_UNCHANGED).shape == (64, 64)  # back at the input size
    capsys.readouterr()
    assert run(["infer", str(weights), str(images[0]), "--out", str(tmp_path / "e"), "--save", "mask,jpeg"]) == 2
    assert "--save mask,jpeg" in capsys.readouterr().err
    assert run(["infer", str(weights), str(images[0]), "--out", str(tmp_path / "e"), "--size", "3,x"]) == 2
    assert "--size 3,x" in capsys.readouterr().err


def test_batched_equals_one_at_a_time(weights: Path, images: list[Path], tmp_path: Path) -> None:
    one = predict(weights, list(map(str, images)), tmp_path / "a", device="cpu", save="ids", batch_size=1)
    many = predict(weights, list(map(str, images)), tmp_path / "b", device="cpu", save="ids", batch_size=4, workers=3)
    assert [o["input"] for o in one.outputs] == [o["input"] for o in many.outputs] == list(map(str, images))
    for x, y in zip(one.outputs, many.outputs):
        a, b = (cv2.imread(o["ids"], cv2.IMREAD_UNCHANGED) for o in (x, y))
        assert (a != b).mean() < 0.01  # batch size changes CPU kernels' rounding only
        assert x["classes"].keys() == y["classes"].keys() or (a != b).any()


def test_stdin_lists_paths(weights: Path, images: list[Path], tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(f"{images[0]}\n\n{images[1]}\n"))
    res = predict(weights, ["-"], tmp_path, device="cpu")
    assert [o["input"] for o in res.outputs] == [str(images[0]), str(images[1])]


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


def test_bad_alpha_is_a_user_error(weights: Path, images: list[Path], tmp_path: Path) -> None:
    with pytest.raises(UserError, match="--alpha 1.5"):
        predict(weights, [str(images[0])], tmp_path, device="cpu", alpha=1.5)
