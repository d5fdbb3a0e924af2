"""evaluate(): the report (confusion matrix and its PNG, the protocol), sliding windows and TTA at scale 1
equal to the plain pass, the choice of weights in a run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from cli_helpers import user_error
from infer_helpers import _json

from segcli.errors import CheckpointError, UserError
from segcli.infer.evaluator import EvalOptions, evaluate
from segcli.infer.protocol import ProtocolChoices


def test_report_has_confusion_matrix_and_protocol(trained: Path, shapes_root: Path, tmp_path: Path) -> None:
    res = evaluate(trained, shapes_root, options=EvalOptions(out=tmp_path / "r.json"))
    report = json.loads(res.report.read_text())
    cm = report["confusion_matrix"]
    assert cm["classes"][0] == "background" and len(cm["matrix"]) == 5 and all(len(r) == 5 for r in cm["matrix"])
    assert sum(map(sum, cm["matrix"])) == report["pixels"]
    assert report["protocol"]["mode"] == "whole" and report["protocol"]["tta"] is None


def test_boundary_f_is_reported_next_to_the_miou(weights: Path, shapes_root: Path, tmp_path: Path) -> None:
    """The report's boundary F-score is segcli.metrics.BoundaryF over the split's predicted masks, at the tolerance
    asked for."""
    import torch

    from segcli.data.datasets import EvalDataset
    from segcli.data.format import DatasetIndex
    from segcli.infer.predict_core import class_ids, open_for_prediction, predict_images
    from segcli.metrics import BoundaryF

    options = EvalOptions(out=tmp_path / "r.json", boundary_tolerance=1, workers=0)
    res = evaluate(weights, shapes_root, device="cpu", options=options)
    cpu = torch.device("cpu")
    model, meta, proto = open_for_prediction(weights, cpu, ProtocolChoices())
    ds = EvalDataset(DatasetIndex.scan(shapes_root, ["val"]), "val", proto.size, proto.keep_ratio)
    expected = BoundaryF(meta.num_classes, ds.info.ignore_index, tolerance=1)
    for i in range(len(ds)):
        image, mask = ds[i]
        expected.update(class_ids(predict_images(model, image[None], [tuple(mask.shape)], proto, cpu)[0]), mask)
    assert res.metrics["boundary_f"] == pytest.approx(expected.compute()["boundary_f"], nan_ok=True)
    assert res.metrics["boundary"]["tolerance"] == 1 and len(res.metrics["boundary"]["per_class"]) == 5
    with pytest.raises(UserError, match="boundary_tolerance"):
        evaluate(weights, shapes_root, options=EvalOptions(boundary_tolerance=-1))


def test_confusion_matrix_png_next_to_the_report(trained: Path, shapes_root: Path, tmp_path: Path) -> None:
    from segcli.viz import draw_cv, row_normalise

    res = evaluate(trained, shapes_root, options=EvalOptions(out=tmp_path))
    png = Path(res.metrics["confusion_png"])
    assert png == tmp_path / "val_confusion.png" and res.report == tmp_path / "val.json"
    drawn = cv2.imread(str(png))[..., ::-1]
    matrix = np.array(res.metrics["confusion_matrix"]["matrix"])
    want = draw_cv.confusion(row_normalise(matrix), res.metrics["confusion_matrix"]["classes"])
    assert np.array_equal(drawn, want)  # the row-normalised matrix of this report, lossless
    again = evaluate(trained, shapes_root, options=EvalOptions(out=tmp_path))
    assert again.report == tmp_path / "val-2.json" and again.metrics["confusion_png"] == str(
        tmp_path / "val-2_confusion.png"
    )
    assert again.metrics["reliability_png"] == str(tmp_path / "val-2_reliability.png")
    in_run = evaluate(trained, shapes_root)  # default: inside the run's eval/ folder
    assert Path(in_run.metrics["confusion_png"]).parent == trained / "eval"


def test_reliability_diagram_next_to_the_report(trained: Path, shapes_root: Path, tmp_path: Path) -> None:
    from segcli.infer.evaluator import reliability_title
    from segcli.viz import draw_cv

    res = evaluate(trained, shapes_root, options=EvalOptions(out=tmp_path))
    png = Path(res.metrics["reliability_png"])
    assert png == tmp_path / "val_reliability.png"
    c = json.loads(res.report.read_text())["calibration"]
    assert len(c["reliability"]) == 15 and sum(r["pixels"] for r in c["reliability"]) == c["pixels"]
    drawn = cv2.imread(str(png))[..., ::-1]
    assert np.array_equal(drawn, draw_cv.reliability(c["reliability"], reliability_title(c)))  # this report's bins


def test_slide_with_big_tile_and_tta_scale_one_equal_plain(trained: Path, shapes_root: Path, tmp_path: Path) -> None:
    plain = evaluate(trained, shapes_root, options=EvalOptions(out=tmp_path / "a.json")).metrics
    slid = evaluate(
        trained,
        shapes_root,
        protocol=ProtocolChoices(slide=True, tile=(64, 64)),
        options=EvalOptions(out=tmp_path / "b.json"),
    ).metrics
    assert slid["confusion_matrix"] == plain["confusion_matrix"]
    assert slid["protocol"]["mode"].startswith("slide")


def test_weights_choice(trained: Path, shapes_root: Path, tmp_path: Path, capsys) -> None:
    for which in ("best", "last", "ema"):
        ev = _json(capsys, ["eval", str(trained), "--data", str(shapes_root), "--weights", which])
        assert ev["weights"] == str(trained / "weights" / f"{which}.safetensors")
    bare = tmp_path / "run"
    shutil.copytree(trained, bare)
    (bare / "weights" / "ema.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"ema.safetensors: no ema weights in this run .*train.ema"):
        evaluate(bare, shapes_root, options=EvalOptions(weights="ema"))
    lone = tmp_path / "w.safetensors"
    shutil.copy(trained / "weights" / "last.safetensors", lone)
    with pytest.raises(UserError, match="is not a run directory"):
        evaluate(lone, shapes_root, options=EvalOptions(weights="best"))


@pytest.mark.filterwarnings("ignore")
def test_eval_on_a_dataset_with_other_classes(weights: Path, data: Path, capfd: pytest.CaptureFixture) -> None:
    toml = data / "dataset.toml"
    toml.write_text(toml.read_text().replace('"circle"', '"disc"'))
    user_error(capfd, ["eval", weights, "--data", data], str(data), "classes", "differ")


def test_a_trained_run_stores_its_data_and_is_scored_on_it(trained: Path, shapes_root: Path, tmp_path: Path) -> None:
    from segcli.core.checkpoint import load_weights

    _, meta = load_weights(trained / "weights" / "best.safetensors")
    assert meta.data is not None and meta.data.root == str(shapes_root.resolve())
    assert meta.data.splits == {"train": 16, "val": 8} and meta.data.classes == meta.classes
    res = evaluate(trained, options=EvalOptions(out=tmp_path / "r.json"))  # no data_root: the stored data
    assert res.data_root == shapes_root.resolve() and res.metrics["images"] == 8
