"""``segcli.Model`` (segcli/infer/model.py): a model loaded once, predictions in memory that are the masks
`seg infer` writes, nothing written unless asked, evaluation and export through the engine's calls."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from segcli.data.io import read_image, read_mask
from segcli.errors import CheckpointError, PresetError, UserError
from segcli.infer import predictor
from segcli.infer.model import Model, Prediction
from tests.conftest import TINY
from tests.infer_helpers import write_images


def _files(*folders: Path) -> set[Path]:
    return {p for f in folders for p in f.rglob("*")}


@pytest.fixture(scope="module")
def model(trained: Path) -> Model:
    return Model(trained, "cpu")


def test_predictions_are_the_masks_seg_infer_writes(model: Model, trained: Path, tmp_path: Path) -> None:
    """Folder, path, array and list: one mask per image at its own size, equal to the engine's written masks;
    loading and predicting write nothing, and a second call on the same model works."""
    paths = write_images(tmp_path / "in")
    before = _files(tmp_path, trained)
    many = model.predict(tmp_path / "in")
    assert isinstance(many, list) and [p.name for p in many] == [p.stem for p in paths]
    one = model.predict(str(paths[2]))
    again = model.predict([read_image(paths[2]), paths[4]])
    assert _files(tmp_path, trained) == before  # nothing written
    assert isinstance(one, Prediction) and one.mask.shape == (37, 45) and one.source == paths[2]
    assert np.array_equal(again[0].mask, one.mask) and again[0].name == "image0" and again[1].mask.shape == (64, 64)

    predictor.predict(trained, [str(tmp_path / "in")], tmp_path / "out", device="cpu")
    for pred in many:
        assert pred.mask.shape == read_image(pred.source).shape[:2]
        assert np.array_equal(pred.mask, read_mask(tmp_path / "out" / "masks" / f"{pred.name}.png"))


def test_probabilities_on_request(model: Model) -> None:
    image = np.random.default_rng(1).integers(0, 256, (33, 41, 3), dtype=np.uint8)
    plain = model.predict(image)
    assert plain.probs is None
    pred = model.predict(image, probs=True)
    assert pred.probs.shape == (model.num_classes, 33, 41) and pred.probs.dtype == np.float32
    assert np.allclose(pred.probs.sum(0), 1.0, atol=1e-4)
    assert np.array_equal(pred.probs.argmax(0), pred.mask) and np.array_equal(plain.mask, pred.mask)
    flipped = model.predict(image, tta=True, size=64)  # another protocol for one call; the model's stays
    assert flipped.mask.shape == (33, 41) and model.protocol.tta_scales == ()


def test_save_writes_the_mask_and_overlay_and_refuses_to_overwrite(model: Model, tmp_path: Path) -> None:
    image = np.full((24, 32, 3), 90, np.uint8)
    pred = model.predict(image)
    files = pred.save(tmp_path / "pred")
    assert files == {"mask": tmp_path / "pred/masks/image0.png", "overlay": tmp_path / "pred/overlays/image0.jpg"}
    assert np.array_equal(read_mask(files["mask"]), pred.mask)
    assert read_image(files["overlay"]).shape == (24, 32, 3) and pred.overlay(alpha=0.3).shape == (24, 32, 3)
    with pytest.raises(UserError, match="image0.png exists; pass `overwrite`"):
        pred.save(tmp_path / "pred")
    assert pred.save(tmp_path / "pred", overwrite=True, name="again")["mask"].name == "again.png"
    pred.save(tmp_path / "pred", overwrite=True)


def test_predict_tiled_writes_the_tiled_tiffs_seg_infer_writes(model: Model, tmp_path: Path) -> None:
    tifffile = pytest.importorskip("tifffile", reason="tifffile (the tiff extra) is not installed")
    image = np.random.default_rng(0).integers(0, 256, (70, 90, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "big.tif", image, tile=(32, 32), photometric="rgb")
    entry = model.predict_tiled(tmp_path / "big.tif", tmp_path / "out", save=("mask", "ids"))
    assert entry["mask"] == str(tmp_path / "out/masks/big.tif") and entry["ids"] == str(tmp_path / "out/ids/big.tif")
    mask = tifffile.imread(entry["mask"])
    assert mask.shape == (70, 90) and np.array_equal(tifffile.imread(entry["ids"]), mask)
    proto = model.protocol
    assert entry["tiled"]["tile"] == list(proto.tile) and entry["tiled"]["read"].startswith("32x32 TIFF tiles")
    with pytest.raises(UserError, match="big.tif exists; pass `overwrite`"):
        model.predict_tiled(tmp_path / "big.tif", tmp_path / "out")
    seg_infer = predictor.predict(
        model.weights,
        [str(tmp_path / "big.tif")],
        tmp_path / "cli",
        "cpu",
        output=predictor.OutputOptions(tiled=True),
        workers=0,
    )
    assert np.array_equal(tifffile.imread(seg_infer.outputs[0]["mask"]), mask)


def test_weights_file_fresh_preset_and_bad_arrays(trained: Path, shapes_root: Path) -> None:
    from_file = Model(trained / "weights" / "last.safetensors", "cpu")
    assert from_file.weights.name == "last.safetensors" and from_file.classes
    fresh = Model("quickstart", "cpu", overrides=TINY, classes=["a", "b", "c"])
    assert fresh.weights is None and fresh.num_classes == 3
    assert fresh.predict(np.zeros((16, 16), np.uint8)).mask.shape == (16, 16)  # a grey array: three channels
    with pytest.raises(UserError, match=r"RGB uint8 \(H, W, 3\)"):
        fresh.predict(np.zeros((8, 8, 4), np.uint8))
    with pytest.raises(UserError, match="classes"):
        Model("quickstart", "cpu", overrides=["data.root=/nonexistent"])
    assert Model("quickstart", "cpu", overrides=[*TINY, f"data.root={shapes_root}"]).classes == from_file.classes
    with pytest.raises(CheckpointError, match="no such weights file or run directory"):
        Model(trained.parent / "99", "cpu")
    with pytest.raises(PresetError, match="did you mean"):
        Model("quickstrat", "cpu")


def test_evaluate_writes_a_report_only_if_asked(model: Model, trained: Path, shapes_root: Path, tmp_path: Path) -> None:
    before = _files(trained)
    metrics = model.evaluate(shapes_root, split="val", workers=0)
    assert 0.0 <= metrics["mIoU"] <= 1.0 and metrics["images"] == 8 and "confusion_png" not in metrics
    assert "reliability_png" not in metrics
    assert _files(trained) == before
    kept = model.evaluate(shapes_root, workers=0, report=tmp_path / "eval")
    assert Path(kept["report"]).is_file() and Path(kept["report"]).parent == tmp_path / "eval"
    assert kept["mIoU"] == metrics["mIoU"]


def test_a_videos_frames_one_prediction_each_as_the_arrays_give(model: Model, tmp_path: Path) -> None:
    import cv2

    clip = tmp_path / "clip.mp4"
    video = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 5.0, (40, 24))
    for k in range(11):  # more than one batch of 8
        video.write(np.full((24, 40, 3), 20 * k, np.uint8))
    video.release()
    frames = list(model.predict_video(clip))
    assert [f.name for f in frames] == [f"clip_{k:06d}" for k in range(11)]
    assert np.array_equal(frames[9].mask, model.predict(frames[9].image).mask) and frames[9].mask.shape == (24, 40)
    with pytest.raises(UserError, match="predict_video"):
        model.predict(clip)


def test_an_n_channel_model_takes_n_channel_arrays_and_files(tmp_path: Path) -> None:
    """data.channels = 4: (H, W, 4) arrays (uint8, float in 0-255 units, uint16 / 257) and 4-channel TIFFs; a
    3-channel array is one clear error naming the count; the overlay shows the first three channels."""
    tifffile = pytest.importorskip("tifffile")
    model = Model("quickstart", "cpu", overrides=[*TINY, "data.channels=4"], classes=["a", "b"])
    rng = np.random.default_rng(0)
    u16 = rng.integers(0, 65536, (16, 24, 4)).astype(np.uint16)
    as_float = model.predict(u16.astype(np.float32) / 257.0)
    assert as_float.mask.shape == (16, 24) and as_float.overlay().shape == (16, 24, 3)
    assert np.array_equal(model.predict(u16).mask, as_float.mask)
    tifffile.imwrite(tmp_path / "a.tif", u16, photometric="minisblack", planarconfig="contig")
    assert np.array_equal(model.predict(tmp_path / "a.tif").mask, as_float.mask)
    with pytest.raises(UserError, match=r"the model takes 4-channel images \(H, W, 4\)"):
        model.predict(np.zeros((8, 8, 3), np.uint8))
