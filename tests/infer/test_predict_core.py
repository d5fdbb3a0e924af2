"""The prediction core: padding to the input multiple, keep-ratio resize, sliding windows and TTA."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from model_helpers import one_thread

from segcli.config.schema import ModelConfig
from segcli.core.factory import model_from_preset
from segcli.data.transforms import inference_size, keep_ratio_size
from segcli.infer.predict_core import input_multiple, predict_images, slide_logits, window_grid, window_weight
from segcli.infer.protocol import PredictionProtocol
from segcli.models import MODELS

CPU = torch.device("cpu")


_one_thread = pytest.fixture(autouse=True, scope="module")(one_thread)


def _model(name: str = "fpn", classes: int = 3) -> torch.nn.Module:
    torch.manual_seed(0)
    return model_from_preset(ModelConfig(name=name, backbone="test_resnet", decoder_channels=16), classes).eval()


def _image(h: int, w: int, n: int = 1, seed: int = 0) -> torch.Tensor:
    return (torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(seed)) * 255).to(torch.uint8)


@pytest.mark.parametrize("name", MODELS.names())
def test_odd_size_equals_padded_and_cropped(name: str) -> None:
    """An odd-size image goes in reflect-padded to the model's multiple; the logits come out cropped."""
    model = _model(name)
    m = input_multiple(model)
    h, w = 67, 45
    x = _image(h, w)
    got = predict_images(model, x, [(h, w)], PredictionProtocol(), CPU)[0]
    ph, pw = -h % m, -w % m
    assert ph and pw
    padded = F.pad(x.float(), (0, pw, 0, ph), mode="reflect")
    with torch.no_grad():
        ref = model(padded)[0, :, :h, :w]
    assert got.shape == (3, h, w)
    torch.testing.assert_close(got, ref)


def test_ddrnet_pads_to_64_others_to_32() -> None:
    assert input_multiple(_model("ddrnet23_slim")) == 64
    assert input_multiple(_model("fpn")) == 32


def test_padded_region_never_counts_at_the_output_size() -> None:
    model = _model()
    x = _image(40, 50, n=2)
    out = predict_images(model, x, [(40, 50), (80, 100)], PredictionProtocol(), CPU)
    assert out[0].shape == (3, 40, 50) and out[1].shape == (3, 80, 100)
    # a list of images of different sizes: one at a time, each padded on its own
    outs = predict_images(model, [x[0], _image(33, 35)[0]], [(40, 50), (33, 35)], PredictionProtocol(), CPU)
    torch.testing.assert_close(outs[0], out[0])
    assert outs[1].shape == (3, 33, 35)


@pytest.mark.parametrize(
    ("h", "w", "scale", "expected"),
    [
        # computed by hand with mmcv's rescale_size: factor = min(long/max(h,w), short/min(h,w)),
        # new side = int(side * factor + 0.5)
        (512, 683, (2048, 512), (512, 683)),  # ADE-like, already fits: factor 1
        (375, 500, (2048, 512), (512, 683)),  # VOC: 512/375 = 1.3653; 500 * 1.3653 = 682.67 → 683
        (1024, 2048, (2048, 1024), (1024, 2048)),  # Cityscapes at its own scale
        (1024, 2048, (2048, 512), (512, 1024)),  # short side bound: factor 0.5
        (3000, 4000, (2048, 512), (512, 683)),  # 4000 * 512 / 3000 = 682.67
        (100, 1000, (2048, 512), (205, 2048)),  # long side bound: factor 2.048; 100 * 2.048 = 204.8
        (480, 360, (512, 2048), (683, 512)),  # portrait; scale given short-first is the same rule
        (565, 565, (1024, 512), (512, 512)),
    ],
)
def test_keep_ratio_matches_mmseg_rule(h: int, w: int, scale: tuple[int, int], expected: tuple[int, int]) -> None:
    assert keep_ratio_size(h, w, scale) == expected
    assert inference_size(h, w, (), scale) == expected
    assert inference_size(h, w, (64, 32), ()) == (64, 32)  # eval.size keeps its exact meaning
    assert inference_size(h, w) == (h, w)


