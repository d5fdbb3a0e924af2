"""The loss of a whole model output (segcli.losses.outputs): main + weighted aux, and PointRend's point term."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from segcli.losses import build_loss
from segcli.losses.outputs import POINT_LOSS_WEIGHT, output_loss, point_labels

C, IGNORE = 3, 255


def _criterion() -> torch.nn.Module:
    return build_loss(["ce"], C, IGNORE)


def test_point_labels_are_the_pixel_each_point_falls_in() -> None:
    masks = torch.arange(12).view(1, 3, 4)  # 3 rows, 4 columns: label = 4 * row + column
    coords = torch.tensor([[[0.0, 0.0], [0.125, 0.5], [0.2499, 0.3333], [0.25, 0.3334], [1.0, 1.0], [0.99, 0.01]]])
    assert point_labels(masks, coords).tolist() == [[0, 4, 0, 5, 11, 3]]


def test_point_loss_is_cross_entropy_at_the_points_with_weight_one() -> None:
    g = torch.Generator().manual_seed(0)
    masks = torch.randint(0, C, (2, 8, 10), generator=g)
    masks[:, :, :5] = IGNORE  # the left half is ignored
    logits = torch.randn(2, C, 8, 10, generator=g)
    point_logits = torch.randn(2, C, 40, generator=g)
    coords = torch.rand(2, 40, 2, generator=g)
    out = {"out": logits, "aux": [], "points": {"logits": point_logits, "coords": coords}}
    loss, _ = output_loss(_criterion(), out, masks, [])
    labels = point_labels(masks, coords)
    assert (labels == IGNORE).any() and (labels != IGNORE).any()
    want = F.cross_entropy(logits, masks, ignore_index=IGNORE)
    want = want + POINT_LOSS_WEIGHT * F.cross_entropy(point_logits, labels, ignore_index=IGNORE)
    assert POINT_LOSS_WEIGHT == 1.0 and torch.allclose(loss, want)
    # points on ignored pixels do not count: changing their logits leaves the loss as it is
    changed = point_logits.clone()
    changed[:, :, coords[0, :, 0] < 0.5] += 7.0  # x < 0.5: columns 0-4, all ignored (image 0's mask)
    changed[1] = point_logits[1]
    out["points"] = {"logits": changed, "coords": coords}
    assert torch.allclose(output_loss(_criterion(), out, masks, [])[0], loss)


def test_gradients_reach_the_point_logits_and_the_main_terms_stay_the_main_outputs() -> None:
    masks = torch.randint(0, C, (1, 6, 6))
    logits = torch.randn(1, C, 6, 6, requires_grad=True)
    point_logits = torch.randn(1, C, 9, requires_grad=True)
    out = {"out": logits, "points": {"logits": point_logits, "coords": torch.rand(1, 9, 2)}}
    crit = _criterion()
    loss, terms = output_loss(crit, out, masks, [])
    loss.backward()
    assert point_logits.grad is not None and point_logits.grad.abs().sum() > 0
    assert torch.allclose(terms["ce"], F.cross_entropy(logits, masks))


def test_outputs_without_points_are_unchanged() -> None:
    masks = torch.randint(0, C, (2, 6, 6))
    logits, aux = torch.randn(2, C, 6, 6), torch.randn(2, C, 6, 6)
    loss, _ = output_loss(_criterion(), {"out": logits, "aux": [aux]}, masks, [0.4])
    assert torch.allclose(loss, F.cross_entropy(logits, masks) + 0.4 * F.cross_entropy(aux, masks))
    assert torch.allclose(output_loss(_criterion(), logits, masks, [])[0], F.cross_entropy(logits, masks))


def test_a_teacher_distils_the_main_output_only() -> None:
    """The kd term compares the main logits with the teacher's; the auxiliary outputs get their supervised loss."""
    g = torch.Generator().manual_seed(1)
    masks = torch.randint(0, C, (2, 6, 6), generator=g)
    main, aux, teacher = (torch.randn(2, C, 6, 6, generator=g) for _ in range(3))
    criterion = build_loss(["ce", "kd"], C, IGNORE, term_weights=[1.0, 2.0])
    loss, terms = output_loss(criterion, {"out": main, "aux": [aux]}, masks, [0.4], teacher)
    kd = F.kl_div(F.log_softmax(main, 1), F.log_softmax(teacher, 1), log_target=True, reduction="none").sum(1).mean()
    want = F.cross_entropy(main, masks) + 2.0 * kd + 0.4 * F.cross_entropy(aux, masks)
    assert torch.allclose(loss, want, atol=1e-6) and set(terms) == {"ce", "kd"}
    assert torch.allclose(terms["kd"], kd, atol=1e-6)  # the main output's terms, not the aux's
    plain, _ = output_loss(criterion, main, masks, [], teacher)  # a model without aux outputs
    assert torch.allclose(plain, F.cross_entropy(main, masks) + 2.0 * kd, atol=1e-6)
