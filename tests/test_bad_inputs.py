"""Bad inputs through the CLI: exit 2, the culprit named in one red line, no traceback, nothing half-written.

Every case is driven through ``run([...])``, the same entry point as `seg`. The data is made here:
a copy of the tiny shapes dataset, spoiled one way per case, and an untrained weights file.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from segcli.cli.app import run

pytestmark = pytest.mark.filterwarnings("ignore")


def user_error(capfd: pytest.CaptureFixture, args: list, *needles: str, code: int = 2, progress: bool = False) -> str:
    """Run ``args``; assert exit ``code`` and one red line naming every needle; return that line.

    ``progress``: the command may print progress lines (training) before its error, which is the last line.
    """
    rc = run([str(a) for a in args])
    err = capfd.readouterr().err
    assert rc == code, err
    assert "Traceback" not in err and "unexpected" not in err, err
    assert progress or err == err.lstrip(), repr(err)  # no empty line before the error
    lines = err.strip().splitlines()
    assert len(lines) == 1 or (progress and sum("error:" in line for line in lines) == 1), err
    line = lines[-1]
    assert line.startswith("error:"), err
    for needle in needles:
        assert needle in line, (needle, err)
    return line


# ----------------------------------------------------------------------------------------- presets


def _write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


PRESET_CASES: dict[str, tuple[Callable[[Path], list[str]], tuple[str, ...]]] = {
    "unknown key": (lambda d: ["quickstart", "train.epoch=3"], ('did you mean "train.epochs"',)),
    "wrong type": (lambda d: ["quickstart", "optim.lr=fast"], ("optim", "'fast'")),
    "missing file": (lambda d: [str(d / "nope.toml")], ("nope.toml",)),
    "circular extends": (
        lambda d: [
            str(_write(d / "a.toml", 'extends = "b.toml"\n')),
            *([] if _write(d / "b.toml", 'extends = "a.toml"\n') else []),
        ],
        ("a.toml",),
    ),
    "empty file": (lambda d: [str(_write(d / "empty.toml", ""))], ("empty.toml",)),
    "invalid TOML": (lambda d: [str(_write(d / "bad.toml", "[train]\nepochs = = 3\n"))], ("bad.toml", "line 2")),
    "not UTF-8": (lambda d: [str(_write(d / "latin.toml", b"# caf\xe9\n[train]\n"))], ("latin.toml", "UTF-8")),
    "override for a missing key": (lambda d: ["quickstart", "nosuch.key=1"], ("nosuch",)),
    "out-of-range value": (lambda d: ["quickstart", "train.epochs=0"], ("epochs",)),
}


@pytest.mark.parametrize("case", list(PRESET_CASES))
def test_bad_preset(case: str, tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    make, needles = PRESET_CASES[case]
    user_error(capfd, ["presets", "show", *make(tmp_path)], *needles)


# ----------------------------------------------------------------------------------------- datasets


def _first(data: Path, kind: str, split: str = "val") -> Path:
    return sorted((data / kind / split).iterdir())[0]


def _zero_byte_image(data: Path) -> str:
    img = _first(data, "images")
    img.write_bytes(b"")
    return img.name


def _truncated_jpeg(data: Path) -> str:
    img = _first(data, "images")
    img.write_bytes(img.read_bytes()[: img.stat().st_size // 2])
    return img.name


def _size_mismatch(data: Path) -> str:
    mask = _first(data, "masks")
    cv2.imencode(".png", np.zeros((20, 30), np.uint8))[1].tofile(str(mask))
    return mask.name


def _rgb_mask(data: Path) -> str:
    mask = _first(data, "masks")
    cv2.imencode(".png", np.zeros((48, 48, 3), np.uint8))[1].tofile(str(mask))
    return mask.name


def _mask_missing(data: Path) -> str:
    mask = _first(data, "masks")
    mask.unlink()
    return "no mask"


def _mask_value(data: Path) -> str:
    mask = _first(data, "masks")
    ids = np.zeros((48, 48), np.uint8)
    ids[0, :3] = 255  # ignore pixels: the max alone does not find the bad value
    ids[5, 5] = 7
    cv2.imencode(".png", ids)[1].tofile(str(mask))
    return "[7]"


def _no_dataset_toml(data: Path) -> str:
    (data / "dataset.toml").unlink()
    return "dataset.toml"


def _empty_split(data: Path) -> str:
    for kind in ("images", "masks"):
        for f in (data / kind / "val").iterdir():
            f.unlink()
    return "no images"


def _bad_name(data: Path) -> str:
    """An image and mask whose names are not valid UTF-8, the mask spoiled so the file must be named."""
    img, mask = _first(data, "images"), _first(data, "masks")
    os.rename(bytes(img), os.fsencode(img.parent) + b"/bad\xff.jpg")
    new_mask = os.fsencode(mask.parent) + b"/bad\xff.png"
    os.rename(bytes(mask), new_mask)
    with open(new_mask, "wb") as f:
        f.write(b"")
    return "bad"


def _truncated_png_mask(data: Path) -> str:
    mask = _first(data, "masks")
    mask.write_bytes(mask.read_bytes()[:-20])
    return mask.name


DATA_CASES: dict[str, Callable[[Path], str]] = {
    "missing dataset.toml": _no_dataset_toml,
    "empty split": _empty_split,
    "zero-byte image": _zero_byte_image,
    "truncated jpeg": _truncated_jpeg,
    "size mismatch": _size_mismatch,
    "rgb mask": _rgb_mask,
    "truncated png mask": _truncated_png_mask,
    "mask missing": _mask_missing,
    "mask value out of range": _mask_value,
    "non-utf8 file name": _bad_name,
}


@pytest.mark.parametrize("case", list(DATA_CASES))
def test_check_names_the_bad_dataset(case: str, data: Path, capfd: pytest.CaptureFixture) -> None:
    """`seg check` reports instead of crashing: exit 2 for errors, the file named, no traceback."""
    needle = DATA_CASES[case](data)
    rc = run(["check", str(data)])
    captured = capfd.readouterr()
    text = captured.out + captured.err
    assert rc == 2 and "Traceback" not in text and "unexpected" not in text, text
    assert needle.split(".")[0] in text, text


# ------------------------------------------------------------------------------- options and outputs


OPTION_CASES: dict[str, tuple[Callable[[Path, Path, Path], list], tuple[str, ...]]] = {
    "eval --device": (lambda w, d, t: ["eval", w, "--data", d, "--device", "tpu"], ("--device", "tpu")),
    "infer --device": (
        lambda w, d, t: ["infer", w, d / "images" / "val", "--out", t / "o", "--device", "gpu0"],
        ("--device", "gpu0"),
    ),
    "unknown model": (lambda w, d, t: ["presets", "show", "quickstart", "model.name=unetz"], ("unetz",)),
    "unknown backbone (train)": (
        lambda w, d, t: ["train", "quickstart", f"data.root={d}", "model.backbone=resnet19"],
        ('"resnet18"',),
    ),
    "eval split missing": (lambda w, d, t: ["eval", w, "--data", d, "--split", "tset"], ("tset",)),
}


@pytest.mark.parametrize("case", list(OPTION_CASES))
def test_bad_option(case: str, weights: Path, data: Path, tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    make, needles = OPTION_CASES[case]
    user_error(capfd, make(weights, data, tmp_path), *needles)


def test_infer_existing_output_needs_overwrite(
    weights: Path, data: Path, tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    out = tmp_path / "pred"
    mine = _write((out / "masks").mkdir(parents=True) or out / "masks" / "val_00000.png", "mine")
    user_error(capfd, ["infer", weights, data / "images" / "val", "--out", out, "--device", "cpu"], "--overwrite")
    assert mine.read_text() == "mine"


# ----------------------------------------------------------------------------------------- checkpoints


def _truncated_weights(w: Path, tmp: Path) -> Path:
    data = w.read_bytes()
    return _write(tmp / "cut.safetensors", data[: len(data) // 2])


def _not_a_checkpoint(w: Path, tmp: Path) -> Path:
    return _write(tmp / "notes.safetensors", "these are my notes")


def _plain_safetensors(w: Path, tmp: Path) -> Path:
    import torch
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(2)}, str(tmp / "plain.safetensors"))
    return tmp / "plain.safetensors"


CHECKPOINT_CASES = {
    "truncated": _truncated_weights,
    "not a checkpoint": _not_a_checkpoint,
    "foreign": _plain_safetensors,
}


@pytest.mark.parametrize("command", ["eval", "infer"])
@pytest.mark.parametrize("case", list(CHECKPOINT_CASES))
def test_bad_checkpoint(
    case: str, command: str, weights: Path, data: Path, tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    bad = CHECKPOINT_CASES[case](weights, tmp_path)
    rest = ["--data", data] if command == "eval" else [data / "images" / "val", "--out", tmp_path / "o"]
    user_error(capfd, [command, bad, *rest, "--device", "cpu"], bad.name)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("content", ["pickle", "junk"])
def test_unsafe_training_state_is_one_line(content: str, tmp_path: Path) -> None:
    import torch

    from segcli.core.checkpoint import load_state
    from segcli.errors import CheckpointError

    class Evil:
        def __reduce__(self) -> tuple:
            return (os.getcwd, ())

    state = tmp_path / "state.pt"
    if content == "pickle":
        torch.save({"model": Evil()}, state)
    else:
        state.write_bytes(b"\x80\x04junk" * 10)
    with pytest.raises(CheckpointError) as info:
        load_state(state)
    msg = str(info.value)
    assert str(state) in msg and "\n" not in msg and "weights_only=False" not in msg


# ----------------------------------------------------------------------------------------- files written


# ----------------------------------------------------------------------------------------- prepare


@pytest.mark.parametrize("member", ["ok/../../evil.txt", "/tmp/segcli-evil.txt"])
def test_refused_tar_leaves_nothing_behind(member: str, tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    import io
    import tarfile

    archive = tmp_path / "VOCtrainval.tar"
    with tarfile.open(archive, "w") as tf:
        for name in ("VOCdevkit/VOC2012/ImageSets/Segmentation/train.txt", member):
            info = tarfile.TarInfo(name)
            info.size = 3
            tf.addfile(info, io.BytesIO(b"abc"))
    out = tmp_path / "out"
    user_error(capfd, ["prepare", "voc", archive, "--out", out], archive.name)
    assert not out.exists()


def test_force_with_fewer_samples_removes_the_stale_ones(tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    out = tmp_path / "shapes"
    base = ["prepare", "shapes", "--out", str(out), "--size", "32", "--val", "2", "--json"]
    assert run([*base, "--train", "6"]) == 0
    assert run([*base, "--train", "2", "--force"]) == 0
    capfd.readouterr()
    assert sorted(p.name for p in (out / "images" / "train").iterdir()) == ["train_00000.jpg", "train_00001.jpg"]
    assert sorted(p.name for p in (out / "masks" / "train").iterdir()) == ["train_00000.png", "train_00001.png"]


def test_interrupted_prepare_continues(tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    """A conversion stopped half-way (Ctrl-C, kill) goes on where it was when run again."""
    from segcli.data.prepare import prepare

    out = tmp_path / "shapes"
    calls = []

    def stop_after_three(n: int, total: int) -> None:
        calls.append(n)
        if len(calls) > 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        prepare("shapes", [], out, train=6, val=2, size=32, progress=stop_after_three)
    assert not (out / "dataset.toml").exists() and 0 < len(list((out / "images" / "train").iterdir())) < 6
    assert run(["prepare", "shapes", "--out", str(out), "--train", "6", "--val", "2", "--size", "32", "--json"]) == 0
    assert '"train": 6' in capfd.readouterr().out
    assert (out / "dataset.toml").is_file() and not (out / ".prepare-progress.json").exists()


# ----------------------------------------------------------------------------------------- infer re-runs


def test_infer_skip_existing_continues_a_stopped_run(
    weights: Path, data: Path, tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    out = tmp_path / "pred"
    val = data / "images" / "val"
    args = ["infer", str(weights), str(val), "--out", str(out), "--device", "cpu"]
    assert run([*args[:2], str(val / "val_00000.jpg"), *args[3:]]) == 0  # the run that "stopped" after one image
    (out / "overlays" / "val_00000.jpg").write_bytes(b"mine")  # and a file the user changed: kept
    capfd.readouterr()
    assert run([*args, "--skip-existing", "--json"]) == 0
    import json

    res = json.loads(capfd.readouterr().out)
    assert res["images"] == 7 and res["skipped"] == 1
    assert len(list((out / "masks").iterdir())) == 8 and len(list((out / "overlays").iterdir())) == 8
    assert (out / "overlays" / "val_00000.jpg").read_bytes() == b"mine"


def test_infer_overwrite_and_skip_existing_conflict(weights: Path, data: Path, tmp_path: Path, capfd) -> None:
    args = ["infer", weights, data / "images" / "val", "--out", tmp_path / "o", "--overwrite", "--skip-existing"]
    user_error(capfd, args, "--overwrite", "--skip-existing")


# ----------------------------------------------------------------------------------------- training


def test_sample_error_keeps_only_our_line_from_a_worker() -> None:
    """torch re-raises a worker's exception as ``type("Caught ... Original Traceback ...")``."""
    from torch._utils import ExceptionWrapper

    from segcli.data.datasets import SampleError

    try:
        raise SampleError("/d/masks/train/a.png: mask values [7] are not class ids 0..4 nor ignore_index 255")
    except SampleError:
        wrapped = ExceptionWrapper(where="in DataLoader worker process 0")
    with pytest.raises(SampleError) as info:
        wrapped.reraise()
    assert str(info.value) == "/d/masks/train/a.png: mask values [7] are not class ids 0..4 nor ignore_index 255"


