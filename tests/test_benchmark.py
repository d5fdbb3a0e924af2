"""`seg benchmark`: labelled throughput figures of one model (tiny sizes here; the figures are not asserted)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from segcli.cli.app import app
from segcli.engine.benchmark import benchmark
from segcli.errors import PresetError


def test_benchmark_labels_every_figure() -> None:
    r = benchmark("quickstart", (32, 32), batch=2, device="cpu", amp="none", iters=2, warmup=1, num_classes=3)
    assert r["model"] == "fpn/resnet18" and r["resolution"] == "32x32" and r["precision"] == "none"
    assert r["memory_format"] == "channels_last" and r["backend"] == "eager" and r["batch"] == 2
    assert r["device"] == "cpu" and r["device_name"] and r["threads"] >= 1
    for key in ("inference", "inference_end_to_end"):
        s = r[key]
        assert s["images_per_s"] > 0 and s["latency_ms_p50"] <= s["latency_ms_p90"] <= s["latency_ms_p99"]
    assert r["train_step"]["images_per_s"] > 0 and r["train_step"]["peak_memory_mb"] > 0


def test_benchmark_cli_json_and_table() -> None:
    runner = CliRunner()
    args = ["benchmark", "quickstart", "--size", "32", "--iters", "2", "--device", "cpu", "--amp", "none"]
    res = runner.invoke(app, [*args, "--no-train", "--json"])
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout)
    assert "train_step" not in r and r["inference"]["images_per_s"] > 0
    res = runner.invoke(app, [*args, "--contiguous"])
    assert res.exit_code == 0, res.output
    assert "memory_format=contiguous" in res.stdout and "training step (batch 2)" in res.stdout


def test_benchmark_of_an_unknown_preset_names_the_bundled_ones() -> None:
    with pytest.raises(PresetError, match="no_such_preset.*quickstart"):
        benchmark("no_such_preset", (32, 32), device="cpu")
