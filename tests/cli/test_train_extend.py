"""`seg train --resume RUN --extend KEY=VALUE` (segcli/cli/train.py): a key that cannot grow is one red line."""

from __future__ import annotations

import pytest

from segcli.train.trainer import train


def test_cli_extend_bad_key_is_one_red_line(tiny_overrides: list[str], capsys: pytest.CaptureFixture) -> None:
    from segcli.cli.app import run

    res = train("quickstart", tiny_overrides)
    assert run(["train", "--resume", str(res.run_dir), "--extend", "data.batch_size=8"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "data.batch_size" in err and "train.epochs" in err
