"""`seg check DATASET`: exit code 2 on errors, findings as JSON or text with their fix."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import DATA_CASES
from data_helpers import make_masks_dataset as make_dataset

from segcli.cli.app import run
from segcli.cli.check import split_list


def test_cli_exit_code_and_json(tmp_path, capsys):
    m = np.zeros((16, 16), np.uint8)
    m[2:5] = 255
    root = make_dataset(tmp_path / "ds", {"x": m}, classes=["bg", "fg"])
    capsys.readouterr()
    assert run(["check", str(root), "--json", "--split", "train", "--sample", "4"]) == 2
    doc = json.loads(capsys.readouterr().out)
    assert doc["errors"] == 1 and doc["findings"][0]["code"] == "binary-0-255" and doc["findings"][0]["fix"]
    assert run(["check", str(root)]) == 2
    text = capsys.readouterr().out
    assert "binary-0-255" in text and "fix:" in text and "x.png" in text
    assert run(["check", str(tmp_path / "missing")]) == 2


@pytest.mark.parametrize("case", list(DATA_CASES))
def test_check_names_the_bad_dataset(case: str, data: Path, capfd: pytest.CaptureFixture) -> None:
    """`seg check` reports instead of crashing: exit 2 for errors, the file named, no traceback."""
    needle = DATA_CASES[case](data)
    rc = run(["check", str(data)])
    captured = capfd.readouterr()
    text = captured.out + captured.err
    assert rc == 2 and "Traceback" not in text and "unexpected" not in text, text
    assert needle.split(".")[0] in text, text


def test_split_list_takes_repeats_and_commas() -> None:
    assert split_list(None) is None and split_list([]) is None
    assert split_list(["train"]) == ["train"]
    assert split_list(["train,val", " test ", "a,,b,"]) == ["train", "val", "test", "a", "b"]


def test_text_report_lists_files_and_how_many_more(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """Warnings alone exit 0; each finding shows its first files, a count of the rest, and the fix."""
    from segcli.data.lint import Finding

    seen: dict = {}

    def lint(root: Path, splits: list[str] | None, sample: int | None = None) -> list[Finding]:
        seen.update(root=root, splits=splits, sample=sample)
        files = ["masks/train/a.png", "masks/train/b.png"]
        return [Finding("odd-size", "warning", "2 masks are odd sizes", files, count=5, fix="resize them")]

    monkeypatch.setattr("segcli.data.lint.lint_dataset", lint)
    assert run(["check", str(tmp_path), "--split", "train,val", "--sample", "3"]) == 0
    out = capsys.readouterr().out
    assert seen == {"root": tmp_path, "splits": ["train", "val"], "sample": 3}
    assert "warning odd-size: 2 masks are odd sizes" in out and "masks/train/b.png" in out
    assert "... 3 more" in out and "fix: resize them" in out
    assert "0 error(s), 1 warning(s) (3 sampled pairs per split checked)" in out


def test_a_clean_dataset_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setattr("segcli.data.lint.lint_dataset", lambda root, splits, sample=None: [])
    assert run(["check", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == f"{tmp_path}: no problems found (every file checked)"


def test_stats_records_the_channel_count_and_statistics(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("tifffile")
    import tifffile
    from data_helpers import make_tiff_dataset

    from segcli.data.format import read_dataset_info

    root = make_tiff_dataset(tmp_path / "ds", train=2, val=1, size=16)
    capsys.readouterr()
    assert run(["check", str(root), "--stats", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["errors"] == 0 and doc["stats"]["channels"] == 4 and doc["stats"]["split"] == "train"
    info = read_dataset_info(root)
    assert info.channels == 4 and info.extra["mean"] == doc["stats"]["mean"] and len(info.extra["std"]) == 4
    assert 0.3 < info.extra["mean"][0] < 0.46  # 16-bit values 20000-30000 of 65535
    tifffile.imwrite(root / "images" / "train" / "01.tif", np.zeros((16, 16, 3), np.uint16), photometric="rgb")
    assert run(["check", str(root), "--stats"]) == 2  # one line naming the file with another count
