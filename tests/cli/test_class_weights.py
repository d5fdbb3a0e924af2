"""`seg class-weights`: JSON and table output, the file never overwritten, a bad method exits 2."""

from __future__ import annotations

import json

from data_helpers import make_random_dataset

from segcli.cli.app import run


def test_cli_json_and_table(tmp_path, capsys):
    root = make_random_dataset(tmp_path / "ds")
    out_file = tmp_path / "w.toml"
    assert run(["class-weights", str(root), "--method", "inv-log", "--out", str(out_file), "--json"]) == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert doc["method"] == "inv-log" and len(doc["weights"]) == 4 and doc["missing"] == ["c3"]
    assert "weight 0" in captured.err
    assert run(["class-weights", str(root), "--method", "inv-log", "--out", str(out_file)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert run(["class-weights", str(root), "-m", "effective-num", "--beta", "0.99", "--workers", "0"]) == 0
    text = capsys.readouterr().out
    assert "effective-num" in text and "mean 1" in text and "c3" in text
    assert run(["class-weights", str(root), "-m", "bogus"]) == 2


def test_overwrite_replaces_the_file_and_force_is_its_hidden_old_name(tmp_path, capsys):
    root = make_random_dataset(tmp_path / "ds")
    argv = ["class-weights", str(root), "--method", "inv", "--out", str(tmp_path / "w.toml"), "--workers", "0"]
    assert run(argv) == 0
    assert run(argv) == 2
    assert "pass --overwrite to replace it" in capsys.readouterr().err
    assert run([*argv, "--overwrite"]) == 0
    assert run([*argv, "--force"]) == 0
    capsys.readouterr()
    assert run(["class-weights", "--help"]) == 0
    help_text = capsys.readouterr().out
    assert "--overwrite" in help_text and "--force" not in help_text
