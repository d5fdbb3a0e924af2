"""Frame-to-frame prediction: a clip's frames in order, the previous mask fed to a prior model, the flicker."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from infer_helpers import _weights

from segcli.data.prior import encode_prior
from segcli.errors import UserError
from segcli.infer.predictor import Clip, OutputOptions, predict, predict_arrays, resize_nearest
from segcli.infer.protocol import PredictionProtocol
from segcli.metrics import flicker


class RecordingPriorModel(torch.nn.Module):
    """Four input channels; remembers each input's prior channel and answers random logits (seeded per call)."""

    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        self.classes, self.priors, self.calls = classes, [], 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[1] == 4
        self.priors += [p.clone() for p in x[:, 3]]
        self.calls += 1
        g = torch.Generator().manual_seed(self.calls)
        return torch.randn((x.shape[0], self.classes, *x.shape[-2:]), generator=g)


def test_each_frame_gets_the_previous_frames_prediction_as_its_prior() -> None:
    model = RecordingPriorModel()
    frames = [np.full((40, 48, 3), 10 * k, np.uint8) for k in range(4)]
    clip = Clip(prior=True, num_classes=3)
    proto = PredictionProtocol(size=(32, 32), batch_size=8)  # resized before the model: the prior too
    found = predict_arrays(model, frames, proto, torch.device("cpu"), clip=clip)
    assert model.calls == 4  # one frame a forward pass, whatever the batch
    masks = [m for m, _ in found]
    assert all(m.shape == (40, 48) for m in masks)
    assert (model.priors[0] == 0).all()  # no frame before the first: no prior
    for t in range(1, 4):
        expected = encode_prior(resize_nearest(masks[t - 1], (32, 32)), 3)
        assert np.array_equal(model.priors[t][:32, :32].numpy().astype(np.uint8), expected)
    assert clip.summary() == {"frames": 4, "flicker": round(flicker(masks), 6), "prior": True}


def test_a_model_without_prior_keeps_its_batches_and_gets_the_flicker_counted() -> None:
    class Still(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.shapes: list[tuple[int, ...]] = []

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.shapes.append(tuple(x.shape))
            return torch.zeros((x.shape[0], 2, *x.shape[-2:]))

    model, clip = Still(), Clip(prior=False, num_classes=2)
    frames = [np.zeros((32, 32, 3), np.uint8)] * 3
    predict_arrays(model, frames, PredictionProtocol(batch_size=8), torch.device("cpu"), clip=clip)
    assert model.shapes == [(3, 3, 32, 32)]
    assert clip.summary() == {"frames": 3, "flicker": 0.0, "prior": False}


def test_resize_nearest_keeps_ids_for_wide_masks() -> None:
    mask = np.arange(12, dtype=np.int32).reshape(3, 4) * 100
    assert np.array_equal(resize_nearest(mask, (6, 8))[::2, ::2], mask)
    small = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert np.array_equal(resize_nearest(small, (6, 8)), resize_nearest(small.astype(np.int32), (6, 8)))


def test_infer_sequence_reports_the_flicker_of_the_frames(tmp_path: Path) -> None:
    from segcli.data.io import write_image
    from segcli.data.prepare.shapes import render_frame

    w = _weights(tmp_path, 5)
    for k in range(3):
        write_image(tmp_path / "seq" / f"f{k}.png", render_frame(0, k, 32)[0])
    res = predict(
        w, [str(tmp_path / "seq")], tmp_path / "out", device="cpu", output=OutputOptions(save="mask", sequence=True)
    )
    assert res.sequence is not None and res.sequence["frames"] == 3 and res.sequence["prior"] is False
    assert 0.0 <= res.sequence["flicker"] <= 1.0 and res.to_dict()["sequence"] == res.sequence
    with pytest.raises(UserError, match="sequence"):
        OutputOptions(sequence=True, skip_existing=True)
