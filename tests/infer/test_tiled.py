"""Tiled inference (segcli/infer/tiled.py): band-by-band prediction equals the in-memory smooth sliding window and
stays close to the whole-image pass, TIFFs are read a band at a time (tiled, striped, uncompressed), the mask is a
tiled TIFF (BigTIFF past the limit) carrying the input's georeferencing tags unchanged, and seg infer routes
large images to it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

tifffile = pytest.importorskip("tifffile", reason="tifffile (the tiff extra) is not installed")

from segcli.infer import tiled  # noqa: E402
from segcli.infer.predict_core import forward_padded, input_multiple, slide_logits  # noqa: E402
from segcli.infer.predictor import OutputOptions, open_model, predict  # noqa: E402

# GeoTIFF tags of a UTM-placed image: pixel scale, tie point, GeoKey directory, GDAL nodata
GEO = [
    (33550, 12, 3, (0.5, 0.5, 0.0), True),
    (33922, 12, 6, (0.0, 0.0, 0.0, 500000.0, 4000000.0, 0.0), True),
    (34735, 3, 8, (1, 1, 0, 1, 1024, 0, 1, 1), True),
    (42113, 2, 2, "0", True),
]


def smooth_image(h: int = 200, w: int = 300, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    low = rng.integers(0, 256, (5, 7, 3)).astype(np.float32)
    return np.clip(cv2.resize(low, (w, h), interpolation=cv2.INTER_CUBIC), 0, 255).astype(np.uint8)


def mosaic(shapes_root: Path, h: int = 200, w: int = 300) -> np.ndarray:
    """A 200x300 image of the shapes val images side by side (objects the trained model knows)."""
    from segcli.data.io import read_image

    ims = [read_image(p) for p in sorted((shapes_root / "images" / "val").iterdir())]
    rows = [np.concatenate([ims[(r * 7 + c) % len(ims)] for c in range(7)], 1) for r in range(5)]
    return np.ascontiguousarray(np.concatenate(rows, 0)[:h, :w])


def test_tiled_equals_the_smooth_sliding_window_and_is_close_to_the_whole_image(weights: Path, tmp_path: Path) -> None:
    """200x300 image, 96x128 windows every 64x80 (12 windows), read from 64x64 TIFF tiles: the streamed logits
    equal the in-memory smooth sliding window (float rounding only), every row handed on once; against one
    whole-image forward pass the softmax probabilities differ by at most 0.1 (measured with this untrained model:
    0.027; the difference is the windows' missing context, not the blending: docs/deploy.md has a trained one's)."""
    opened = open_model(weights, "cpu")
    proto = replace(opened.protocol, tile=(96, 128), stride=(64, 80), window_batch=4)
    image = smooth_image(seed=3)
    tifffile.imwrite(tmp_path / "m.tif", image, tile=(64, 64), photometric="rgb", compression="zlib")
    raster = tiled.open_raster(tmp_path / "m.tif")
    bands = [(y, b.clone()) for y, b in tiled.blended_rows(opened.model, raster, proto)]
    raster.close()
    assert [y for y, _ in bands] == [0, 64, 104] and sum(b.shape[1] for _, b in bands) == 200  # rows once each
    streamed = torch.cat([b for _, b in bands], 1)
    x = torch.from_numpy(image.transpose(2, 0, 1).copy())[None]
    multiple = input_multiple(opened.model)
    in_memory = slide_logits(opened.model, x, proto, multiple, smooth=True)[0]
    assert (streamed - in_memory).abs().max() < 1e-4
    whole = forward_padded(opened.model, x, proto, multiple)[0]
    diff = (streamed.softmax(0) - whole.softmax(0)).abs().max().item()
    assert diff < 0.1


def test_striped_memory_mapped_and_png_inputs_read_in_bands(tmp_path: Path) -> None:
    image = smooth_image()
    tifffile.imwrite(tmp_path / "s.tif", image, rowsperstrip=7, photometric="rgb", compression="zlib")
    tifffile.imwrite(tmp_path / "u.tif", image, photometric="rgb")
    tifffile.imwrite(tmp_path / "g.tif", (image[..., 0].astype(np.uint16) * 257), tile=(32, 48))  # 16-bit grey
    cv2.imwrite(str(tmp_path / "p.png"), image[..., ::-1])
    for name, how in (("s.tif", "strips of 7 rows"), ("u.tif", "memory-mapped"), ("g.tif", "32x48 TIFF tiles")):
        raster = tiled.open_raster(tmp_path / name)
        assert how in raster.how and (raster.height, raster.width) == (200, 300)
        want = np.repeat(image[..., :1], 3, 2) if name == "g.tif" else image
        assert np.array_equal(raster.read(37, 101), want[37:101]) and np.array_equal(raster.read(190, 200), want[190:])
        raster.close()
    png = tiled.open_raster(tmp_path / "p.png")
    assert png.how == "whole image" and np.array_equal(png.read(0, 200), image)


def test_the_dense_crf_is_refused_for_an_image_predicted_by_bands(weights: Path, tmp_path: Path) -> None:
    from segcli.errors import UserError
    from segcli.infer.protocol import ProtocolChoices

    cv2.imwrite(str(tmp_path / "im.png"), smooth_image(64, 96))
    with pytest.raises(UserError, match="dense CRF cannot refine"):
        predict(
            weights,
            [str(tmp_path / "im.png")],
            tmp_path / "out",
            "cpu",
            protocol=ProtocolChoices(crf=True),
            output=OutputOptions(tiled=True),
            workers=0,
        )


def test_the_mask_is_a_tiled_tiff_with_the_georeferencing_of_the_input(weights: Path, tmp_path: Path) -> None:
    image = smooth_image()
    tifffile.imwrite(tmp_path / "geo.tif", image, tile=(64, 64), photometric="rgb", extratags=GEO)
    options = OutputOptions(save="mask,ids", tiled=True)
    res = predict(weights, [str(tmp_path / "geo.tif")], tmp_path / "out", "cpu", output=options, workers=0)
    entry = res.outputs[0]
    assert entry["tiled"]["geotags"] == [33550, 33922, 34735, 42113] and not entry["tiled"]["bigtiff"]
    with tifffile.TiffFile(entry["mask"]) as tf, tifffile.TiffFile(tmp_path / "geo.tif") as src:
        page = tf.pages[0]
        assert page.is_tiled and (page.tilelength, page.tilewidth) == (512, 512) and page.shape == (200, 300)
        assert page.photometric == tifffile.PHOTOMETRIC.PALETTE and page.dtype == np.uint8
        for code, *_ in GEO:
            assert page.tags[code].value == src.pages[0].tags[code].value  # copied unchanged
        mask = page.asarray()
    assert np.array_equal(tifffile.imread(entry["ids"]), mask) and mask.max() < 5
    assert sum(entry["classes"].values()) == pytest.approx(1.0, abs=1e-3)


def test_bigtiff_past_the_limit_and_large_images_go_tiled(
    weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cv2.imwrite(str(tmp_path / "a.png"), smooth_image(40, 60))
    assert tiled.is_tiled(tmp_path / "a.png", None, above=48) and not tiled.is_tiled(tmp_path / "a.png", None, 49)
    assert not tiled.is_tiled(tmp_path / "a.png", False, above=1)
    monkeypatch.setattr(tiled, "BIGTIFF_ABOVE", 1000)  # 40 x 60 ids are 2400 bytes
    res = predict(weights, [str(tmp_path)], tmp_path / "out", "cpu", output=OutputOptions(tiled_above=48), workers=0)
    entry = res.outputs[0]
    assert entry["tiled"]["bigtiff"] and Path(entry["mask"]) == tmp_path / "out" / "masks" / "a.tif"
    with tifffile.TiffFile(entry["mask"]) as tf:
        assert tf.is_bigtiff and tf.pages[0].shape == (40, 60)
    assert not (tmp_path / "out" / "overlays").exists()  # a tiled image writes its mask and ids only


def test_n_channel_tiffs_read_in_bands_with_every_channel(tmp_path: Path) -> None:
    """A model of data.channels = 4 reads 4-channel 16-bit TIFFs band by band (tiled, striped or memory-mapped) as
    read_image reads them whole (value / 257, float32); a float TIFF whole; another count names the file."""
    from segcli.data.io import read_image
    from segcli.errors import DataError

    image = np.random.default_rng(0).integers(0, 65536, (40, 56, 4)).astype(np.uint16)
    layouts = {"tiles.tif": {"tile": (16, 16)}, "strips.tif": {"rowsperstrip": 8}, "mapped.tif": {}}
    for name, kwargs in layouts.items():
        tifffile.imwrite(tmp_path / name, image, photometric="minisblack", planarconfig="contig", **kwargs)
        raster = tiled.open_raster(tmp_path / name, 4)
        bands = np.concatenate([raster.read(y, min(y + 16, 40)) for y in range(0, 40, 16)])
        raster.close()
        np.testing.assert_array_equal(bands, read_image(tmp_path / name, 4))
        assert bands.dtype == np.float32 and bands.shape == (40, 56, 4)
    floats = image.astype(np.float32) / 65535
    tifffile.imwrite(tmp_path / "float.tif", floats, photometric="minisblack", planarconfig="contig")
    np.testing.assert_allclose(tiled.open_raster(tmp_path / "float.tif", 4).read(0, 40), floats * 255, rtol=1e-6)
    with pytest.raises(DataError, match=r"tiles.tif: image has 4 channels, not the 5 the model takes"):
        tiled.open_raster(tmp_path / "tiles.tif", 5).read(0, 8)


def test_a_huge_image_is_sized_from_its_header_without_a_warning(tmp_path: Path) -> None:
    """A 10000 x 10000 PNG header (no pixels): 100 Mpx, over 8192 x 8192, measured without decoding and without
    Pillow's decompression-bomb warning (an error under -W error)."""
    import struct
    import warnings
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", 10000, 10000, 8, 2, 0, 0, 0))
    (tmp_path / "huge.png").write_bytes(b"\x89PNG\r\n\x1a\n" + header + chunk(b"IEND", b""))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert tiled.image_pixels(tmp_path / "huge.png") == 10**8
        assert tiled.is_tiled(tmp_path / "huge.png", None) and not tiled.is_tiled(tmp_path / "huge.png", None, 10**4)
