"""`seg benchmark` on the command line: JSON and the table, --data without trained weights."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from segcli.cli.app import app, run


def test_benchmark_cli_json_and_table() -> None:
    runner = CliRunner()
    args = ["benchmark", "quickstart", "--size", "32", "--iters", "2", "--device", "cpu", "--amp", "none"]
    res = runner.invoke(app, [*args, "--no-train", "--json"])
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout)
    assert "train_step" not in r and r["inference"]["images_per_s"] > 0
    res = runner.invoke(app, [*args, "--contiguous"])
    assert res.exit_code == 0, res.output
    assert (
        "memory_format=contiguous" in res.stdout
        and "training step (batch 2)" in res.stdout
        and "eager, model only" in res.stdout
    )


def test_benchmark_data_needs_trained_weights(capsys) -> None:
    assert run(["benchmark", "quickstart", "--size", "32", "--data", "somewhere", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "need trained weights" in err and "Traceback" not in err
