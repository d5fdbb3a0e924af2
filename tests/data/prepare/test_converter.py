"""The converter registry, the engine entry point and `seg prepare` commands generated from it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer

from segcli.cli.app import app, run
from segcli.data.format import make_info, read_dataset_info
from segcli.data.io import read_mask
from segcli.data.prepare import CONVERTERS, Converter, Option, Plan, PrepareResult, Sample, converters, prepare
from segcli.data.prepare.converter import register_converter
from segcli.errors import UserError

ALL = {
    "ade20k",
    "camvid",
    "celebamask-hq",
    "cityscapes",
    "coco-stuff",
    "facesynthetics",
    "folder",
    "lip",
    "loveda",
    "mapillary",
    "shapes",
    "voc",
    "voc-aug",
}


class Tiny(Converter):
    """Generated 4x4 samples filled with one class id (a stand-in for a plugin converter)."""

    name = "tiny"
    help = "A tiny test converter."
    image_ext = ".png"
    options = (
        Option("count", int, 2, "Samples per split."),
        Option("fill", int, 1, "Class id every pixel gets."),
        Option("shout", bool, False, "A flag that changes nothing."),
    )

    def plan(self, srcs: Any, opts: dict[str, Any]) -> Plan:
        samples = [Sample(s, f"{s}{i}", None, extra=i) for s in ("train", "val") for i in range(opts["count"])]
        return Plan(make_info("tiny", ["a", "b", "c"]), samples, opts["fill"], {"fill": opts["fill"]})

    def decode_label(self, srcs: Any, sample: Sample, params: int) -> np.ndarray:
        mask = np.full((4, 4), params, np.uint8)
        mask[0, 0] = 255  # one ignore pixel: never counted
        return mask

    def decode_image(self, srcs: Any, sample: Sample, params: int) -> np.ndarray:
        return np.full((4, 4, 3), 9 * sample.extra, np.uint8)


@pytest.fixture
def tiny(monkeypatch: pytest.MonkeyPatch) -> type[Tiny]:
    """Register Tiny for one test; the registry's table is restored afterwards."""
    converters()  # load the built-in converters first
    monkeypatch.setattr(CONVERTERS, "_items", dict(CONVERTERS._items))
    register_converter(Tiny)
    return Tiny


def test_registry_lists_every_converter() -> None:
    reg = converters()
    assert set(reg.names()) == ALL
    for name in reg.names():
        conv = reg.get(name)
        assert conv.name == name and conv.help
        assert conv.takes_sources == (name != "shapes")


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
    assert conv.resolve({"train": 3}) == {"train": 3, "val": 100, "size": 128, "seed": 0}
    with pytest.raises(UserError, match="converter 'shapes' has no option 'trian'; its options: train, val"):
        conv.resolve({"trian": 3})


def test_engine_runs_a_registered_converter_and_counts_pixels(tiny: type[Tiny], tmp_path: Path) -> None:
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


def test_cli_command_comes_from_the_registry(tiny: type[Tiny], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert run(["prepare", "--help"]) == 0
    listed = capsys.readouterr().out
    for name in [*ALL, "tiny"]:
        assert name in listed
    assert run(["prepare", "tiny", "--help"]) == 0
    help_text = capsys.readouterr().out
    assert "Class id every pixel gets." in help_text and "A flag that changes nothing." in help_text
    flag_lines = [ln for ln in help_text.splitlines() if "--shout" in ln or "--force" in ln or "--json" in ln]
    assert len(flag_lines) == 3 and not any("<bool>" in ln for ln in flag_lines)

    assert run(["prepare", "tiny", "--out", str(tmp_path / "t"), "--fill", "1", "--shout", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["name"] == "tiny" and summary["images"] == {"train": 2, "val": 2}
    assert summary["pixel_share"] == {"a": 0.0, "b": 1.0, "c": 0.0}
    assert summary["written"] == 4 and summary["skipped"] == 0


def test_cli_passes_parsed_arguments_to_the_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import segcli.data.prepare as engine

    seen: dict[str, Any] = {}

    def fake_prepare(converter: str, sources: list[Path], out: Path, **kwargs: Any) -> PrepareResult:
        seen.update(converter=converter, sources=sources, out=out, **kwargs)
        return PrepareResult(out, {"train": 1}, 1, 0, 0, "cityscapes", ("road",), (5,))

    monkeypatch.setattr(engine, "prepare", fake_prepare)
    argv = ["prepare", "cityscapes", "a.zip", "b", "-o", str(tmp_path / "o"), "--coarse", "-j", "3", "--json"]
    assert run(argv) == 0
    progress, fetch_progress = seen.pop("progress"), seen.pop("fetch_progress")
    assert callable(progress) and callable(fetch_progress)
    assert seen == {
        "converter": "cityscapes",
        "sources": [Path("a.zip"), Path("b")],
        "out": tmp_path / "o",
        "coarse": True,
        "force": False,
        "link": False,
        "workers": 3,
    }
    assert json.loads(capsys.readouterr().out)["pixel_share"] == {"road": 1.0}

    seen.clear()
    assert run(["prepare", "folder", "d", "-o", "o", "--classes", "x,y", "--images", "img", "--val-ratio", "0.5"]) == 0
    assert seen["images_dir"] == "img" and seen["classes"] == "x,y" and seen["val_ratio"] == 0.5
    assert seen["binary"] is False and seen["colors"] is None and seen["name"] == "folder"


@pytest.mark.parametrize(
    "argv",
    [
        ["prepare", "nope"],
        ["prepare", "cityscapes", "x.zip", "--out"],  # --out without its value (it defaults to data/NAME)
        ["prepare", "shapes", "--out", "o", "--train", "many"],
        ["prepare", "cityscapes", "x.zip", "--out", "o", "--workers", "0"],
    ],
)
def test_usage_errors_exit_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as e:
        typer.main.get_command(app).main(argv, prog_name="seg", standalone_mode=True)
    assert e.value.code == 2
