"""Metrics from one confusion matrix, checked against torchmetrics."""

from __future__ import annotations

import math

import pytest
import torch
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassF1Score,
    MulticlassJaccardIndex,
    MulticlassPrecision,
    MulticlassRecall,
)

from segcli.metrics import ConfusionMatrix, metrics_from_confusion

C, IGNORE = 5, 255


def random_batch(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, C, (3, 17, 23), generator=g)
    target[torch.rand(target.shape, generator=g) < 0.15] = IGNORE
    pred = torch.where(
        torch.rand(target.shape, generator=g) < 0.6,
        target.clamp(max=C - 1),
        torch.randint(0, C, target.shape, generator=g),
    )
    return pred, target


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_against_torchmetrics(seed: int) -> None:
    cm = ConfusionMatrix(C, IGNORE)
    tm = {
        "iou": MulticlassJaccardIndex(C, average="none", ignore_index=IGNORE),
        "miou": MulticlassJaccardIndex(C, average="macro", ignore_index=IGNORE),
        "pixel_accuracy": MulticlassAccuracy(C, average="micro", ignore_index=IGNORE),
        "mean_accuracy": MulticlassAccuracy(C, average="macro", ignore_index=IGNORE),
        "precision": MulticlassPrecision(C, average="none", ignore_index=IGNORE),
        "recall": MulticlassRecall(C, average="none", ignore_index=IGNORE),
        "dice": MulticlassF1Score(C, average="none", ignore_index=IGNORE),
    }
    for k in range(2):  # two batches: the matrix pools them
        pred, target = random_batch(seed * 10 + k)
        cm.update(pred, target)
        for m in tm.values():
            m.update(pred, target)
    ours = cm.compute()
    ref = {k: m.compute() for k, m in tm.items()}
    per = ours["per_class"]
    assert ours["pixel_accuracy"] == pytest.approx(float(ref["pixel_accuracy"]), abs=1e-6)
    assert ours["mean_accuracy"] == pytest.approx(float(ref["mean_accuracy"]), abs=1e-6)
    assert ours["mIoU"] == pytest.approx(float(ref["miou"]), abs=1e-6)
    for c in range(C):
        assert per[c]["iou"] == pytest.approx(float(ref["iou"][c]), abs=1e-6)
        assert per[c]["precision"] == pytest.approx(float(ref["precision"][c]), abs=1e-6)
        assert per[c]["recall"] == pytest.approx(float(ref["recall"][c]), abs=1e-6)
        assert per[c]["dice"] == pytest.approx(float(ref["dice"][c]), abs=1e-6)
    assert ours["mean_dice"] == pytest.approx(sum(p["dice"] for p in per) / C, abs=1e-9)


def test_ignored_pixels_count_nowhere() -> None:
    pred, target = random_batch(5)
    a = ConfusionMatrix(C, IGNORE)
    a.update(pred, target)
    pred2 = pred.clone()
    pred2[target == IGNORE] = (pred2[target == IGNORE] + 1) % C  # change predictions on ignored pixels only
    b = ConfusionMatrix(C, IGNORE)
    b.update(pred2, target)
    assert torch.equal(a.mat, b.mat)
    assert int(a.mat.sum()) == int((target != IGNORE).sum())


def test_absent_class_conventions_by_hand() -> None:
    # gt/pred only use classes 0 and 1; class 2 is absent from both.
    mat = torch.tensor([[3, 1, 0], [1, 5, 0], [0, 0, 0]])
    nan = metrics_from_confusion(mat, "nan")
    iou0, iou1 = 3 / 5, 5 / 7
    assert math.isnan(nan["per_class"][2]["iou"])
    assert nan["mIoU"] == pytest.approx((iou0 + iou1) / 2)
    assert metrics_from_confusion(mat, "zero")["mIoU"] == pytest.approx((iou0 + iou1) / 3)
    assert metrics_from_confusion(mat, "one")["mIoU"] == pytest.approx((iou0 + iou1 + 1) / 3)
    assert nan["pixel_accuracy"] == pytest.approx(8 / 10)
    assert nan["fwIoU"] == pytest.approx(0.4 * iou0 + 0.6 * iou1)
    assert "left out of the means" in nan["conventions"]


def test_class_only_predicted_has_iou_zero_not_nan() -> None:
    mat = torch.tensor([[4, 2], [0, 0]])  # class 1 predicted but never in ground truth
    m = metrics_from_confusion(mat)
    assert m["per_class"][1]["iou"] == 0.0 and math.isnan(m["per_class"][1]["recall"])
    assert m["mIoU"] == pytest.approx((4 / 6 + 0) / 2)


