"""The EMA of the weights (segcli/train/ema.py)."""

from __future__ import annotations

import torch
import torch.nn as nn

from segcli.train.ema import ModelEMA


def test_ema_tracks_weights() -> None:
    model = nn.Linear(2, 1, bias=False)
    nn.init.zeros_(model.weight)
    ema = ModelEMA(model, decay=0.5)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update(model)  # effective decay min(0.5, 2/11)
    d = 2 / 11
    assert torch.allclose(ema.module.weight, torch.full((1, 2), 1 - d))
    state = ema.state_dict()
    other = ModelEMA(model, 0.5)
    other.load_state_dict(state)
    assert other.updates == 1 and torch.equal(other.module.weight, ema.module.weight)


def _reference_update(own: dict, model: nn.Module, d: float) -> None:
    """The per-tensor update the foreach version replaces."""
    for k, v in model.state_dict().items():
        if v.dtype.is_floating_point:
            own[k].mul_(d).add_(v, alpha=1 - d)
        else:
            own[k].copy_(v)


def test_foreach_update_matches_the_per_tensor_update_bitwise() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 1))
    ema = ModelEMA(model, decay=0.9)
    reference = {k: v.clone() for k, v in ema.module.state_dict().items()}
    for n in range(1, 5):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        model.train()(torch.randn(2, 3, 8, 8))  # moves the BatchNorm statistics and its integer counter
        ema.update(model)
        _reference_update(reference, model, min(0.9, (1 + n) / (10 + n)))
    own = ema.module.state_dict()
    assert own["1.num_batches_tracked"].item() == 4
    for k, v in reference.items():
        assert torch.equal(own[k], v), k


def test_update_after_load_state_dict_still_writes_the_module() -> None:
    model = nn.Linear(2, 1)
    ema = ModelEMA(model, decay=0.5)
    ema.update(model)
    ema.load_state_dict(ModelEMA(nn.Linear(2, 1), 0.5).state_dict())
    with torch.no_grad():
        model.weight.fill_(3.0)
    ema.update(model)
    assert ema.module.weight.ne(0).all() and ema.updates == 1