def test_window_grid_covers_the_image_flush_with_the_border() -> None:
    boxes = window_grid((100, 130), (64, 64), (40, 40))
    assert boxes[0] == (0, 64, 0, 64) and boxes[-1] == (36, 100, 66, 130)
    cover = torch.zeros(100, 130)
    for y1, y2, x1, x2 in boxes:
        assert (y2 - y1, x2 - x1) == (64, 64)
        cover[y1:y2, x1:x2] += 1
    assert cover.min() >= 1
    assert window_grid((40, 50), (64, 64), (40, 40)) == [(0, 40, 0, 50)]


@pytest.mark.parametrize("tile", [(64, 64), (96, 80)])
def test_slide_with_tile_at_least_the_image_equals_whole_image(tile: tuple[int, int]) -> None:
    model = _model()
    x = _image(47, 61, n=2)
    whole = predict_images(model, x, [(47, 61)] * 2, PredictionProtocol(), CPU)
    slid = predict_images(model, x, [(47, 61)] * 2, PredictionProtocol(slide=True, tile=tile, stride=(32, 32)), CPU)
    for a, b in zip(whole, slid):
        assert torch.equal(a, b)


def test_slide_averages_overlapping_windows_batched() -> None:
    """Overlaps are the mean of the windows' logits; windows of one batch or one at a time agree."""
    model = _model()
    x = _image(70, 90)
    proto = PredictionProtocol(slide=True, tile=(48, 48), stride=(32, 32), window_batch=8)
    got = predict_images(model, x, [(70, 90)], proto, CPU)[0]
    one = predict_images(model, x, [(70, 90)], replace(proto, window_batch=1), CPU)[0]
    torch.testing.assert_close(got, one, rtol=1e-4, atol=1e-4)
    total, count = torch.zeros(3, 70, 90), torch.zeros(1, 70, 90)
    for y1, y2, x1, x2 in window_grid((70, 90), (48, 48), (32, 32)):
        win = predict_images(model, x[..., y1:y2, x1:x2], [(y2 - y1, x2 - x1)], PredictionProtocol(), CPU)[0]
        total[:, y1:y2, x1:x2] += win
        count[:, y1:y2, x1:x2] += 1
    torch.testing.assert_close(got, total / count, rtol=1e-4, atol=1e-4)


def test_the_smooth_window_is_one_inside_and_fades_to_the_floor_at_the_edges() -> None:
    w = window_weight((64, 96))
    assert w.shape == (64, 96) and float(w.max()) <= 1.0 and float(w[31:33, 47:49].min()) > 0.99
    assert float(w.min()) == pytest.approx(1e-3) and float(w[0, 48]) < 0.01  # near zero at every edge, never zero
    torch.testing.assert_close(w, w.flip(0))  # symmetric
    torch.testing.assert_close(w, w.flip(1))
    rows = w[:, 48]
    assert bool((rows[1:32] >= rows[:31]).all())  # rising to the middle: no step anywhere


def test_smooth_slide_of_one_window_equals_whole_and_weights_the_overlaps() -> None:
    """One window: the weight divides out (the whole image); overlaps: the weighted mean of the windows."""
    model, x = _model(), _image(70, 90)
    one = PredictionProtocol(slide=True, tile=(96, 96), stride=(64, 64))
    whole = predict_images(model, x, [(70, 90)], PredictionProtocol(), CPU)[0]
    torch.testing.assert_close(slide_logits(model, x, one, 32, smooth=True)[0], whole, rtol=1e-5, atol=1e-5)
    proto = PredictionProtocol(slide=True, tile=(48, 48), stride=(32, 32))
    total, count = torch.zeros(3, 70, 90), torch.zeros(1, 70, 90)
    for y1, y2, x1, x2 in window_grid((70, 90), (48, 48), (32, 32)):
        win = predict_images(model, x[..., y1:y2, x1:x2], [(y2 - y1, x2 - x1)], PredictionProtocol(), CPU)[0]
        weight = window_weight((y2 - y1, x2 - x1))
        total[:, y1:y2, x1:x2] += win * weight
        count[:, y1:y2, x1:x2] += weight
    torch.testing.assert_close(slide_logits(model, x, proto, 32, smooth=True)[0], total / count, rtol=1e-4, atol=1e-4)


