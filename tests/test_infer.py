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
from segcli.core.checkpoint import build_from_weights, save_weights
from segcli.core.factory import model_from_preset
from segcli.data.format import DatasetInfo
from segcli.data.io import read_image, read_mask, write_image
from segcli.errors import UserError
from segcli.infer.predict_core import predict_images
from segcli.infer.predictor import OutputOptions, overlay, predict
from segcli.infer.protocol import PredictionProtocol, ProtocolChoices
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


def test_overlay_alpha_and_untinted_background() -> None:
    image = np.full((2, 2, 3), 100, np.uint8)
    mask = np.array([[0, 1], [1, 0]])
    palette = np.array([[0, 0, 0], [200, 0, 0]], np.uint8)
    ov = overlay(image, mask, palette, alpha=0.5, alpha_bg=0.0)
    assert ov[0, 0].tolist() == [100, 100, 100] and ov[0, 1].tolist() == [150, 50, 50]
    assert overlay(image, mask, palette, alpha=0.5)[0, 0].tolist() == [50, 50, 50]


def test_ids_are_uint16_above_256_classes(tmp_path: Path, images: list[Path]) -> None:
    w = _weights(tmp_path, 300)
    res = predict(w, [str(images[0])], tmp_path / "o", device="cpu", output=OutputOptions(save="ids,mask"))
    ids = cv2.imread(res.outputs[0]["ids"], cv2.IMREAD_UNCHANGED)
    assert ids.dtype == np.uint16 and ids.shape == (40, 56)
    assert cv2.imread(res.outputs[0]["mask"], cv2.IMREAD_UNCHANGED).dtype == np.uint16


def test_protocol_options_and_size(weights: Path, images: list[Path], tmp_path: Path, capsys) -> None:
    ids = OutputOptions(save="ids")
    plain = predict(weights, [str(images[2])], tmp_path / "a", device="cpu", output=ids)
    slide = ProtocolChoices(slide=True, tile=(64, 64))
    big_tile = predict(weights, [str(images[2])], tmp_path / "b", device="cpu", protocol=slide, output=ids)
    tta1 = predict(
        weights, [str(images[2])], tmp_path / "c", device="cpu", protocol=ProtocolChoices(tta=False), output=ids
    )
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
    ids = OutputOptions(save="ids")
    one = predict(weights, list(map(str, images)), tmp_path / "a", "cpu", ProtocolChoices(batch_size=1), ids)
    many = predict(
        weights, list(map(str, images)), tmp_path / "b", "cpu", ProtocolChoices(batch_size=4), ids, workers=3
    )
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
    with pytest.raises(UserError, match="`alpha` 1.5"):
        predict(weights, [str(images[0])], tmp_path, device="cpu", output=OutputOptions(alpha=1.5))


def test_legend_strip_names_the_classes_present() -> None:
    from segcli.viz.draw_cv import draw_legend_strip

    image = np.full((60, 120, 3), 90, np.uint8)
    palette = [(0, 0, 0), (250, 10, 10), (10, 250, 10), (10, 10, 250)]
    names = ["background", "road", "tree", "sky"]
    out = draw_legend_strip(image, [1, 3], names, palette)
    assert out.shape[1] == 120 and out.shape[0] > 60 and np.array_equal(out[:60], image)  # image untouched
    strip = out[60:].reshape(-1, 3)
    has = {tuple(c) for c in strip.tolist()}
    assert (250, 10, 10) in has and (10, 10, 250) in has and (10, 250, 10) not in has  # present classes only
    assert draw_legend_strip(image, [], names, palette) is image
    many = draw_legend_strip(image, [0, 1, 2, 3], names, palette)
    assert many.shape[0] > out.shape[0]  # wrapped onto more rows at this width
    big = draw_legend_strip(np.zeros((100, 3200, 3), np.uint8), [1, 3], names, palette)
    assert big.shape[0] - 100 > out.shape[0] - 60  # the strip grows with the image