TRAIN_DATA_CASES = ["mask value out of range", "zero-byte image", "size mismatch", "non-utf8 file name"]


@pytest.mark.parametrize("workers", [0, 1])
@pytest.mark.parametrize("case", TRAIN_DATA_CASES)
def test_train_bad_sample_the_precheck_missed(
    case: str, workers: int, data: Path, tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    """data.check_samples=0: nothing is read before training, so the dataset itself must name the file."""
    from conftest import TINY

    needle = DATA_CASES[case](data)  # spoils val, which then becomes train
    for kind in ("images", "masks"):
        (data / kind / "train").rename(data / kind / "old")
        (data / kind / "val").rename(data / kind / "train")
        (data / kind / "old").rename(data / kind / "val")
    args = [
        "train",
        "quickstart",
        *TINY,
        f"data.root={data}",
        f"train.out_dir={tmp_path / 'runs'}",
        "data.check_samples=0",
        f"data.num_workers={workers}",
        "model.pretrained=false",
        "train.epochs=1",
    ]
    user_error(capfd, args, needle, progress=True)


# ----------------------------------------------------------------------------------------- models and training


def _train_args(data: Path, tmp_path: Path, *extra: str) -> list[str]:
    from conftest import TINY

    return ["train", "quickstart", *TINY, f"data.root={data}", f"train.out_dir={tmp_path / 'runs'}", *extra]


def test_pretrained_weights_without_network(
    data: Path, tmp_path: Path, capfd: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("segcli.models.encoder._hub_reachable", lambda timeout=3.0: False)  # no network
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hub"))  # an empty hub cache
    user_error(capfd, _train_args(data, tmp_path, "model.pretrained=true"), "resnet18", "pretrained_file")
    assert not (tmp_path / "runs").exists()  # failed before any run directory was made


def test_eval_on_a_dataset_with_other_classes(weights: Path, data: Path, capfd: pytest.CaptureFixture) -> None:
    toml = data / "dataset.toml"
    toml.write_text(toml.read_text().replace('"circle"', '"disc"'))
    user_error(capfd, ["eval", weights, "--data", data], str(data), "classes", "differ")


def test_nan_loss_names_the_iteration_and_what_to_try(
    data: Path, tmp_path: Path, capfd: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    import segcli.train.trainer as trainer

    real = trainer.loss_from_preset

    def nan_loss(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202 - the real signature
        criterion = real(*args, **kwargs)

        class NaN(torch.nn.Module):
            def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
                return criterion(logits, target) * float("nan")

        return NaN()

    monkeypatch.setattr(trainer, "loss_from_preset", nan_loss)
    line = user_error(capfd, _train_args(data, tmp_path), "loss became nan", "iteration 1", code=1, progress=True)
    assert "train.amp=none" in line and "optim.lr" in line
