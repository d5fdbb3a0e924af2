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
