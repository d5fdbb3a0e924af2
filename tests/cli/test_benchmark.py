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


def test_benchmark_compare_table_names_the_cpu_flags_and_skipped_rows(monkeypatch, tmp_path, capsys) -> None:
    """--compare: the CPU's instruction sets in the header, a ratio column to eager fp32, each row, and a line for
    every backend left out (here: onnxruntime made to look missing)."""
    from export_helpers import tiny_weights

    import segcli.infer.benchmarking as benchmarking

    monkeypatch.setattr(benchmarking, "package_available", lambda name: name != "onnxruntime")
    monkeypatch.setattr(benchmarking, "cpu_flags", lambda: ["avx2", "avx512_vnni", "avx512_bf16"])
    weights = tiny_weights(tmp_path, "fpn")
    args = ["benchmark", str(weights), "--size", "32", "--iters", "2", "--device", "cpu", "--no-train"]
    assert run([*args, "--compare", "eager-bf16,onnxruntime-int8"]) == 0
    text = capsys.readouterr().out
    assert "CPU instruction sets: avx2, avx512_vnni, avx512_bf16" in text and "backend=eager fp32" in text
    assert "skipped onnxruntime int8: onnxruntime is not installed (pip install 'segcli[export]')" in text
    assert run([*args, "--compare", "eager-bf16,onnxruntime-int8", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert [b["backend"] for b in r["backends"]] == ["eager bf16"] and r["backends"][0]["latency_ratio_to_first"] > 0
    assert r["cpu_flags"] == ["avx2", "avx512_vnni", "avx512_bf16"]
