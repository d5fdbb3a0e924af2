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


def test_benchmark_batch_size_and_its_old_name(monkeypatch) -> None:
    """--batch-size as on eval and infer; --batch still works, hidden; --size takes H,W, HxW or one number."""
    import segcli.infer as infer

    seen = []
    monkeypatch.setattr(infer, "benchmark", lambda target, protocol, **kw: seen.append(protocol) or {})
    runner = CliRunner()
    for args, batch, size in (
        (["--batch-size", "3", "--size", "32,48"], 3, (32, 48)),
        (["--batch", "2", "--size", "32x48"], 2, (32, 48)),
        (["--size", "40"], 1, (40, 40)),
    ):
        runner.invoke(app, ["benchmark", "quickstart", *args, "--json"])
        assert (seen[-1].batch_size, seen[-1].size) == (batch, size)
    help_text = runner.invoke(app, ["benchmark", "--help"]).stdout
    assert "--batch-size" in help_text and "--batch " not in help_text
