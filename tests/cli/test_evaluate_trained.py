"""`seg eval` of a trained run on the command line: protocol options, --worst, --workers, a label out of range,
an ROI dataset counted inside its region only."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from infer_helpers import _json

from segcli.cli.app import run
from segcli.infer.evaluator import EvalOptions, evaluate


def test_cli_protocol_options(trained: Path, shapes_root: Path, tmp_path: Path, capsys) -> None:
    ev = _json(
        capsys,
        ["eval", str(trained), "--data", str(shapes_root), "--out", str(tmp_path / "t.json"), "--tta"]
        + ["--slide", "--tile", "32,32", "--stride", "16,16", "--size", "40,40"],
    )
    assert ev["protocol"]["tta"]["scales"] == [0.5, 0.75, 1.0, 1.25, 1.5] and ev["protocol"]["tta"]["flip"]
    assert ev["protocol"]["mode"] == "slide tile=[32, 32] stride=[16, 16]"
    assert ev["protocol"]["resize"] == {"size": [40, 40]}
    assert 0 <= ev["mIoU"] <= 1
    one = _json(
        capsys,
        ["eval", str(trained), "--data", str(shapes_root), "--out", str(tmp_path / "u.json"), "--tta-scales", "1"],
    )
    assert one["protocol"]["tta"] == {"scales": [1.0], "flip": True}  # eval.tta_flip of the preset
    capsys.readouterr()
    assert run(["eval", str(trained), "--data", str(shapes_root), "--tile", "0,4", "--slide"]) == 2
    assert "--tile 0,4" in capsys.readouterr().err
    assert run(["eval", str(trained), "--data", str(shapes_root), "--tta-scales", "1,-2"]) == 2
    assert "--tta-scales 1,-2" in capsys.readouterr().err


def test_worst_lists_the_lowest_miou_images(trained: Path, shapes_root: Path, tmp_path: Path, capsys) -> None:
    ev = _json(capsys, ["eval", str(trained), "--data", str(shapes_root), "--out", str(tmp_path), "--worst", "3"])
    worst = ev["worst"]
    assert len(worst) == 3 and [w["mIoU"] for w in worst] == sorted(w["mIoU"] for w in worst)
    assert all(Path(w["overlay"]).is_file() and Path(w["overlay"]).parent == tmp_path / "worst" for w in worst)
    assert Path(worst[0]["image"]).parent == shapes_root / "images" / "val"


def test_label_out_of_range_is_an_error_naming_file_and_value(
    trained: Path, shapes_root: Path, tmp_path: Path, capsys
) -> None:
    root = tmp_path / "data"
    shutil.copytree(shapes_root, root)
    bad = sorted((root / "masks" / "val").iterdir())[3]
    mask = cv2.imread(str(bad), cv2.IMREAD_UNCHANGED)
    mask[0, 0] = 7
    cv2.imwrite(str(bad), mask.astype(np.uint8))
    capsys.readouterr()
    assert run(["eval", str(trained), "--data", str(root), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert bad.name in err and "7" in err and "Traceback" not in err


def test_workers_default_to_the_cores_as_training_does(
    trained: Path, shapes_root: Path, tmp_path: Path, capsys
) -> None:
    from segcli.data.datasets import resolve_workers

    auto = _json(capsys, ["eval", str(trained), "--data", str(shapes_root), "--out", str(tmp_path / "a.json")])
    assert auto["workers"] == resolve_workers("auto")
    none = _json(
        capsys, ["eval", str(trained), "--data", str(shapes_root), "--out", str(tmp_path / "b.json"), "--workers", "0"]
    )
    assert none["workers"] == 0 and none["confusion_matrix"] == auto["confusion_matrix"]
    capsys.readouterr()
    assert run(["eval", str(trained), "--data", str(shapes_root), "--workers", "many"]) == 2
    assert "--workers many" in capsys.readouterr().err


def test_eval_on_a_roi_dataset_counts_only_the_region(
    trained: Path, shapes_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """`seg prepare folder --roi` then `seg eval`: the confusion matrix is the hand-made one over the region."""
    from segcli.data.format import read_dataset_info
    from segcli.infer.predictor import OutputOptions, predict

    classes = ",".join(read_dataset_info(shapes_root).classes)
    images, masks = shapes_root / "images" / "val", shapes_root / "masks" / "val"
    rng = np.random.default_rng(0)
    regions = {}
    for m in sorted(masks.glob("*.png")):
        h, w = cv2.imread(str(m), cv2.IMREAD_UNCHANGED).shape[:2]
        region = np.zeros((h, w), np.uint8)
        y, x = rng.integers(0, h // 2), rng.integers(0, w // 2)
        region[y : y + h // 2, x : x + w // 2] = 1  # a box: values 1 (not only 255) mark the inside
        (tmp_path / "roi").mkdir(exist_ok=True)
        cv2.imwrite(str(tmp_path / "roi" / m.name), region)
        regions[m.stem] = region.astype(bool)
    root = tmp_path / "roi_ds"
    argv = ["prepare", "folder", str(images), str(masks), "--classes", classes, "--val-ratio", "0", "-o", str(root)]
    assert run([*argv, "--roi", str(tmp_path / "roi"), "--name", "shapes"]) == 0
    report = str(tmp_path / "e.json")
    ev = _json(capsys, ["eval", str(trained), "--data", str(root), "--split", "train", "--out", report])

    predict(trained, [str(images)], tmp_path / "pred", output=OutputOptions(save="ids"))
    n = len(classes.split(","))
    hand = np.zeros((n, n), np.int64)
    for stem, region in regions.items():
        gt = cv2.imread(str(masks / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
        pred = cv2.imread(str(tmp_path / "pred" / "ids" / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
        keep = region & (gt != 255)
        np.add.at(hand, (gt[keep].astype(int), pred[keep].astype(int)), 1)
    assert ev["confusion_matrix"]["matrix"] == hand.tolist()
    full = evaluate(trained, shapes_root, options=EvalOptions(out=tmp_path / "full.json")).metrics
    assert 0 < ev["pixels"] == int(hand.sum()) < full["pixels"]
