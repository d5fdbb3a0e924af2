"""PointRend: parameter count at the reference configuration, the train/eval contract at odd sizes, importance
sampling, adaptive subdivision (an exact property with an identity-like point head), gradients, compile and
channels_last."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from model_helpers import compiled_output, one_thread

from segcli.errors import PresetError
from segcli.models import MODELS, build_model
from segcli.models.pointrend import PIXELS_PER_POINT, importance_points, most_uncertain, point_sample, uncertainty

C = 3


_one_thread = pytest.fixture(autouse=True, scope="module")(one_thread)


def _model(**kw) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("pointrend", C, backbone="test_resnet", decoder_channels=16, **kw)


def _image(h: int, w: int, n: int = 1) -> torch.Tensor:
    return torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(h * w)) * 255


def _reference_head_parameters(num_classes: int = 19) -> tuple[int, int]:
    """(whole head, point head) of the reference at its Cityscapes configuration, from its layer lists.

    detectron2 projects/PointRend Base-PointRend-Semantic-FPN + pointrend_semantic_R_50_FPN_1x_cityscapes
    (= mmseg configs/_base_/models/pointrend_r50.py: FPN neck + FPNHead(channels 128) + PointHead):
    * FPN on ResNet-50 res2..res5 (256, 512, 1024, 2048 channels), 256 wide: 1x1 lateral and 3x3 output
      convolutions, both with bias and no norm.
    * SemSegFPNHead / FPNHead, 128 wide: per level 1, 1, 2, 3 3x3 convs without bias + a norm (GroupNorm or
      BatchNorm: 2 x 128 parameters each), the first from 256 channels; a 1x1 predictor with bias.
    * StandardPointHead / PointHead: 3 Conv1d (kernel 1, bias) of 256 outputs, input 256 fine + 19 coarse, then
      256 + 19; the predictor Conv1d (256 + 19) → 19 with bias.
    """
    fpn = sum(c * 256 + 256 for c in (256, 512, 1024, 2048)) + 4 * (256 * 256 * 9 + 256)
    first, later = 256 * 128 * 9 + 2 * 128, 128 * 128 * 9 + 2 * 128
    sem = sum(first + (n - 1) * later for n in (1, 1, 2, 3)) + 128 * num_classes + num_classes
    point = 3 * ((256 + num_classes) * 256 + 256) + (256 + num_classes) * num_classes + num_classes
    return fpn + sem + point, point


def test_parameter_count_at_the_reference_configuration() -> None:
    head, point = _reference_head_parameters()
    assert (head, point) == (5_187_855, 217_212)  # FPN 3,344,384 + semantic head 1,626,259 + point head 217,212
    with torch.device("meta"):
        net = MODELS.get("pointrend")(19, backbone="resnet50", decoder_channels=256)
    inside = {id(p) for p in net.encoder.parameters()}
    assert sum(p.numel() for p in net.parameters() if id(p) not in inside) == head
    assert sum(p.numel() for p in net.point_head.parameters()) == point
    assert net.steps == 2  # coarse at stride 4: two subdivision steps, as the reference


@pytest.mark.parametrize(("h", "w"), [(361, 479), (64, 64), (50, 70), (7, 9)])
def test_input_sized_logits_in_eval_and_the_train_output(h: int, w: int) -> None:
    model = _model().eval()
    with torch.no_grad():
        assert model(_image(h, w)).shape == (1, C, h, w)
    out = model.train()(_image(h, w, n=2))
    assert set(out) == {"out", "aux", "points"} and out["aux"] == []
    assert out["out"].shape == (2, C, h, w)
    n = max(1, h * w // PIXELS_PER_POINT)
    pts = out["points"]
    assert pts["logits"].shape == (2, C, n) and pts["coords"].shape == (2, n, 2)
    assert pts["coords"].min() >= 0 and pts["coords"].max() <= 1


def test_point_counts_as_options_and_the_neck_is_fixed() -> None:
    model = _model(train_points=10).train()
    assert model(_image(64, 64, n=2))["points"]["logits"].shape == (2, C, 10)
    assert model.net.subdivision_points == 0
    with pytest.raises(PresetError, match="model.neck = 'panet'.*'fpn'"):
        _model(neck="panet")
    assert MODELS.info("pointrend").rejects == ("neck", "neck_repeats")  # rejected at preset load


def test_aux_stages_come_with_the_points() -> None:
    out = _model(aux_stages=(3,)).train()(_image(64, 64, n=2))
    assert len(out["aux"]) == 1 and out["aux"][0].shape == (2, C, 64, 64) and "points" in out


def test_uncertainty_is_minus_the_top2_gap() -> None:
    logits = torch.tensor([[[3.0, 0.0], [1.0, 5.0], [2.5, -1.0]]])  # (1, 3 classes, 2 positions)
    assert torch.equal(uncertainty(logits), torch.tensor([[-0.5, -5.0]]))


def _half_uncertain_map() -> torch.Tensor:
    """(2, 3, 8, 8) logits: columns 0-3 tie between classes 0 and 1 (gap 0), columns 4-7 are sure (gap 10)."""
    coarse = torch.zeros(2, 3, 8, 8)
    coarse[:, 0, :, :4] = coarse[:, 1, :, :4] = 1.0
    coarse[:, 2, :, 4:] = 10.0
    return coarse


def test_most_uncertain_keeps_the_smallest_top2_gaps() -> None:
    coarse = torch.randn(2, C, 8, 8, generator=torch.Generator().manual_seed(1))
    cand = torch.rand(2, 90, 2, generator=torch.Generator().manual_seed(2))
    chosen = most_uncertain(coarse, cand, 30)
    u = uncertainty(point_sample(coarse, cand))
    for b in range(2):
        want = cand[b, u[b].argsort(descending=True)[:30]]
        assert sorted(map(tuple, chosen[b].tolist())) == sorted(map(tuple, want.tolist()))


def test_importance_sampling_puts_its_share_on_the_uncertain_half() -> None:
    torch.manual_seed(0)
    n = 64
    pts = importance_points(_half_uncertain_map(), n)
    assert pts.shape == (2, n, 2)
    k = int(0.75 * n)  # the uncertain share; of 3n = 192 candidates about 90 lie where the gap is exactly 0
    u = uncertainty(point_sample(_half_uncertain_map(), pts))
    assert (u[:, :k] == 0).all() and (pts[:, :k, 0] < 0.5).all()
    assert (u[:, k:] < 0).any()  # the random quarter is not restricted to the tie


def _identity_like(model: torch.nn.Module) -> None:
    """Point head that returns its coarse input: every FC outputs 0 (so only the coarse logits reach the
    predictor), and the predictor copies those."""
    head = model.net.point_head
    with torch.no_grad():
        for fc in head.fcs:
            fc.weight.zero_()
            fc.bias.zero_()
        head.predictor.weight.zero_()
        head.predictor.bias.zero_()
        width = head.predictor.in_channels - C
        head.predictor.weight[:, width:, 0] = torch.eye(C)


def _coarse(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    net = model.net
    with torch.no_grad():
        return net.decode(net.encoder((x - model.mean) / model.std))[0]


def test_subdivision_with_an_identity_like_point_head_is_bilinear_upsampling() -> None:
    """The point head sees the coarse logits bilinearly sampled at cell centres, which is bilinear upsampling
    (align_corners=False, border padding). So with a head that returns them: refining every cell gives the
    coarse map resized straight to the input; with N points, the first (exact 2x) step changes nothing and the
    last one sets at most N cells of resize(upsample2x(coarse)) to resize(coarse)."""
    model = _model().eval()
    _identity_like(model)
    x = _image(61, 77)
    coarse = _coarse(model, x)
    assert coarse.shape[-2:] == (16, 20)
    direct = F.interpolate(coarse, size=(61, 77), mode="bilinear", align_corners=False)
    two_step = F.interpolate(
        F.interpolate(coarse, scale_factor=2.0, mode="bilinear", align_corners=False),
        size=(61, 77),
        mode="bilinear",
        align_corners=False,
    )
    model.net.subdivision_points = 10**9  # every cell of every step
    with torch.no_grad():
        assert torch.allclose(model(x), direct, atol=1e-5)
    model.net.subdivision_points = 0  # N = 61 * 77 // 256 = 18 per step
    with torch.no_grad():
        out = model(x)
    is_two_step = (out - two_step).abs().amax(1) < 1e-5
    is_direct = (out - direct).abs().amax(1) < 1e-5
    assert (is_two_step | is_direct).all()
    changed = int((~is_two_step).sum())
    assert 0 < changed <= 61 * 77 // PIXELS_PER_POINT


def test_subdivision_refines_the_most_uncertain_cells() -> None:
    """One step straight to the output size, a point head that outputs a constant: exactly the N cells of the
    upsampled coarse map with the smallest top-2 gap take that constant, the rest keep the upsampled logits."""
    model = _model().eval()
    net = model.net
    with torch.no_grad():
        net.point_head.predictor.weight.zero_()
        net.point_head.predictor.bias.copy_(torch.tensor([100.0, -100.0, 0.0]))
    net.steps = 1
    coarse = torch.randn(2, C, 12, 10, generator=torch.Generator().manual_seed(3))
    fine = torch.randn(2, 16, 12, 10)
    with torch.no_grad():
        out = net.subdivide(coarse, fine, (48, 40))
    up = F.interpolate(coarse, size=(48, 40), mode="bilinear", align_corners=False)
    n = 48 * 40 // PIXELS_PER_POINT
    for b in range(2):
        want = torch.zeros(48 * 40, dtype=torch.bool)
        want[uncertainty(up[b : b + 1]).flatten().topk(n).indices] = True
        refined = (out[b, 0] == 100.0).flatten()
        assert torch.equal(refined, want)
        assert torch.equal(out[b][:, ~want.view(48, 40)], up[b][:, ~want.view(48, 40)])


def test_gradients_reach_every_parameter_in_training() -> None:
    model = _model().train()
    x = _image(64, 72, n=2)
    target = torch.randint(0, C, (2, 64, 72))
    out = model(x)
    pts = out["points"]
    labels = torch.randint(0, C, pts["logits"].shape[::2])
    loss = F.cross_entropy(out["out"], target) + F.cross_entropy(pts["logits"], labels)
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert all(p.grad.abs().sum() > 0 for p in model.net.point_head.parameters())


def test_channels_last_matches() -> None:
    model = _model().eval()
    x = _image(72, 88, n=2)
    with torch.no_grad():
        ref = model(x)
        model = model.to(memory_format=torch.channels_last)
        got = model(x.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(got, ref, atol=1e-4)
    assert model.train()(x.contiguous(memory_format=torch.channels_last))["out"].shape == (2, C, 72, 88)


@pytest.mark.slow
def test_torch_compile() -> None:
    # Dynamo's capture of the subdivision loop (topk, point sampling, scatter) through AOT autograd: what a
    # model's code can break. Inductor's C++ code generation for the loop's many kernels would add ~80 s on a
    # 2-core CPU and tests torch rather than this model.
    model = _model().eval()
    x = _image(64, 80)
    ref, got = compiled_output(model, x, backend="aot_eager")
    assert got.shape == (1, C, 64, 80) and torch.allclose(got, ref, atol=1e-4)
