"""Image and mask files: reading (palette PNGs as ids, clear errors) and atomic writing."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from segcli.data.io import list_images, read_image, read_mask, write_image, write_mask, write_palette_mask
from segcli.errors import DataError


def test_palette_png_reads_as_indices(tmp_path: Path) -> None:
    ids = np.array([[0, 1], [2, 255]], np.uint8)
    p = write_palette_mask(tmp_path / "m.png", ids, [[10, 20, 30], [200, 0, 0], [0, 200, 0]])
    with Image.open(p) as im:
        assert im.mode == "P"
    assert np.array_equal(read_mask(p), ids)


def test_rgb_mask_and_empty_file_are_clear_errors(tmp_path: Path) -> None:
    p = tmp_path / "rgb.png"
    cv2.imwrite(str(p), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(DataError, match=r"rgb.png: mask has 3 channels"):
        read_mask(p)
    e = tmp_path / "empty.png"
    e.write_bytes(b"")
    with pytest.raises(DataError, match=r"empty.png: mask file is empty \(0 bytes\)"):
        read_mask(e)


def rng_image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)


def test_read_image_converts_grey_and_16_bit_to_rgb_uint8(tmp_path: Path) -> None:
    grey = np.array([[0, 128], [255, 7]], np.uint8)
    cv2.imwrite(str(tmp_path / "g.png"), grey)
    rgb = read_image(tmp_path / "g.png")
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8 and (rgb == grey[..., None]).all()
    deep = np.array([[0, 65535]], np.uint16)
    cv2.imwrite(str(tmp_path / "d.png"), deep)
    assert read_image(tmp_path / "d.png")[0, :, 0].tolist() == [0, 255]
    with pytest.raises(DataError, match=r"nowhere\.png: image file not found"):
        read_image(tmp_path / "nowhere.png")


def test_write_image_round_trips_rgb_and_makes_the_folder(tmp_path: Path) -> None:
    rgb = np.zeros((4, 6, 3), np.uint8)
    rgb[..., 0] = 200  # red: a swapped channel order would read back blue
    p = write_image(tmp_path / "a" / "b" / "x.png", rgb)
    assert p == tmp_path / "a" / "b" / "x.png"
    np.testing.assert_array_equal(read_image(p), rgb)
    assert [q.name for q in p.parent.iterdir()] == ["x.png"]  # no temp file left beside it
    small = write_image(tmp_path / "q10.jpg", rng_image(), quality=10).stat().st_size
    assert small < write_image(tmp_path / "q95.jpg", rng_image()).stat().st_size


def test_write_mask_keeps_uint8_and_uint16_ids_and_refuses_others(tmp_path: Path) -> None:
    ids8 = np.array([[0, 1], [2, 255]], np.uint8)
    np.testing.assert_array_equal(read_mask(write_mask(tmp_path / "m8.png", ids8)), ids8)
    ids16 = np.array([[0, 300], [1000, 65535]], np.uint16)
    back = read_mask(write_mask(tmp_path / "m16.png", ids16))
    assert back.dtype == np.uint16 and back.tolist() == ids16.tolist()
    with pytest.raises(ValueError, match=r"mask must be 2-D uint8/uint16, got \(2, 2, 3\) uint8"):
        write_mask(tmp_path / "bad.png", np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(ValueError, match="int32"):
        write_mask(tmp_path / "bad.png", np.zeros((2, 2), np.int32))
    assert not (tmp_path / "bad.png").exists()


def test_palette_mask_shows_the_palette_colours(tmp_path: Path) -> None:
    ids = np.array([[0, 1]], np.uint8)
    p = write_palette_mask(tmp_path / "p.png", ids, [[10, 20, 30], [200, 0, 0]], compress_level=1)
    with Image.open(p) as im:
        assert im.convert("RGB").getpixel((1, 0)) == (200, 0, 0)


def test_list_images_is_sorted_and_keeps_only_image_files(tmp_path: Path) -> None:
    for name in ("b.JPG", "a.png", "c.txt", "d.tiff"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "e.png").mkdir()  # a folder named like an image is not one
    assert [p.name for p in list_images(tmp_path)] == ["a.png", "b.JPG", "d.tiff"]


def test_an_extension_opencv_cannot_write_is_one_line_naming_the_file(tmp_path: Path) -> None:
    from segcli.data.io import write_image

    with pytest.raises(DataError, match=r"x\.nope'?: cannot encode image as \.nope"):
        write_image(tmp_path / "x.nope", np.zeros((4, 4, 3), np.uint8))
    assert not list(tmp_path.iterdir())


def test_n_channel_tiff_and_16_bit_png_read_in_the_models_units(tmp_path: Path) -> None:
    """16-bit → value / 257 and float → value x 255 (float32), 8-bit stays uint8; TIFF samples stored pixel by pixel
    or plane by plane give the same (H, W, C); a grey 16-bit PNG is one channel; extra-channel files are appended."""
    tifffile = pytest.importorskip("tifffile")
    rng = np.random.default_rng(0)
    a = rng.integers(0, 65536, (6, 5, 4)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "contig.tif", a, photometric="minisblack", planarconfig="contig")
    tifffile.imwrite(tmp_path / "planar.tif", np.moveaxis(a, -1, 0), photometric="minisblack", planarconfig="separate")
    for name in ("contig.tif", "planar.tif"):
        image = read_image(tmp_path / name, 4)
        assert image.dtype == np.float32 and image.shape == (6, 5, 4)
        np.testing.assert_allclose(image, a / 257.0, rtol=1e-6)
    f = rng.random((6, 5, 2)).astype(np.float32)
    tifffile.imwrite(tmp_path / "float.tif", f, photometric="minisblack", planarconfig="contig")
    np.testing.assert_allclose(read_image(tmp_path / "float.tif", 2), f * 255.0, rtol=1e-6)
    grey = rng.integers(0, 65536, (6, 5)).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "nir.png"), grey)
    np.testing.assert_allclose(read_image(tmp_path / "nir.png", 1)[..., 0], grey / 257.0, rtol=1e-6)
    rgb = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
    write_image(tmp_path / "rgb.png", rgb)
    both = read_image(tmp_path / "rgb.png", 4, [tmp_path / "nir.png"])  # RGB + near infrared from a folder
    assert both.dtype == np.float32 and both.shape == (6, 5, 4)
    np.testing.assert_array_equal(both[..., :3], rgb)
    np.testing.assert_allclose(both[..., 3], grey / 257.0, rtol=1e-6)
    assert read_image(tmp_path / "rgb.png", 6, [tmp_path / "rgb.png"]).dtype == np.uint8  # all 8-bit: uint8


def test_a_wrong_channel_count_is_one_line_naming_the_file(tmp_path: Path) -> None:
    tifffile = pytest.importorskip("tifffile")
    tifffile.imwrite(tmp_path / "three.tif", np.zeros((4, 4, 3), np.uint16), photometric="rgb")
    with pytest.raises(DataError, match=r"three.tif: image has 3 channels, not the 4 the model takes"):
        read_image(tmp_path / "three.tif", 4)
    tifffile.imwrite(
        tmp_path / "four.tif", np.zeros((4, 4, 4), np.uint16), photometric="minisblack", planarconfig="contig"
    )
    with pytest.raises(DataError, match=r"four.tif: image has 4 channels, not the 3"):
        read_image(tmp_path / "four.tif")  # an RGB model never drops a fourth channel silently
    cv2.imwrite(str(tmp_path / "small.png"), np.zeros((2, 2), np.uint8))
    with pytest.raises(DataError, match=r"small.png: extra channel is 2x2 but its image three.tif is 4x4"):
        read_image(tmp_path / "three.tif", 4, [tmp_path / "small.png"])
