"""The converter interface, its registry checks and the engine entry point `prepare`."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prepare_helpers import Tiny, write_png

from segcli.data.format import read_dataset_info
from segcli.data.io import read_mask
from segcli.data.prepare import Converter, Option, Plan, converters, prepare
from segcli.data.prepare.converter import (
    LutConverter,
    by_name,
    decode_checked_ids,
    register_converter,
)
from segcli.data.prepare.sources import STAGING, Sources, open_sources
from segcli.data.prepare.writer import Sample
from segcli.errors import DataError, UserError


def test_registry_errors() -> None:
    with pytest.raises(UserError, match=r"unknown converter 'citscapes' \(did you mean \"cityscapes\"\?\)"):
        converters().get("citscapes")
    with pytest.raises(ValueError, match="registered twice"):
        register_converter(type(converters().get("voc")))

    class Reserved(Tiny):
        name = "reserved"
        options = (Option("force", bool, False, "clashes with the shared --force"),)

    with pytest.raises(ValueError, match="reserved option names"):
        register_converter(Reserved)
    assert "reserved" not in converters()


def test_options_are_checked_and_defaulted() -> None:
    conv = converters().get("shapes")
    assert conv.resolve({"train": 3}) == {"train": 3, "val": 100, "size": 128, "seed": 0, "video": 0}
    with pytest.raises(UserError, match="converter 'shapes' has no option 'trian'; its options: train, val"):
        conv.resolve({"trian": 3})


def test_engine_runs_a_registered_converter_and_counts_pixels(tiny_converter: type[Tiny], tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    res = prepare("tiny", [], tmp_path / "t", count=3, fill=2, progress=lambda n, total: calls.append((n, total)))
    assert res.counts == {"train": 3, "val": 3} and res.written == 6
    assert res.pixel_counts == (0, 0, 6 * 15)  # 15 of 16 pixels are class 2, one is ignore
    assert calls[0] == (0, 6) and sum(n for n, _ in calls) == 6
    assert read_dataset_info(tmp_path / "t").extra["prepare"] == {"converter": "tiny", "fill": 2}
    assert read_mask(tmp_path / "t" / "masks" / "val" / "val2.png")[1, 1] == 2
    # A re-run skips every sample and still reports the same counts (read back from the written masks).
    again = prepare("tiny", [], tmp_path / "t", count=3, fill=2)
    assert again.written == 0 and again.skipped == 6 and again.pixel_counts == res.pixel_counts
    with pytest.raises(UserError, match="reads no downloads"):
        prepare("tiny", [tmp_path], tmp_path / "u")


def test_option_cli_flag_is_the_dashed_name_unless_given() -> None:
    assert Option("val_ratio", float, 0.1, "h").cli_flag == "--val-ratio"
    assert Option("images_dir", str, None, "h", flag="--images").cli_flag == "--images"


def test_a_converter_needs_a_name_and_a_help_line(tiny_converter: type[Tiny]) -> None:
    class Nameless(Tiny):
        name = ""

    class Helpless(Tiny):
        name = "helpless"
        help = ""

    for cls in (Nameless, Helpless):
        with pytest.raises(ValueError, match=f"converter {cls.__name__}: needs a name and a help line"):
            register_converter(cls)
    assert "helpless" not in converters()


def test_resolve_of_a_converter_without_options_says_none() -> None:
    class Bare(Converter):
        name = "bare"

    assert Bare().resolve({}) == {}
    with pytest.raises(UserError, match="converter 'bare' has no option 'x'; its options: none"):
        Bare().resolve({"x": 1})


def test_a_converter_without_public_downloads_asks_for_the_files() -> None:
    class Login(Converter):
        name = "login"
        expected = "data.zip from example.org (after signing in)"

    assert Login().takes_sources
    with pytest.raises(UserError) as e:
        Login().fetch_sources({})
    msg = str(e.value)
    assert "seg prepare login needs SRC" in msg and "data.zip from example.org" in msg
    assert "`seg prepare login PATH...`" in msg


class _Broken(Converter):
    """Reads its downloads, then fails while planning (as a converter does on a wrong archive)."""

    name = "broken"
    help = "Fails in plan."
    expected = "anything.tar"

    def plan(self, srcs: Sources, opts: dict[str, Any]) -> Plan:
        raise DataError("no labels found")


def _tar(path: Path) -> Path:
    with tarfile.open(path, "w") as tf:
        info = tarfile.TarInfo("a/x.txt")
        info.size = 1
        tf.addfile(info, io.BytesIO(b"x"))
    return path


def test_a_failed_plan_removes_the_staging_and_the_out_folder_it_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from segcli.data.prepare import CONVERTERS

    converters()
    monkeypatch.setattr(CONVERTERS, "_items", dict(CONVERTERS._items))
    register_converter(_Broken)
    src = _tar(tmp_path / "src.tar")
    with pytest.raises(DataError, match="no labels found"):
        prepare("broken", [src], tmp_path / "new")
    assert not (tmp_path / "new").exists()
    # An out folder that existed before stays; only the staging under it goes.
    (tmp_path / "kept").mkdir()
    with pytest.raises(DataError, match="no labels found"):
        prepare("broken", [src], tmp_path / "kept")
    assert (tmp_path / "kept").is_dir() and not (tmp_path / "kept" / STAGING).exists()


def test_out_defaults_to_data_slash_the_converter_name(
    tiny_converter: type[Tiny], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    res = prepare("tiny", count=1)
    assert res.root == Path("data") / "tiny"
    assert read_dataset_info(tmp_path / "data" / "tiny").name == "tiny"


def test_lut_converter_maps_raw_ids_and_others_to_ignore(tmp_path: Path) -> None:
    class Lut(LutConverter):
        lut = {7: 0, 8: 1}

    write_png(tmp_path / "src" / "l.png", np.array([[7, 8], [9, 0]], np.uint8))
    srcs = open_sources([tmp_path / "src"], tmp_path / "out", "l.png")
    sample = Sample("train", "l", None, srcs.get("l.png"))
    np.testing.assert_array_equal(Lut().decode_label(srcs, sample, None), [[0, 1], [255, 255]])


def test_decode_checked_ids_names_the_file_with_bad_values(tmp_path: Path) -> None:
    write_png(tmp_path / "src" / "ok.png", np.array([[0, 2], [255, 1]], np.uint8))
    write_png(tmp_path / "src" / "bad.png", np.array([[0, 5]], np.uint8))
    srcs = open_sources([tmp_path / "src"], tmp_path / "out", "the pngs")
    ok = decode_checked_ids(srcs, Sample("train", "ok", None, srcs.get("ok.png")), 3, "toy")
    assert ok.dtype == np.uint8 and ok.tolist() == [[0, 2], [255, 1]]
    with pytest.raises(DataError, match=r"bad\.png"):
        decode_checked_ids(srcs, Sample("train", "bad", None, srcs.get("bad.png")), 3, "toy")


def test_by_name_keys_find_hits_by_their_first_group(tmp_path: Path) -> None:
    for stem in ("a_1", "b_2"):
        (tmp_path / "src").mkdir(exist_ok=True)
        (tmp_path / "src" / f"{stem}.txt").write_text(stem)
    srcs = open_sources([tmp_path / "src"], tmp_path / "out", "txt files")
    hits = srcs.find(r"(\w)_(\d)\.txt$")
    assert {k: m.name for k, m in by_name(hits).items()} == {"a": "a_1.txt", "b": "b_2.txt"}
    assert set(by_name(hits, key=lambda m: int(m.group(2)))) == {1, 2}
