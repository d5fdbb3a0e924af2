"""train.auto: the choice rule on injected step times, the probe's order and cap, and a real short probe."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from segcli.config.load import load_preset
from segcli.train import auto_recipe
from segcli.train.auto_recipe import (
    MIN_STEPS,
    THROUGHPUT_SLACK,
    Probe,
    apply_choice,
    candidate_crops,
    choose,
    crop_shape,
    probe_step_times,
)


def test_choose_takes_the_most_pixels_per_second_that_still_give_enough_steps() -> None:
    probes = [
        Probe(128, 4, 0.1),  # 0.66 M pixels/s
        Probe(192, 4, 0.2),  # 0.74 M/s: the fastest
        Probe(256, 4, 0.4),  # 0.66 M/s
        Probe(320, 4, 0.7),  # too slow for 300 steps in 120 s
        Probe(128, 8, 0.2),
        Probe(128, 16, 0.4),  # the most pixels per step of those that fit, at 0.66 M/s
    ]
    c = choose(probes, 120.0, base_lr=1e-3, base_batch=8)
    assert (c.crop, c.batch) == (192, 4)
    assert c.lr == pytest.approx(1e-3 * math.sqrt(4 / 8))
    assert c.steps == 600 and "at least 300 steps" in c.why and "pixels per second" in c.why
    # nothing fits: the cheapest step
    c = choose(probes, 10.0, 1e-3, 8)
    assert (c.crop, c.batch) == (128, 4) and "cheapest" in c.why
    # the lr never grows past MAX_LR_SCALE times the preset's
    assert choose([Probe(128, 512, 0.001)], 100.0, 1e-3, 8).lr == pytest.approx(2e-3)
    assert "auto recipe: augment.crop_size=[128,128]" in c.describe()


def test_equally_fast_pairs_go_to_the_larger_crop_then_the_smaller_batch() -> None:
    # a CPU: about as many pixels per second at every batch (within THROUGHPUT_SLACK): the smaller batch makes
    # more optimiser steps in the same time (manyclass, FPN, 10 minutes: batch 8 0.817 mIoU, batch 16 0.800)
    cpu = [Probe(192, 4, 0.208), Probe(192, 8, 0.41), Probe(192, 16, 0.80), Probe(128, 16, 0.355)]
    c = choose(cpu, 600.0, 2e-3, 8)
    assert (c.crop, c.batch) == (192, 4)
    # slower per pixel beyond the slack: not equal
    slow_small = [Probe(192, 4, 0.25), Probe(192, 8, 0.40)]
    assert choose(slow_small, 600.0, 2e-3, 8).batch == 8
    # a GPU: larger batches move more pixels per second, so the larger batch is the fastest pair and is taken
    gpu = [Probe(256, 4, 0.010), Probe(256, 8, 0.012), Probe(256, 16, 0.016), Probe(512, 4, 0.030)]
    c = choose(gpu, 120.0, 2e-3, 8)
    assert (c.crop, c.batch) == (256, 16) and c.lr == pytest.approx(2e-3 * math.sqrt(2))
    # the slack: the larger crop wins among equally fast pairs
    near = [Probe(128, 16, 0.40), Probe(256, 4, 0.41)]
    assert choose(near, 600.0, 2e-3, 8).crop == 256
    assert 0 < THROUGHPUT_SLACK < 0.2


def test_probe_order_stops_at_the_first_too_slow_crop() -> None:
    now = [0.0]
    cost = {(128, 1): 0.03, (128, 4): 0.1, (192, 4): 0.2, (256, 4): 1.0, (128, 8): 0.2, (192, 8): 0.5, (128, 16): 0.35}

    def step(crop: int, batch: int):  # noqa: ANN202
        def run() -> None:
            now[0] += cost.get((crop, batch), 5.0)

        return run

    found = probe_step_times(step, [128, 192, 256, 320], 120.0, lambda: now[0])
    tried = [(q.crop, q.batch) for q in found]  # the scout at batch 1 is not a candidate
    # crops up to the first one too slow for MIN_STEPS (256: 120 steps), 320 never tried; then larger
    # batches at the fitting crops, largest first, each stopped at its first too-slow batch
    assert tried == [(128, 4), (192, 4), (256, 4), (192, 8), (128, 8), (128, 16)]
    assert [q.seconds for q in found] == pytest.approx([cost[k] for k in tried])
    # the cap: a probe that has used its share of the budget stops
    now[0] = 0.0
    assert len(probe_step_times(step, [128, 192, 256], 20.0, lambda: now[0])) == 1
    # a hopeless machine: the scout (0.03 s at batch 1, so about 0.12 s at batch 4) ends the probe
    now[0] = 0.0
    (only,) = probe_step_times(step, [128, 192, 256], 5.0, lambda: now[0])
    assert (only.crop, only.batch, only.note) == (128, 4, "4 x the batch-1 step")
    assert now[0] == pytest.approx(0.06)  # two batch-1 steps spent


def test_candidate_crops_follow_the_images() -> None:
    assert candidate_crops(512, 512) == [128, 160, 192, 256, 320, 384, 512]
    assert candidate_crops(600, 256) == [128, 160, 192, 256]
    assert candidate_crops(48, 256) == [128]


def test_crop_sides_stop_at_the_images_size() -> None:
    """192x256 street scenes: the 256 px candidate is 192x256 (no row of pure padding), 192 px stays square."""
    assert crop_shape(256, (192, 256)) == (192, 256) and crop_shape(192, (192, 256)) == (192, 192)
    assert crop_shape(256, None) == (256, 256) and crop_shape(128, (480, 640)) == (128, 128)
    wide, square = Probe(256, 16, 0.8, shape=(192, 256)), Probe(192, 16, 0.6)
    assert wide.size == (192, 256) and wide.pixels == 16 * 192 * 256 and square.size == (192, 192)
    c = choose([square, wide], 300.0, 1e-3, 8)  # both give 300+ steps: the capped 256 moves more pixels
    assert c.size == (192, 256) and "16 x 192x256" in c.why
    assert "augment.crop_size=[192,256]" in c.describe() and "192x256px x16: 0.800s/step" in c.describe()
    p = load_preset("budget_scratch", ["train.time_budget=2m"]).preset
    assert apply_choice(p, c, 100.0).augment.crop_size == (192, 256)


def test_apply_choice_writes_the_keys() -> None:
    p = load_preset("budget_scratch", ["train.time_budget=2m"]).preset
    c = choose([Probe(192, 8, 0.1)], 100.0, p.optim.lr, p.data.batch_size)
    q = apply_choice(p, c, 100.0)
    assert q.augment.crop_size == (192, 192) and q.data.batch_size == 8
    assert p.optim.lr == pytest.approx(2e-3)  # twice the plain loop's 1e-3: measured, docs/budget.md
    assert q.optim.lr == pytest.approx(p.optim.lr) and q.schedule.warmup_fraction == auto_recipe.WARMUP_FRACTION
    assert q.train.time_budget_seconds == pytest.approx(100.0) and not q.train.auto


@pytest.mark.slow
def test_real_probe_and_auto_run(tiny_overrides: list[str]) -> None:
    """A real probe on this machine, then a short auto run that records its choice."""
    from segcli.train.trainer import train

    over = [o for o in tiny_overrides if not o.startswith(("train.epochs", "augment.crop_size", "data.batch_size"))]
    result = train("budget_scratch", [*over, "train.time_budget=20s", "train.auto=true"])
    log = (result.run_dir / "log.txt").read_text()
    # the tiny set's images are 48 px: the 128 px candidate is cut to them (crop_shape), not padded
    assert "auto recipe: augment.crop_size=[48,48]" in log and "Probed: 48px x4" in log
    resolved = (result.run_dir / "preset.toml").read_text()
    assert "auto = false" in resolved and "warmup_fraction = 0.03" in resolved  # resume replays the choice
    assert "time shares of" in log and result.last.get("mIoU") is not None


def test_probe_guard_against_zero_step_time() -> None:
    assert choose([Probe(128, 4, 0.0)], 10.0, 1e-3, 8).steps > MIN_STEPS


def test_probe_crops_stop_at_the_images_own_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """160 px images with scale jitter up to 1.5: crops up to 160 are probed, never 192 or 240 (upscaled pixels)."""
    import segcli.train.auto_recipe as auto
    from segcli.config.load import load_preset
    from segcli.core.runtime import select_device
    from segcli.data.prepare.shapes import prepare_shapes

    root = tmp_path / "shapes160"
    prepare_shapes(root, train=2, val=1, size=160, seed=0)
    seen: list[list[int]] = []

    def fake_probe(step: Any, crops: list[int], budget: float, clock: Any) -> list[Probe]:
        seen.append(list(crops))
        return [Probe(c, 4, 0.01) for c in crops]

    monkeypatch.setattr(auto, "probe_step_times", fake_probe)
    p = load_preset("budget_scratch", [f"data.root={root}", "augment.scale=[0.75,1.5]", "model.backbone=test_resnet"])
    _, choice = auto.auto_preset(p.preset, select_device("cpu"), "none", lambda: 0.0)
    assert seen == [[128, 160]] and choice.crop == 160 and choice.size == (160, 160)


def test_probe_times_the_capped_crop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Images of 96x160: the probe's steps run on crops cut to that size, and the choice keeps the rectangle."""
    import cv2
    import numpy as np

    import segcli.train.auto_recipe as auto
    from segcli.core.runtime import select_device
    from segcli.data.prepare.shapes import prepare_shapes
    from segcli.data.stats import LabelStats

    root = tmp_path / "shapes"
    prepare_shapes(root, train=2, val=1, size=160, seed=0)
    for image in (root / "images").rglob("*.png"):  # cut every image and mask to 96x160
        cv2.imwrite(str(image), cv2.imread(str(image), cv2.IMREAD_UNCHANGED)[:96])
    for mask in (root / "masks").rglob("*.png"):
        cv2.imwrite(str(mask), cv2.imread(str(mask), cv2.IMREAD_UNCHANGED)[:96])
    sizes: list[Any] = []
    real_step = auto.model_step

    def spy(*args: Any) -> Any:  # the image size the probe's random batches are cut to
        sizes.append(args[-1])
        return real_step(*args)

    monkeypatch.setattr(auto, "model_step", spy)
    monkeypatch.setattr(
        auto, "probe_step_times", lambda step, crops, budget, clock: [Probe(c, 4, 0.01) for c in crops if step(c, 4)]
    )
    stats = LabelStats(("bg", "fg"), (0.9, 0.1), 0, 0.1, None, (96, 160), 2, 2)
    p = load_preset("budget_scratch", [f"data.root={root}", "model.backbone=test_resnet"]).preset
    q, choice = auto.auto_preset(p, select_device("cpu"), "none", lambda: 0.0, stats)
    assert sizes == [(96, 160)]
    assert choice.size == (96, 160) and q.augment.crop_size == (96, 160)
    assert np.prod(choice.size) * choice.batch == choice.probes[-1].pixels
