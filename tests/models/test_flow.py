"""The semantic-flow blocks (segcli/models/flow.py): the warp, FAM, GD-FAM and the shape-agnostic pooling."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from segcli.models.flow import (
    AdaptiveAvgPool,
    FlowAlign,
    GatedDualFlowAlign,
    PyramidPoolingContext,
    align_up,
    flow_warp,
)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _upsample(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=True)


class _Const(nn.Module):
    """Stands in for a flow conv: returns a fixed flow field whatever its input."""

    def __init__(self, flow: torch.Tensor) -> None:
        super().__init__()
        self.value = flow

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.value.expand(x.shape[0], -1, -1, -1)


def _one_pixel(h: int, w: int, axis: str) -> torch.Tensor:
    """A flow (1, 2, h, w) that moves the sampling point one pixel right (``x``) or down (``y``): the reference
    divides the flow by (w, h), and one pixel is 2 / (n - 1) in normalised coordinates."""
    flow = torch.zeros(1, 2, h, w)
    if axis == "x":
        flow[:, 0] = 2.0 * w / (w - 1)
    else:
        flow[:, 1] = 2.0 * h / (h - 1)
    return flow


@pytest.mark.parametrize("bins", [1, 2, 3, 6])
@pytest.mark.parametrize("size", [(2, 3), (7, 11), (13, 5), (12, 12), (1, 1)])
def test_adaptive_pool_equals_torch(bins: int, size: tuple[int, int]) -> None:
    x = torch.randn(2, 4, *size)
    assert torch.allclose(AdaptiveAvgPool(bins)(x), nn.AdaptiveAvgPool2d(bins)(x), atol=1e-6)


def test_pyramid_pooling_has_no_fixed_size_layer() -> None:
    """No nn.AdaptiveAvgPool2d: the ONNX export keeps a symbolic input size (tests/test_export.py)."""
    ppm = PyramidPoolingContext(8, 4).eval()
    assert not any(isinstance(m, nn.AdaptiveAvgPool2d) for m in ppm.modules())
    assert ppm(torch.randn(2, 8, 5, 7)).shape == (2, 4, 5, 7)


def test_zero_flow_warp_is_bilinear_upsampling() -> None:
    coarse = torch.randn(2, 3, 5, 7)
    assert torch.allclose(flow_warp(coarse, torch.zeros(2, 2, 9, 13)), _upsample(coarse, (9, 13)), atol=1e-5)
    assert torch.allclose(align_up(coarse, (9, 13)), _upsample(coarse, (9, 13)))


def test_fam_with_zero_flow_is_upsampling_plus_sum() -> None:
    fam = FlowAlign(6, 3)
    nn.init.zeros_(fam.flow.weight)
    fine, coarse = torch.randn(2, 6, 11, 15), torch.randn(2, 6, 6, 8)
    assert torch.allclose(fam(fine, coarse), fine + _upsample(coarse, (11, 15)), atol=1e-5)


@pytest.mark.parametrize("axis", ["x", "y"])
def test_known_shift_warps_by_one_pixel(axis: str) -> None:
    x = torch.randn(1, 2, 6, 9)
    out = flow_warp(x, _one_pixel(6, 9, axis))
    if axis == "x":
        assert torch.allclose(out[..., :-1], x[..., 1:], atol=1e-5)
        assert torch.all(out[..., -1] == 0)  # sampled past the border: zero padding
    else:
        assert torch.allclose(out[..., :-1, :], x[..., 1:, :], atol=1e-5)
        assert torch.all(out[..., -1, :] == 0)
    half = flow_warp(x, _one_pixel(6, 9, axis) / 2)  # half a pixel: the mean of the two neighbours
    if axis == "x":
        assert torch.allclose(half[..., :-1], (x[..., :-1] + x[..., 1:]) / 2, atol=1e-5)


def test_fam_warps_the_coarse_map_by_the_predicted_flow() -> None:
    fam = FlowAlign(4, 2)
    fam.flow = _Const(_one_pixel(7, 10, "x"))
    fine, coarse = torch.randn(1, 4, 7, 10), torch.randn(1, 4, 7, 10)
    out = fam(fine, coarse)
    assert torch.allclose(out[..., :-1], fine[..., :-1] + coarse[..., 1:], atol=1e-5)


def test_gdfam_with_zero_flow_and_neutral_gate_averages_the_maps() -> None:
    gd = GatedDualFlowAlign(6, 3)
    nn.init.zeros_(gd.flow.weight)
    nn.init.zeros_(gd.gate[0].weight)  # sigmoid(0) = 0.5
    fine, coarse = torch.randn(2, 6, 11, 15), torch.randn(2, 6, 6, 8)
    assert torch.allclose(gd(fine, coarse), 0.5 * (_upsample(coarse, (11, 15)) + fine), atol=1e-5)


@pytest.mark.parametrize("moved", ["coarse", "fine"])
def test_gdfam_first_flow_moves_the_coarse_map_second_the_fine(moved: str) -> None:
    gd = GatedDualFlowAlign(4, 2)
    shift, still = _one_pixel(7, 10, "x"), torch.zeros(1, 2, 7, 10)
    gd.flow = _Const(torch.cat([shift, still] if moved == "coarse" else [still, shift], dim=1))
    nn.init.zeros_(gd.gate[0].weight)
    fine, coarse = torch.randn(1, 4, 7, 10), torch.randn(1, 4, 7, 10)
    out = gd(fine, coarse)[..., :-1]
    if moved == "coarse":
        assert torch.allclose(out, 0.5 * (coarse[..., 1:] + fine[..., :-1]), atol=1e-5)
    else:
        assert torch.allclose(out, 0.5 * (coarse[..., :-1] + fine[..., 1:]), atol=1e-5)


def test_gdfam_gate_weighs_coarse_against_fine() -> None:
    """gate * coarse + (1 - gate) * fine, the gate read from the channel mean and max of the coarse projection
    and of the fine map: saturated here (centre taps x 1e4), so each pixel takes one map or the other."""
    gd = GatedDualFlowAlign(4, 2)
    nn.init.zeros_(gd.flow.weight)
    with torch.no_grad():
        gd.down_coarse.weight.copy_(torch.eye(2, 4).view(2, 4, 1, 1))  # projection: the first two channels
        gd.gate[0].weight.zero_()
        gd.gate[0].weight[0, :, 1, 1] = 1e4
    fine, coarse = torch.randn(1, 4, 5, 6), torch.randn(1, 4, 5, 6)
    proj = coarse[:, :2]
    stats = [proj.mean(1), fine.mean(1), proj.amax(1), fine.amax(1)]
    g = (sum(stats) > 0).float().unsqueeze(1)
    assert 0 < g.mean() < 1
    assert torch.allclose(gd(fine, coarse), g * coarse + (1 - g) * fine, atol=1e-4)
