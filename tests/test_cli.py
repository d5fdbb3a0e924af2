"""The CLI end to end on a tiny dataset: prepare, train, eval, infer, presets; errors and --json."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open

from segcli.cli.app import run
from segcli.data.io import read_mask


def run_json(capsys: pytest.CaptureFixture, args: list[str]) -> dict:
    capsys.readouterr()
    assert run([*args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_help_and_version(capsys: pytest.CaptureFixture) -> None:
    assert run(["--help"]) == 0
    out = capsys.readouterr().out
    for cmd in ("prepare", "train", "eval", "infer", "presets"):
        assert cmd in out
    assert run(["--version"]) == 0
    assert capsys.readouterr().out.startswith("segcli ")


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


@pytest.mark.slow
def test_train_eval_infer(
    tmp_path: Path, tiny_overrides: list[str], shapes_root: Path, capsys: pytest.CaptureFixture
) -> None:
    res = run_json(capsys, ["train", "quickstart", *tiny_overrides])
    run_dir = Path(res["run_dir"])
    assert run_dir.parent.name == "quickstart" and run_dir.name == "1"
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2] and all(0 <= float(r["mIoU"]) <= 1 for r in rows)
    for f in ("preset.toml", "weights/last.safetensors", "weights/best.safetensors", "state.pt", "log.txt"):
        assert (run_dir / f).is_file(), f
    with safe_open(str(run_dir / "weights" / "best.safetensors"), "pt") as f:
        meta = f.metadata()
    assert json.loads(meta["classes"])[0] == "background" and "[model]" in meta["preset"]
    assert json.loads(meta["palette"])[1] == [230, 25, 75]

    # a second run never overwrites the first
    res2 = run_json(capsys, ["train", "quickstart", *tiny_overrides, "train.epochs=1"])
    assert Path(res2["run_dir"]).name == "2"

    ev = run_json(capsys, ["eval", str(run_dir), "--data", str(shapes_root)])
    assert ev["images"] == 8 and 0 <= ev["mIoU"] <= 1 and len(ev["per_class"]) == 5
    assert ev["per_class"][0]["class"] == "background"
    assert Path(ev["report"]).is_file() and Path(ev["report"]).parent == run_dir / "eval"
    assert json.loads(Path(ev["report"]).read_text())["mIoU"] == ev["mIoU"]
    # the table form prints the conventions
    assert run(["eval", str(run_dir / "weights" / "last.safetensors"), "--data", str(shapes_root)]) == 0
    assert "ignore_index" in capsys.readouterr().out

    out_dir = tmp_path / "pred"
    inf = run_json(capsys, ["infer", str(run_dir), str(shapes_root / "images" / "val"), "--out", str(out_dir)])
    assert inf["images"] == 8
    mask = read_mask(out_dir / "masks" / "val_00000.png")
    assert mask.shape == (48, 48) and mask.max() < 5
    assert (out_dir / "overlays" / "val_00000.jpg").is_file()
    # refusing to overwrite is a user error
    capsys.readouterr()
    assert (
        run(["infer", str(run_dir), str(shapes_root / "images" / "val" / "val_00001.jpg"), "--out", str(out_dir)]) == 2
    )
    err = capsys.readouterr().err
    assert "--overwrite" in err and "Traceback" not in err
    # glob input
    assert (
        run(
            [
                "infer",
                str(run_dir),
                str(shapes_root / "images" / "val" / "val_0000[01].jpg"),
                "--out",
                str(tmp_path / "p2"),
            ]
        )
        == 0
    )
    assert sorted(p.name for p in (tmp_path / "p2" / "masks").iterdir()) == ["val_00000.png", "val_00001.png"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["train", "quickstart", "train.epoch=3"], 'did you mean "train.epochs"'),
        (["train", "quickstart", "data.root=/definitely/missing"], "/definitely/missing: dataset folder not found"),
        (["train", "quickstar"], 'did you mean "quickstart"'),
        (["eval", "/no/such/weights.safetensors"], "no such weights file or run directory"),
        (["infer", "/no/such/run", "x.jpg", "--out", "o"], "no such weights file or run directory"),
        (["presets", "show", "quickstart", "optim.lr=fast"], "[optim] lr = 'fast' has the wrong type; expected number"),
    ],
)
def test_user_errors_are_one_red_line(args: list[str], needle: str, capsys: pytest.CaptureFixture) -> None:
    assert run(args) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_verbose_shows_traceback(capsys: pytest.CaptureFixture) -> None:
    assert run(["-v", "train", "quickstar"]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_corrupt_weights_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    assert run(["eval", str(bad)]) == 2
    assert "not a readable .safetensors file" in capsys.readouterr().err


def test_presets_list_and_show_json(capsys: pytest.CaptureFixture) -> None:
    listed = run_json(capsys, ["presets", "list"])
    assert "quickstart" in [p["name"] for p in listed["presets"]]
    shown = run_json(capsys, ["presets", "show", "quickstart", "train.epochs=3"])
    assert shown["train"]["epochs"] == 3 and shown["model"]["backbone"] == "resnet18"
    assert run(["presets", "show", "quickstart"]) == 0
    assert "[train]" in capsys.readouterr().out


def test_infer_rejects_missing_input(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from segcli.errors import DataError
    from segcli.infer.predictor import expand_inputs

    with pytest.raises(DataError, match="no such file, folder or pattern"):
        expand_inputs([str(tmp_path / "nothing.jpg")])
    with pytest.raises(DataError, match="pattern matches no images"):
        expand_inputs([str(tmp_path / "*.jpg")])
    img = tmp_path / "a.png"
    import cv2

    cv2.imwrite(str(img), np.zeros((4, 4, 3), np.uint8))
    assert expand_inputs([str(img), str(tmp_path)]) == [img]
