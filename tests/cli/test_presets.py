"""`seg presets list` (each bundled preset with its first comment and [meta]) and `seg presets show` (resolved,
as TOML or JSON)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import run_json
from preset_helpers import write

from segcli.cli.app import run
from segcli.config.load import list_presets, load_preset
from segcli.errors import PresetError


def test_presets_show_and_train_print_the_load_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from segcli.cli.app import run

    p = write(tmp_path / "bad.toml", f'[model]\nname = "fpnn"\n[train]\nout_dir = "{tmp_path / "runs"}"\n')
    with pytest.raises(PresetError) as info:
        load_preset(p)
    for argv in (["presets", "show", str(p)], ["train", str(p)]):
        assert run(argv) == 2
        assert " ".join(str(info.value).split()) in " ".join(capsys.readouterr().err.split())
    assert not (tmp_path / "runs").exists()  # it failed before any run directory existed


def test_seg_presets_list_shows_each_recipes_source_and_reported_figure(capsys: pytest.CaptureFixture) -> None:
    from segcli.cli.app import run

    assert run(["presets", "list", "--json"]) == 0
    listed = {p["name"]: p for p in json.loads(capsys.readouterr().out)["presets"]}
    assert set(listed) == {p.stem for p in list_presets()}
    coin = listed["bisenet_cityscapes"]
    assert coin["reported_miou"] == 75.44 and "single scale" in coin["protocol"] and "CoinCheung" in coin["source"]
    assert listed["pspnet_r50_ade20k"]["reported_miou"] == 42.48
    assert run(["presets", "list"]) == 0
    out = capsys.readouterr().out
    for value in ("75.44", "74.37", "42.48", "76.81", "37.41"):
        assert value in out


def test_cli_rejects_pretrained_on_an_own_backbone_model_in_one_line(capsys: pytest.CaptureFixture) -> None:
    from segcli.cli.app import run

    assert run(["presets", "show", "ddrnet23slim_cityscapes", "model.pretrained=true"]) == 2
    err = capsys.readouterr().err
    assert "model.pretrained = true: model 'ddrnet23_slim' has its own backbone" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_presets_list_and_show_json(capsys: pytest.CaptureFixture) -> None:
    listed = run_json(capsys, ["presets", "list"])
    assert "quickstart" in [p["name"] for p in listed["presets"]]
    shown = run_json(capsys, ["presets", "show", "quickstart", "train.epochs=3"])
    assert shown["train"]["epochs"] == 3 and shown["model"]["backbone"] == "resnet18"
    assert run(["presets", "show", "quickstart"]) == 0
    assert "[train]" in capsys.readouterr().out


def test_list_has_one_entry_per_bundled_preset(capsys: pytest.CaptureFixture) -> None:
    from segcli.config.load import list_presets

    listed = run_json(capsys, ["presets", "list"])["presets"]
    assert [p["name"] for p in listed] == [p.stem for p in list_presets()]
    for p in listed:
        assert {"path", "about", "source", "reported_miou", "protocol", "notes"} <= set(p), p["name"]


def test_list_shows_the_first_comment_and_meta(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    mine = tmp_path / "mine.toml"
    mine.write_text(
        '[meta]\nsource = "a paper"\nreported_miou = 71.25\nprotocol = "val, single scale"\n'
        "# Mine: a recipe of my own\n# second comment\n",
        encoding="utf-8",
    )
    plain = tmp_path / "plain.toml"
    plain.write_text("[train]\nepochs = 2\n", encoding="utf-8")
    monkeypatch.setattr("segcli.config.load.list_presets", lambda: [mine, plain])
    entries = run_json(capsys, ["presets", "list"])["presets"]
    assert entries[0] == {
        "name": "mine",
        "path": str(mine),
        "about": "Mine: a recipe of my own",
        "source": "a paper",
        "reported_miou": 71.25,
        "protocol": "val, single scale",
        "notes": "",
        "model": "fpn",  # what it trains: the schema's defaults where the preset sets none
        "backbone": "resnet18",
        "pretrained": False,
        "crop": [512, 512],
    }
    assert entries[1]["about"] == "" and entries[1]["reported_miou"] == 0.0
    assert run(["presets", "list"]) == 0
    rows = {line.split("│")[1].strip(): line for line in capsys.readouterr().out.splitlines() if line.count("│") > 2}
    assert "71.25" in rows["mine"] and "val, single scale" in rows["mine"] and "a paper" in rows["mine"]
    assert [c.strip() for c in rows["plain"].split("│")[2:4]] == ["-", "-"]  # nothing reported


def test_show_prints_toml_that_loads_back_the_same(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from segcli.config.load import load_preset, preset_to_dict

    assert run(["presets", "show", "quickstart", "optim.lr=0.02"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("#") and "resolved from" in text.splitlines()[0]
    saved = tmp_path / "resolved.toml"
    saved.write_text(text, encoding="utf-8")
    again = load_preset(saved, [])
    assert preset_to_dict(again.preset) == preset_to_dict(load_preset("quickstart", ["optim.lr=0.02"]).preset)


def test_showing_a_preset_does_not_need_its_datasets_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """Reported: `seg presets show unet_r34_facesynthetics` failed because the class-weights file it names is made
    from the dataset (seg class-weights) and did not exist yet. Showing reads the recipe; training checks the files."""
    monkeypatch.chdir(tmp_path)  # the preset's data/facesynthetics/class_weights_inv.toml is relative: absent here
    name = "unet_r34_facesynthetics"
    with pytest.raises(PresetError, match="class_weights_inv.toml': file not found; write it with `seg class-weights"):
        load_preset(name)
    assert (
        load_preset(name, check_files=False).preset.loss.class_weights == "data/facesynthetics/class_weights_inv.toml"
    )
    assert run(["presets", "show", name]) == 0
    assert 'class_weights = "data/facesynthetics/class_weights_inv.toml"' in capsys.readouterr().out
    assert run(["presets", "list", "--json"]) == 0 and f'"name": "{name}"' in capsys.readouterr().out
    assert run(["train", name, "train.epochs=1"]) == 2  # training starts by checking them
    assert "class_weights_inv.toml': file not found" in capsys.readouterr().err


def test_presets_list_shows_model_backbone_crop_and_source(capsys: pytest.CaptureFixture) -> None:
    assert run(["presets", "list", "--json"]) == 0
    listed = {p["name"]: p for p in json.loads(capsys.readouterr().out)["presets"]}
    ft = listed["finetune"]
    assert (ft["model"], ft["backbone"], ft["pretrained"], ft["crop"]) == ("fpn", "resnet34", True, [320, 320])
    assert "segmentation_models.pytorch" in ft["source"] and ft["reported_miou"] == 0.0
    assert listed["quickstart"]["pretrained"] is False and listed["bisenetv2_cityscapes"]["backbone"] == ""
    assert run(["presets", "list"]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if "name" in line and "model" in line)
    assert [c for c in ("name", "mIoU", "protocol", "model", "backbone", "crop", "source") if c not in header] == []
    assert "resnet34*" in out and "320x320" in out and "(its own)" in out and "* pretrained backbone" in out


def test_show_reads_bare_keys_with_a_note(capsys: pytest.CaptureFixture) -> None:
    assert run(["presets", "show", "quickstart", "epochs=3", "imgsz=96", "--json"]) == 0
    captured = capsys.readouterr()
    shown = json.loads(captured.out)
    assert shown["train"]["epochs"] == 3 and shown["augment"]["crop_size"] == [96, 96]
    assert "note: epochs=3 read as train.epochs=3" in captured.err
