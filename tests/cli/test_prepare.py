"""`seg prepare NAME`: one sub-command per registered converter, its flags and help built from the converter."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer
from cli_helpers import run_json
from prepare_helpers import Tiny

from segcli.cli.app import app, run
from segcli.cli.prepare import download_bar, show_summary
from segcli.data.prepare import PrepareResult, converters


def test_cli_command_comes_from_the_registry(
    tiny_converter: type[Tiny], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert run(["prepare", "--help"]) == 0
    listed = capsys.readouterr().out
    assert "tiny" in converters().names()
    for name in converters().names():
        assert name in listed
    assert run(["prepare", "tiny", "--help"]) == 0
    help_text = capsys.readouterr().out
    assert "Class id every pixel gets." in help_text and "A flag that changes nothing." in help_text
    flag_lines = [ln for ln in help_text.splitlines() if "--shout" in ln or "--overwrite" in ln or "--json" in ln]
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
        "write": engine.WriteOptions(force=False, link=False, workers=3),
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
        ["prepare", "cityscapes", "x.zip", "--out", "o", "--workers", "-1"],  # 0: in this process
    ],
)
def test_usage_errors_exit_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as e:
        typer.main.get_command(app).main(argv, prog_name="seg", standalone_mode=True)
    assert e.value.code == 2


def test_prepare_shapes_json(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = run_json(
        capsys, ["prepare", "shapes", "--out", str(tmp_path / "s"), "--train", "4", "--val", "2", "--size", "32"]
    )
    assert out["images"] == {"train": 4, "val": 2} and out["skipped"] is False
    assert abs(sum(out["pixel_share"].values()) - 1) < 1e-6
    again = run_json(
        capsys, ["prepare", "shapes", "--out", str(tmp_path / "s"), "--train", "4", "--val", "2", "--size", "32"]
    )
    assert again["skipped"] is True


def test_download_bar_announces_each_file_once(capsys: pytest.CaptureFixture) -> None:
    from segcli.data.prepare.fetch import human_size

    with download_bar() as update:
        update("a.zip", 0, 2048)
        update("a.zip", 1024, 2048)  # progress on a file already announced: no new line
        update("b.tar", 512, 4096)  # a partial file: resumed
        update("c.txt", 0, None)
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        f"downloading a.zip ({human_size(2048)})",
        f"downloading b.tar ({human_size(4096)}, resuming)",
        "downloading c.txt (size unknown)",
    ]


def test_show_summary_as_tables_or_json(capsys: pytest.CaptureFixture) -> None:
    summary = {
        "name": "toy",
        "root": "data/toy",
        "images": {"train": 4, "val": 2},
        "pixel_share": {"a": 0.75, "b": 0.25},
    }
    show_summary(summary, as_json=True)
    assert json.loads(capsys.readouterr().out) == summary
    show_summary(summary, as_json=False)
    out = capsys.readouterr().out
    assert "toy: images per split" in out and "pixel share per class" in out
    assert "0.7500" in out and "0.2500" in out and out.rstrip().endswith("dataset written to data/toy")


def test_overwrite_redoes_and_force_is_its_hidden_old_name(
    tiny_converter: type[Tiny], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    argv = ["prepare", "tiny", "--out", str(tmp_path / "t"), "--json"]
    assert run(argv) == 0
    assert json.loads(capsys.readouterr().out)["written"] == 4
    assert run(argv[:-1]) == 0
    assert "--overwrite redoes it" in capsys.readouterr().err
    for flag in ("--overwrite", "--force"):
        assert run([*argv, flag]) == 0
        assert json.loads(capsys.readouterr().out)["written"] == 4
    assert run(["prepare", "tiny", "--help"]) == 0
    assert "--force" not in capsys.readouterr().out
