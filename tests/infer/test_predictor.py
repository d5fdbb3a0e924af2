"""predict(): overlays, uint16 ids, protocols and sizes, batching, stdin, probabilities, the read-ahead thread,
class counts."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from infer_helpers import _core_probs, _json, _weights, write_images

from segcli.cli.app import run
from segcli.errors import UserError
from segcli.infer.predictor import OutputOptions, overlay, predict
from segcli.infer.protocol import ProtocolChoices


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _weights(tmp_path_factory.mktemp("w"), 5)


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_images(tmp_path_factory.mktemp("imgs"))


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


def test_bad_alpha_is_a_user_error(weights: Path, images: list[Path], tmp_path: Path) -> None:
    with pytest.raises(UserError, match="`alpha` 1.5"):
        predict(weights, [str(images[0])], tmp_path, device="cpu", output=OutputOptions(alpha=1.5))


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


def test_workers_zero_predicts_in_this_thread_as_the_pool_does(
    weights: Path, images: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--workers means the same on every command: 0 = nothing besides this process (no thread pool at all)."""
    import segcli.infer.predictor as predictor

    ids = OutputOptions(save="ids")
    pooled = predict(weights, [str(p) for p in images[:3]], tmp_path / "a", device="cpu", output=ids)

    def no_pool(*args: object, **kwargs: object) -> None:
        raise AssertionError("workers=0 starts no thread pool")

    monkeypatch.setattr(predictor, "ThreadPoolExecutor", no_pool)
    inline = predict(weights, [str(p) for p in images[:3]], tmp_path / "b", device="cpu", output=ids, workers=0)
    for a, b in zip(pooled.outputs, inline.outputs):
        assert np.array_equal(cv2.imread(a["ids"], cv2.IMREAD_UNCHANGED), cv2.imread(b["ids"], cv2.IMREAD_UNCHANGED))


def test_in_this_thread_hands_an_error_to_the_future() -> None:
    from segcli.infer.predictor import InThisThread

    with InThisThread() as pool:
        assert pool.submit(lambda x: x + 1, 1).result() == 2
        with pytest.raises(ZeroDivisionError):
            pool.submit(lambda: 1 / 0).result()


def test_images_of_a_dataset_get_its_extra_channel_folders(tmp_path: Path) -> None:
    """`seg infer DATA/images/val` on a dataset whose dataset.toml lists ``extra_channels`` reads them as training
    does; an image outside a dataset has none, so a 4-channel model refuses it with one line naming the file."""
    from data_helpers import make_toy_dataset

    from segcli.errors import DataError
    from segcli.infer.predictor import _decode

    root = make_toy_dataset(tmp_path / "rgb", n=2)
    (root / "dataset.toml").write_text((root / "dataset.toml").read_text() + 'extra_channels = ["nir"]\n')
    (root / "nir" / "val").mkdir(parents=True)
    for i in range(2):
        cv2.imwrite(str(root / "nir" / "val" / f"{i}.png"), np.full((16, 16), 9 + i, np.uint8))
    image, x = _decode(root / "images" / "val" / "1.png", (), (), channels=4)
    assert image.shape == (16, 16, 4) and x.shape == (4, 16, 16) and int(x[3].min()) == int(x[3].max()) == 10
    loose = tmp_path / "1.png"
    loose.write_bytes((root / "images" / "val" / "1.png").read_bytes())
    with pytest.raises(DataError, match=r"1\.png: image has 3 channels, not the 4 the model takes"):
        _decode(loose, (), (), channels=4)
    (root / "nir" / "val" / "0.png").unlink()
    with pytest.raises(DataError, match=r"extra channel 'nir' of 0\.png not found"):
        _decode(root / "images" / "val" / "0.png", (), (), channels=4)