def test_overlay_legend_flag(weights: Path, images: list[Path], tmp_path: Path, capsys) -> None:
    args = ["infer", str(weights), str(images[4]), "--save", "overlay"]
    plain = _json(capsys, [*args, "--out", str(tmp_path / "a")])
    with_legend = _json(capsys, [*args, "--out", str(tmp_path / "b"), "--legend"])
    a, b = (read_image(r["outputs"][0]["overlay"]) for r in (plain, with_legend))
    assert a.shape == (64, 64, 3) and b.shape[0] > 64 and b.shape[1] == 64
    assert np.abs(b[:56].astype(int) - a[:56].astype(int)).mean() < 3  # the same overlay above (JPEG aside)


def _core_probs(weights: Path, src: Path) -> np.ndarray:
    model, _ = build_from_weights(weights, torch.device("cpu"))
    image = read_image(src)
    x = torch.from_numpy(image.transpose(2, 0, 1).copy())[None]
    return predict_images(model, x, [image.shape[:2]], PredictionProtocol(), torch.device("cpu"))[0].softmax(0).numpy()


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


def test_multiclass_probability_pngs_one_per_class(weights: Path, images: list[Path], tmp_path: Path, capsys) -> None:
    as_png = OutputOptions(save="probs", probs_format="png")
    res = predict(weights, [str(images[0])], tmp_path / "o", device="cpu", output=as_png)
    folder = Path(res.outputs[0]["probs"])
    assert sorted(p.name for p in folder.iterdir()) == [f"{k:03d}_c{k}.png" for k in range(5)]
    want = _core_probs(weights, images[0])
    for k in range(5):
        png = cv2.imread(str(folder / f"{k:03d}_c{k}.png"), cv2.IMREAD_UNCHANGED)
        assert png.dtype == np.uint8 and np.abs(png.astype(int) - np.round(want[k] * 255)).max() <= 1
    capsys.readouterr()
    assert run(["infer", str(weights), str(images[0]), "--out", str(tmp_path / "x"), "--probs-format", "tiff"]) == 2
    err = capsys.readouterr().err
    assert "--probs-format" in err and "tiff" in err
    with pytest.raises(UserError, match="`probs_format` tiff"):
        predict(weights, [str(images[0])], tmp_path / "y", device="cpu", output=OutputOptions(probs_format="tiff"))


def test_read_ahead_keeps_order_passes_errors_and_stops_with_its_consumer() -> None:
    import itertools
    import threading

    from segcli.errors import DataError
    from segcli.infer.predictor import _read_ahead

    assert list(_read_ahead(iter(range(50)), 3)) == list(range(50))

    def broken():  # noqa: ANN202
        yield from range(5)
        raise DataError("clip.mp4: frame 5 is damaged")

    got = []
    with pytest.raises(DataError, match="frame 5"):
        for x in _read_ahead(broken(), 2):
            got.append(x)
    assert got == [0, 1, 2, 3, 4]
    endless = _read_ahead(itertools.count(), 2)
    assert [next(endless) for _ in range(3)] == [0, 1, 2]
    endless.close()  # the producer thread ends with its consumer
    assert not any(t.name == "seg-video-decode" for t in threading.enumerate())


def test_class_counts_equal_bincount() -> None:
    from segcli.infer.predictor import class_counts

    rng = np.random.default_rng(0)
    for mask, k in [
        (rng.integers(0, 5, (37, 41)).astype(np.uint8), 5),
        (rng.integers(0, 300, (20, 30)).astype(np.uint16), 300),
        (np.full((4, 4), 255, np.uint8), 3),
    ]:
        want = np.bincount(mask.ravel(), minlength=k)
        got = class_counts(mask, k)
        assert len(got) >= k and got.dtype == np.int64
        np.testing.assert_array_equal(got[: len(want)], want)
        assert not got[len(want) :].any()