def test_update_matches_the_boolean_mask_reference_for_any_ignore_index() -> None:
    import torch

    from segcli.metrics import ConfusionMatrix

    g = torch.Generator().manual_seed(0)
    target = torch.randint(-1, 6, (2, 9, 11), generator=g)
    target[0, 0, :4] = 255
    pred = torch.randint(0, 7, (2, 9, 11), generator=g)  # 6 is out of range: clamped to the last class
    for ignore in (0, 3, 255):
        keep = (target != ignore) & (target >= 0) & (target < 5)
        ref = torch.bincount(target[keep] * 5 + pred[keep].clamp(0, 4), minlength=25).view(5, 5)
        cm = ConfusionMatrix(5, ignore)
        cm.update(pred, target)
        assert torch.equal(cm.mat, ref), ignore


def test_shapes_must_match() -> None:
    cm = ConfusionMatrix(C, IGNORE)
    with pytest.raises(ValueError, match=r"prediction \(2, 3\) and target \(3, 2\) differ in shape"):
        cm.update(torch.zeros(2, 3, dtype=torch.long), torch.zeros(3, 2, dtype=torch.long))


def test_merge_pools_two_matrices_as_one() -> None:
    whole, a, b = ConfusionMatrix(C, IGNORE), ConfusionMatrix(C, IGNORE), ConfusionMatrix(C, IGNORE)
    for seed, part in ((7, a), (8, b)):
        pred, target = random_batch(seed)
        part.update(pred, target)
        whole.update(pred, target)
    a.merge(b)
    assert torch.equal(a.mat, whole.mat) and int(a.mat.sum()) > int(b.mat.sum()) > 0


def test_compute_names_the_classes_and_counts_pixels() -> None:
    mat = torch.tensor([[3, 1], [0, 2]])
    m = metrics_from_confusion(mat, class_names=["bg", "road"])
    assert [c["class"] for c in m["per_class"]] == ["bg", "road"]
    assert [c["pixels"] for c in m["per_class"]] == [4, 2] and m["pixels"] == 6
    assert m["per_class"][1]["dice"] == pytest.approx(2 * 2 / (2 + 3))
    assert [c["class"] for c in metrics_from_confusion(mat)["per_class"]] == ["0", "1"]


def test_an_empty_matrix_gives_nan_not_an_error() -> None:
    m = ConfusionMatrix(3).compute()
    assert m["pixels"] == 0
    for key in ("pixel_accuracy", "mean_accuracy", "mIoU", "fwIoU", "mean_dice"):
        assert math.isnan(m[key]), key
    assert all(math.isnan(c["iou"]) for c in m["per_class"])


def test_conventions_say_how_absent_classes_count() -> None:
    from segcli.metrics import conventions

    assert conventions().startswith("pooled over the split through one confusion matrix")
    assert conventions("nan").endswith("is NaN and left out of the means")
    assert conventions("zero").endswith("is counted as IoU 0")
    assert conventions("one").endswith("is counted as IoU 1")
    assert metrics_from_confusion(torch.eye(2, dtype=torch.long), "zero")["conventions"] == conventions("zero")


def test_ece_of_known_confidences_over_labelled_pixels_only() -> None:
    """Every pixel at confidence 0.9 (two classes, logit gap log 9), half of them right: ECE = |0.5 - 0.9| = 0.4;
    ignored pixels count nowhere; probabilities give the same as their logits."""
    from segcli.metrics import ReliabilityBins

    gap = float(torch.log(torch.tensor(9.0)))
    logits = torch.zeros(2, 2, 4)
    logits[0] = gap  # class 0 predicted everywhere, p = 0.9
    target = torch.tensor([[0, 0, 1, 1], [0, 1, 255, 255]])
    target[1, 0], target[1, 1] = 0, 1  # 6 labelled: 3 right, 3 wrong
    bins = ReliabilityBins(2, ignore_index=255)
    bins.update(logits, target)
    s = bins.summary(["a", "b"])
    assert s["pixels"] == 6 and s["ece"] == pytest.approx(0.4, abs=1e-6)
    assert s["per_class"]["a"] == pytest.approx(0.4, abs=1e-6) and s["per_class"]["b"] != s["per_class"]["b"]  # NaN
    (hot,) = [b for b in s["reliability"] if b["pixels"]]
    assert hot["bin"][0] <= 0.9 < hot["bin"][1] and hot["confidence"] == pytest.approx(0.9) and hot["accuracy"] == 0.5
    probs = ReliabilityBins(2, ignore_index=255)
    probs.update(logits.softmax(0), target, probabilities=True)
    assert probs.summary()["ece"] == pytest.approx(s["ece"], abs=1e-6)


