"""The EMA of the weights (segcli/engine/ema.py)."""

from __future__ import annotations

import torch
import torch.nn as nn

from segcli.engine.ema import ModelEMA


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