def test_tta_scale_one_without_flip_equals_plain() -> None:
    model = _model()
    x = _image(45, 53, n=2)
    plain = predict_images(model, x, [(45, 53)] * 2, PredictionProtocol(), CPU)
    tta = predict_images(model, x, [(45, 53)] * 2, PredictionProtocol(tta_scales=(1.0,)), CPU)
    for lg, p in zip(plain, tta):
        torch.testing.assert_close(lg.softmax(0), p)
        assert torch.equal(lg.argmax(0), p.argmax(0))


def test_tta_flip_and_scales_average_probabilities() -> None:
    model = _model()
    x = _image(40, 48)
    out = (40, 48)
    got = predict_images(model, x, [out], PredictionProtocol(tta_scales=(0.75, 1.0), tta_flip=True), CPU)[0]
    views = []
    for s in (0.75, 1.0):
        xs = F.interpolate(x.float(), size=(round(40 * s), round(48 * s)), mode="bilinear", align_corners=False)
        views.append(predict_images(model, xs, [out], PredictionProtocol(), CPU)[0].softmax(0))
        flipped = predict_images(model, xs.flip(-1), [out], PredictionProtocol(), CPU)[0].flip(-1)
        views.append(flipped.softmax(0))
    torch.testing.assert_close(got, torch.stack(views).mean(0))
    torch.testing.assert_close(got.sum(0), torch.ones(out))


def test_tta_composes_with_slide() -> None:
    model = _model()
    x = _image(50, 70)
    proto = PredictionProtocol(slide=True, tile=(32, 32), stride=(24, 24), tta_scales=(1.0,), tta_flip=True)
    got = predict_images(model, x, [(50, 70)], proto, CPU)[0]
    plain = PredictionProtocol(slide=True, tile=(32, 32), stride=(24, 24))
    a = predict_images(model, x, [(50, 70)], plain, CPU)[0].softmax(0)
    b = predict_images(model, x.flip(-1), [(50, 70)], plain, CPU)[0].flip(-1).softmax(0)
    torch.testing.assert_close(got, (a + b) / 2)


def test_class_ids_equal_argmax_ties_included() -> None:
    from segcli.infer.predict_core import class_ids

    scores = torch.randint(0, 3, (7, 20, 30)).float()  # many ties
    assert torch.equal(class_ids(scores), scores.argmax(0))


class _SeesInputs(torch.nn.Module):
    """A prior model stand-in: records the inputs it is given, returns constant logits."""

    prior = True

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.clone())
        return torch.zeros(x.shape[0], 2, *x.shape[-2:])


def test_tta_scales_a_prior_models_mask_channel_nearest_and_the_crf_skips_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """The prior channel holds class codes (segcli.data.prior.encode_prior): a TTA scale must not blend two codes
    into a third, and the dense CRF's colours are the image's channels without it."""
    import segcli.infer.predict_core as core
    from segcli.config.schema import CrfConfig

    image = _image(32, 32)[0].float()
    codes = torch.zeros(1, 32, 32)
    codes[:, :, 16:] = 255.0  # two classes' codes side by side
    model = _SeesInputs()
    colours_seen = []
    monkeypatch.setattr(core, "refine_scores", lambda sc, img, params, probabilities: colours_seen.append(img) or sc)
    proto = PredictionProtocol(tta_scales=(0.75, 1.5), crf=CrfConfig())
    predict_images(model, torch.cat([image, codes])[None], [(32, 32)], proto, CPU)
    assert [tuple(x.shape[-2:]) for x in model.seen] == [(32, 32), (64, 64)]  # 24 and 48, padded to 32s
    for x in model.seen:
        assert set(x[0, -1].unique().tolist()) <= {0.0, 255.0}  # nearest: only the codes that were there
        assert len(set(x[0, 0].unique().tolist())) > 2  # the colours themselves are resampled bilinearly
    assert [c.shape[0] for c in colours_seen] == [3]
