"""The one decode module: strict (format) and tolerant (download) mask reading, probes, label mapping."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest

from segcli.data.decode import (
    check_ids,
    colors_to_ids,
    decode_ids,
    decode_image,
    decode_mask,
    header_dims,
    image_size,
    inspect_mask,
    is_palette_png,
    load_mat,
    lut_map,
    probe_image,
    read_file,
    truncated,
)
from segcli.errors import DataError


def test_strict_and_tolerant_mask_decoding(tmp_path: Path) -> None:
    grey_rgb = np.repeat(np.array([[0, 1], [2, 1]], np.uint8)[..., None], 3, axis=2)
    data = cv2.imencode(".png", grey_rgb)[1].tobytes()
    with pytest.raises(DataError, match="x.png: mask has 3 channels"):
        decode_mask(data, "x.png", strict=True)
    assert decode_mask(data, "x.png", strict=False).tolist() == [[0, 1], [2, 1]]
    colour = grey_rgb.copy()
    colour[0, 0] = (1, 2, 3)
    with pytest.raises(DataError, match="label is a colour image"):
        decode_mask(cv2.imencode(".png", colour)[1].tobytes(), "y.png", strict=False)
    with pytest.raises(DataError, match="cannot decode mask"):
        decode_mask(b"not an image", "z.png")
    (tmp_path / "g.png").write_bytes(data)
    facts = inspect_mask(tmp_path / "g.png")
    assert facts.problem == "grey-rgb" and facts.ids is not None and facts.ids.tolist() == [[0, 1], [2, 1]]
    (tmp_path / "e.png").write_bytes(b"")
    assert inspect_mask(tmp_path / "e.png").problem == "empty"


def test_colors_to_ids_and_unknown_colour() -> None:
    rgb = np.array([[[0, 0, 0], [10, 20, 30]], [[255, 0, 0], [10, 20, 30]]], np.uint8)
    table = [(10, 20, 30), (0, 0, 0), (255, 0, 0)]
    np.testing.assert_array_equal(colors_to_ids(rgb, table, "x"), [[1, 0], [2, 0]])
    with pytest.raises(DataError, match=r"colour \(255, 0, 0\)"):
        colors_to_ids(rgb, table[:2], "lab.png")
    np.testing.assert_array_equal(colors_to_ids(rgb, table[:2], "x", unknown=255), [[1, 0], [255, 0]])


def _png(arr: np.ndarray) -> bytes:
    return cv2.imencode(".png", arr)[1].tobytes()


def _jpg(rgb: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", rgb)[1].tobytes()


def test_truncated_png_and_jpeg_are_refused_not_grey_filled() -> None:
    png, jpg = _png(np.zeros((8, 8), np.uint8)), _jpg(np.full((16, 16, 3), 90, np.uint8))
    assert truncated(png) == truncated(jpg) == ""
    assert truncated(png + b"trailing") == ""  # bytes after IEND are tolerated
    assert truncated(png[:-20]) == "PNG" and truncated(jpg[: len(jpg) // 2]) == "JPEG"
    assert truncated(b"plain text") == ""
    with pytest.raises(DataError, match=r"a\.png: mask is truncated \(the PNG file ends early\)"):
        decode_mask(png[:-20], "a.png")
    with pytest.raises(DataError, match=r"b\.jpg: image is truncated \(the JPEG file ends early\)"):
        decode_image(jpg[: len(jpg) // 2], "b.jpg")


def test_decode_image_gives_rgb_from_bgr_grey_and_bgra() -> None:
    bgr = np.zeros((2, 2, 3), np.uint8)
    bgr[..., 2] = 200  # red in OpenCV's order
    assert decode_image(_png(bgr), "x")[0, 0].tolist() == [200, 0, 0]
    assert decode_image(_png(np.full((2, 2), 9, np.uint8)), "x")[1, 1].tolist() == [9, 9, 9]
    bgra = np.dstack([bgr, np.full((2, 2), 128, np.uint8)])
    assert decode_image(_png(bgra), "x").shape == (2, 2, 3)
    with pytest.raises(DataError, match="z: cannot decode image"):
        decode_image(b"\x00garbage", "z")


def test_palette_png_gives_its_indices_and_16_bit_masks_stay_16_bit() -> None:
    from PIL import Image

    buf = io.BytesIO()
    im = Image.fromarray(np.array([[0, 3]], np.uint8), mode="P")
    im.putpalette([255, 255, 255] * 256)  # every index shows white: the index is the id
    im.save(buf, format="PNG")
    assert is_palette_png(buf.getvalue()) and not is_palette_png(_png(np.zeros((2, 2), np.uint8)))
    assert decode_mask(buf.getvalue(), "p").tolist() == [[0, 3]]
    ids16 = np.array([[0, 400]], np.uint16)
    out = decode_ids(_png(ids16), "d")
    assert out.dtype == np.uint16 and out.tolist() == [[0, 400]]


def test_image_size_reads_the_header_and_names_a_bad_file() -> None:
    assert image_size(_png(np.zeros((5, 7), np.uint8)), "x") == (5, 7)
    with pytest.raises(DataError, match=r"x\.png: cannot read image"):
        image_size(b"nope", "x.png")


def test_probes_never_raise(tmp_path: Path) -> None:
    (tmp_path / "ok.png").write_bytes(_png(np.zeros((3, 4, 3), np.uint8)))
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "cut.png").write_bytes(_png(np.zeros((30, 40), np.uint8))[:-30])
    assert probe_image(tmp_path / "ok.png") == (3, 4)
    assert probe_image(tmp_path / "empty.png") == "empty"
    assert probe_image(tmp_path / "cut.png") == "unreadable"
    assert probe_image(tmp_path / "missing.png") == "unreadable"
    assert inspect_mask(tmp_path / "missing.png").problem == "unreadable"
    colour = np.zeros((2, 2, 3), np.uint8)
    colour[0, 0] = (1, 2, 3)
    (tmp_path / "rgb.png").write_bytes(_png(colour))
    facts = inspect_mask(tmp_path / "rgb.png")
    assert facts.problem == "rgb" and facts.ids is None and facts.mode == "RGB"
    (tmp_path / "m16.png").write_bytes(_png(np.array([[1, 300]], np.uint16)))
    facts = inspect_mask(tmp_path / "m16.png")
    assert facts.problem is None and facts.mode == "I;16" and facts.ids.tolist() == [[1, 300]]


def test_lut_map_sends_unlisted_ids_to_the_default_and_widens_when_needed() -> None:
    raw = np.array([[7, 8, 9]], np.uint8)
    out = lut_map(raw, {7: 0, 8: 1})
    assert out.dtype == np.uint8 and out.tolist() == [[0, 1, 255]]
    assert lut_map(raw, {7: 0}, default=3).tolist() == [[0, 3, 3]]
    wide = lut_map(np.array([[1000, 5]], np.uint16), {1000: 300, 99999: 1})  # a key beyond the range is skipped
    assert wide.dtype == np.uint16 and wide.tolist() == [[300, 255]]


def test_check_ids_lists_the_bad_values_naming_the_file_and_dataset() -> None:
    ids = np.array([[0, 1, 255, 5, 9]], np.uint8)
    with pytest.raises(DataError, match=r"l\.png: values \[5, 9\] are not toy class ids 0..2 nor 255"):
        check_ids(ids, 3, 255, "l.png", "toy")
    with pytest.raises(DataError, match=r"values \[5, 9\] are not class ids 0..2"):
        check_ids(ids, 3, 255, "l.png")
    ok = np.array([[0, 2, 255]], np.uint8)
    assert check_ids(ok, 3, 255, "l.png") is ok


def test_load_mat_reads_structs_and_names_a_broken_file() -> None:
    pytest.importorskip("scipy")
    from scipy.io import savemat

    buf = io.BytesIO()
    savemat(buf, {"GTcls": {"Segmentation": np.array([[1, 2]], np.uint8)}})
    mat = load_mat(buf.getvalue(), "a.mat")
    assert mat["GTcls"].Segmentation.tolist() == [1, 2]
    with pytest.raises(DataError, match=r"b\.mat: cannot read \.mat file .*; re-download it"):
        load_mat(b"x" * 200, "b.mat")  # no .mat header


def test_read_file_names_a_missing_or_empty_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"gone\.png: mask file not found"):
        read_file(tmp_path / "gone.png", "mask", "fix it")
    (tmp_path / "e.png").write_bytes(b"")
    with pytest.raises(DataError, match=r"e\.png: image file is empty \(0 bytes\); fix it"):
        read_file(tmp_path / "e.png", "image", "fix it")
    (tmp_path / "f.png").write_bytes(b"abc")
    assert read_file(tmp_path / "f.png", "image", "") == b"abc"


@pytest.mark.parametrize("data", [b"x" * 50, bytes(200), b"MATLAB 5.0" + bytes(10)], ids=["short", "zeros", "header"])
def test_a_broken_mat_file_is_one_line_naming_it(data: bytes) -> None:
    pytest.importorskip("scipy")
    from segcli.data.decode import load_mat

    with pytest.raises(DataError, match=r"^cls/2008_000002\.mat: cannot read \.mat file .*re-download it$"):
        load_mat(data, "cls/2008_000002.mat")


def test_an_image_beyond_opencvs_pixel_limit_is_one_line_naming_it(tmp_path: Path) -> None:
    from cli_helpers import huge_png_header

    data = huge_png_header()
    assert header_dims(data) == (60000, 60000)
    for decode in (decode_image, decode_mask):
        with pytest.raises(DataError, match=r"^big\.png: .* 60000x60000 pixels \(from its header\), more than the"):
            decode(data, "big.png")
    (tmp_path / "m.png").write_bytes(data)
    assert inspect_mask(tmp_path / "m.png").problem == "unreadable"  # seg check reports it, never raises


def test_another_opencv_refusal_is_one_line_with_its_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> None:
        raise cv2.error("OpenCV(5.1.0) loadsave.cpp:80: error: (-215:Assertion failed) width > 0 in function 'x'\n")

    monkeypatch.setattr(cv2, "imdecode", refuse)
    with pytest.raises(DataError) as e:
        decode_image(_png(np.zeros((4, 4, 3), np.uint8)), "a.png")
    assert str(e.value) == "a.png: cannot decode image (OpenCV: (-215:Assertion failed) width > 0 in function 'x')"


def test_read_file_names_a_link_that_leads_nowhere(tmp_path: Path) -> None:
    (tmp_path / "loop.png").symlink_to("loop.png")
    with pytest.raises(DataError, match=r"loop\.png: mask is a symbolic link that leads nowhere \(a loop"):
        read_file(tmp_path / "loop.png", "mask", "re-create it")


def test_to_model_range_states_the_units_of_each_type() -> None:
    from segcli.data.decode import to_model_range

    u8 = np.array([[0, 255]], np.uint8)
    assert to_model_range(u8, "x") is u8
    np.testing.assert_allclose(to_model_range(np.array([[0, 65535]], np.uint16), "x"), [[0.0, 255.0]])
    np.testing.assert_allclose(to_model_range(np.array([[0.0, 0.5, 2.0]]), "x"), [[0.0, 127.5, 510.0]])
    with pytest.raises(DataError, match="x: unsupported image dtype int32"):
        to_model_range(np.zeros((1, 1), np.int32), "x")


def test_probe_image_reads_multispectral_tiffs(tmp_path: Path) -> None:
    tifffile = pytest.importorskip("tifffile")
    from segcli.data.decode import probe_image

    tifffile.imwrite(
        tmp_path / "a.tif", np.zeros((5, 7, 6), np.float32), photometric="minisblack", planarconfig="contig"
    )
    assert probe_image(tmp_path / "a.tif") == (5, 7)
    (tmp_path / "b.tif").write_bytes(b"II*\x00garbage")
    assert probe_image(tmp_path / "b.tif") == "unreadable"


def test_image_size_reads_a_tiff_header(tmp_path: Path) -> None:
    tifffile = pytest.importorskip("tifffile")
    from segcli.data.decode import image_size

    for name, array, kwargs in [
        ("contig", np.zeros((5, 7, 4), np.uint16), {"planarconfig": "contig"}),
        ("planar", np.zeros((4, 5, 7), np.float32), {"planarconfig": "separate"}),
    ]:
        tifffile.imwrite(tmp_path / f"{name}.tif", array, photometric="minisblack", **kwargs)
        assert image_size((tmp_path / f"{name}.tif").read_bytes(), name) == (5, 7)
    with pytest.raises(DataError, match="bad: cannot read image"):
        image_size(b"II*\x00garbage", "bad")
