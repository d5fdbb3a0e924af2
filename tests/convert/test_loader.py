"""Reading checkpoints: safe loading (a malicious pickle runs nothing), unwrapping, prefixes."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from convert_helpers import _Evil, _quickstart_model, _training_checkpoint
from safetensors.torch import save_file

from segcli.cli.app import run
from segcli.convert.loader import read_checkpoint, strip_prefixes, unwrap
from segcli.errors import CheckpointError


def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    evil.write_bytes(pickle.dumps({"weight": torch.zeros(2), "payload": _Evil(marker)}, protocol=2))
    with pytest.raises(CheckpointError, match="refused") as e:
        read_checkpoint(evil)
    assert "torch.save(model.state_dict()" in str(e.value)
    assert not marker.exists()
    # through the CLI: one line, exit 2, nothing written, still nothing run
    assert run(["convert-ckpt", str(evil), str(tmp_path / "out.safetensors"), "--check", "quickstart"]) == 2
    msg = capsys.readouterr().err
    assert "refused" in msg and "Traceback" not in msg
    assert not marker.exists() and not (tmp_path / "out.safetensors").exists()
    # torch.save'd (zip format) too
    evil_zip = tmp_path / "evil_zip.pt"
    torch.save({"payload": _Evil(marker)}, evil_zip)
    with pytest.raises(CheckpointError, match="refused"):
        read_checkpoint(evil_zip)
    assert not marker.exists()


def test_unwrap_prefixes_and_strip(tmp_path: Path) -> None:
    model = _quickstart_model()
    path = tmp_path / "ddp.pth"
    _training_checkpoint(path, model)
    un = unwrap(read_checkpoint(path))
    assert un.path == ["model"] and set(un.left) == {"optimizer", "epoch"}
    assert un.stripped == {"module.": len(model.state_dict())}
    assert set(un.state) == set(model.state_dict())
    # a flat checkpoint with training state beside the weights needs --strip
    flat = {f"_orig_mod.{k}": v for k, v in model.state_dict().items()}
    flat["optimizer"] = {"state": {0: {"exp_avg": torch.zeros(2)}}, "param_groups": [{"lr": 0.1}]}
    flat["epoch"] = 2
    with pytest.raises(CheckpointError, match="`strip`"):
        unwrap(flat)
    un = unwrap(flat, strip=True)
    assert set(un.state) == set(model.state_dict()) and set(un.dropped_non_tensor) == {"optimizer", "epoch"}
    assert un.stripped == {"_orig_mod.": len(model.state_dict())}
    # --key picks an entry explicitly; an unknown one names those holding tensors
    two = {"model": {"a": torch.zeros(1)}, "ema": {"a": torch.ones(1)}}
    assert unwrap(two).path == ["model"] and unwrap(two, key="ema").state["a"].item() == 1.0
    with pytest.raises(CheckpointError, match="model, ema"):
        unwrap(two, key="nope")


def test_safetensors_is_read_and_a_damaged_one_is_refused(tmp_path: Path) -> None:
    good = tmp_path / "w.safetensors"
    save_file({"a.weight": torch.arange(3.0)}, str(good))
    assert read_checkpoint(good)["a.weight"].tolist() == [0.0, 1.0, 2.0]
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file at all")
    with pytest.raises(CheckpointError, match=r"bad\.safetensors: not a readable \.safetensors file"):
        read_checkpoint(bad)
    damaged = tmp_path / "damaged.pth"
    damaged.write_bytes(b"\x80\x02garbage")
    with pytest.raises(CheckpointError, match=r"damaged\.pth: (cannot read checkpoint|refused)"):
        read_checkpoint(damaged)
    with pytest.raises(CheckpointError, match=r"unknown checkpoint type '\(no suffix\)'"):
        read_checkpoint(good.rename(tmp_path / "noext"))


def test_unwrap_flattens_nested_weights_and_refuses_what_is_no_state_dict() -> None:
    nested = {"encoder": {"conv": {"weight": torch.ones(1)}}, "head.bias": torch.zeros(1)}
    un = unwrap(nested)
    assert set(un.state) == {"encoder.conv.weight", "head.bias"} and un.path == [] and un.stripped == {}
    with pytest.raises(CheckpointError, match="holds no tensors"):
        unwrap({"epoch": 3})
    with pytest.raises(CheckpointError, match="holds no tensors"):
        unwrap([torch.zeros(1)])
    with pytest.raises(CheckpointError, match="non-string keys"):
        unwrap({0: torch.zeros(1)})
    many = {"w": torch.zeros(1), **{f"note{i}": i for i in range(8)}}
    with pytest.raises(CheckpointError, match=r"holds 8 entries that are not tensors \(note0, .*note5, \.\.\.\)"):
        unwrap(many)


def test_strip_prefixes_counts_each_and_refuses_collisions() -> None:
    counts: dict[str, int] = {}
    sd = {"module._orig_mod.a": torch.zeros(1), "_orig_mod.module.b": torch.zeros(1), "c": torch.zeros(1)}
    assert set(strip_prefixes(sd, counts)) == {"a", "b", "c"}
    assert counts == {"module.": 2, "_orig_mod.": 2}
    with pytest.raises(CheckpointError, match=r"two tensors become 'a' once wrapper prefixes are removed"):
        strip_prefixes({"module.a": torch.zeros(1), "a": torch.zeros(1)})


def test_a_raw_pickle_is_refused_in_one_line_without_torchs_warning(
    tmp_path: Path, capfd: pytest.CaptureFixture, recwarn: pytest.WarningsRecorder
) -> None:
    """Reported: `convert-ckpt` of a pickle.dump'ed file (protocol 4) leaked torch's UserWarning about the
    protocol, and its message carried the start of torch's advice to set weights_only=False."""
    marker, evil = tmp_path / "pwned", tmp_path / "evil.pth"
    evil.write_bytes(pickle.dumps({"payload": _Evil(marker)}, protocol=4))
    assert run(["convert-ckpt", str(evil), str(tmp_path / "out.safetensors")]) == 2
    err = capfd.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "not a plain weights file" in err, err
    assert "Warning" not in err and "weights_only" not in err and "weights-only" not in err, err
    assert not recwarn.list and not marker.exists() and not (tmp_path / "out.safetensors").exists()