def test_ece_is_zero_when_confidence_matches_accuracy() -> None:
    from segcli.metrics import ReliabilityBins

    logits = torch.tensor([[[10.0, 10.0, 10.0]], [[0.0, 0.0, 0.0]]])  # ~certain of class 0
    bins = ReliabilityBins(2)
    bins.update(logits, torch.zeros(1, 3, dtype=torch.long))
    assert bins.summary()["ece"] < 1e-4


def _square(top: int, left: int, size: int = 12) -> torch.Tensor:
    labels = torch.zeros(size, size, dtype=torch.long)
    labels[top : top + 2, left : left + 2] = 1
    return labels


def test_label_edges_mark_both_sides_of_every_edge() -> None:
    from segcli.metrics import label_edges

    edges = label_edges(_square(2, 2, size=6))
    assert edges[2:4, 2:4].all() and edges.sum() == 4 + 8  # the square's 4 pixels and its 8 4-neighbours
    assert not label_edges(torch.zeros(3, 3, dtype=torch.long)).any()


def test_boundary_f_matches_outlines_within_the_tolerance() -> None:
    from segcli.metrics import BoundaryF

    pred, target = _square(2, 2), _square(2, 4)  # the same square two pixels to the right
    same = BoundaryF(2, tolerance=0)
    same.update(target, target)
    assert same.compute()["boundary_f"] == 1.0
    exact, near = BoundaryF(2, tolerance=0), BoundaryF(2, tolerance=2)
    exact.update(pred, target)
    near.update(pred, target)
    assert exact.compute()["per_class"][1]["f"] == 0.0  # no outline pixel of the square in the same place
    assert near.compute()["per_class"][1] == {"class": "1", "f": 1.0, "precision": 1.0, "recall": 1.0}
    one = BoundaryF(2, tolerance=1)  # pixels of the left column are 2 away: half of the square's outline matches
    one.update(pred, target)
    assert one.compute()["per_class"][1]["precision"] == 0.5


def test_boundary_f_leaves_ignored_pixels_and_absent_classes_out() -> None:
    from segcli.metrics import BoundaryF

    target = _square(2, 4)
    target[:, 8:] = 255  # an ignored band
    pred = target.clone()
    pred[:, 8:] = 2  # whatever is predicted there counts nowhere
    meter = BoundaryF(3, ignore_index=255, tolerance=0)
    meter.update(pred, target)
    result = meter.compute(("a", "b", "c"))
    assert result["boundary_f"] == 1.0 and math.isnan(result["per_class"][2]["f"])
    missed = BoundaryF(3, ignore_index=255, tolerance=0)
    missed.update(torch.zeros_like(target), target)
    row = missed.compute()["per_class"][1]  # in the ground truth, never predicted: F 0
    assert row["f"] == 0.0 and row["recall"] == 0.0 and math.isnan(row["precision"])


def test_flicker_is_the_share_of_pixels_changing_class_between_consecutive_frames() -> None:
    import numpy as np

    from segcli.metrics import Flicker, flicker

    a = np.zeros((4, 5), np.uint8)
    b = a.copy()
    b[0, :2] = 3  # 2 of 20 pixels change
    c = b.copy()
    c[1:3, :] = 1  # 10 more change
    assert flicker([a, a, a]) == 0.0
    assert flicker([a, b]) == pytest.approx(2 / 20)
    assert flicker([a, b, c]) == pytest.approx((2 + 10) / 40)  # pooled over both pairs
    assert flicker([torch.from_numpy(a), torch.from_numpy(b)]) == pytest.approx(0.1)
    assert math.isnan(flicker([a]))
    meter = Flicker()
    for mask in (a, np.zeros((3, 3), np.uint8), np.ones((3, 3), np.uint8)):  # a new size starts over
        meter.update(mask)
    assert (meter.changed, meter.compared) == (9, 9)
    b[:] = 7  # the meter keeps its own copy of the previous frame
    meter.update(np.ones((3, 3), np.uint8))
    assert meter.value == pytest.approx(9 / 18)
