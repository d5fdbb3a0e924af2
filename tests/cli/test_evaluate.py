"""`seg eval`: the options handed to the engine, the tables printed, and a bad dataset as one red line whether
the samples are read in this process or in a DataLoader worker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from cli_helpers import DATA_CASES, user_error

from segcli.cli.app import run

pytestmark = pytest.mark.filterwarnings("ignore")


def test_eval_passes_options(calls: list) -> None:
    argv = [
        "eval",
        "runs/x",
        "--data",
        "d",
        "--split",
        "test",
        "--amp",
        "auto",
        "--absent",
        "zero",
        "--batch-size",
        "2",
        "--boundary-tolerance",
        "3",
    ]
    assert run([*argv, "--json"]) == 0
    ((name, args, kwargs),) = calls
    assert name == "evaluate" and args == (Path("runs/x"), Path("d"), "test")
    protocol, options = kwargs["protocol"], kwargs["options"]  # the protocol's choices and the other options
    assert protocol.amp == "auto" and options.absent == "zero" and protocol.batch_size == 2
    assert options.boundary_tolerance == 3
    assert kwargs["device"] == "auto" and options.workers == "auto"


def test_eval_defaults_leave_every_choice_to_the_checkpoint(calls: list) -> None:
    assert run(["eval", "runs/x", "--weights", "ema", "--worst", "3", "--out", "r.json", "--json"]) == 0
    ((_, args, kwargs),) = calls
    assert args == (Path("runs/x"), None, "val")
    options, protocol = kwargs["options"], kwargs["protocol"]
    assert options.weights == "ema" and options.worst == 3 and options.out == Path("r.json")
    assert options.absent is None and protocol.amp is None and protocol.batch_size is None and protocol.tta is None


def _fake_evaluate(monkeypatch: pytest.MonkeyPatch, rank: int = 0) -> None:
    import segcli.infer.evaluator as evaluator
    from segcli.metrics import metrics_from_confusion

    metrics: dict[str, Any] = metrics_from_confusion(torch.tensor([[6, 2], [1, 3]]), class_names=["bg", "road"])
    metrics.update(images=3, protocol="whole image", worst=[{"image": "val/a.png", "mIoU": 0.25, "overlay": "a.jpg"}])

    def fake(*args: Any, **kwargs: Any) -> evaluator.EvalResult:
        return evaluator.EvalResult(metrics, Path("w"), Path("d"), "val", Path("runs/x/eval/val.json"), 0.1, rank)

    monkeypatch.setattr(evaluator, "evaluate", fake)


def test_eval_prints_the_metrics_per_class_and_the_worst_images(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    _fake_evaluate(monkeypatch)
    assert run(["eval", "runs/x"]) == 0
    out = capsys.readouterr().out
    assert "val: 3 images, 12 labelled pixels" in out
    assert "pixel accuracy" in out and "0.7500" in out  # 9 of 12 pixels right
    assert "road" in out and "worst 1 images" in out and "val/a.png" in out
    assert "protocol: whole image" in out and "conventions: pooled over the split" in out
    assert "report: runs/x/eval/val.json" in out


def test_eval_off_rank_0_prints_nothing(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    _fake_evaluate(monkeypatch, rank=1)
    assert run(["eval", "runs/x"]) == 0
    assert run(["eval", "runs/x", "--json"]) == 0
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("workers", [0, 1])
@pytest.mark.parametrize("case", list(DATA_CASES))
def test_eval_bad_dataset(
    case: str, workers: int, data: Path, weights: Path, tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    """Evaluation reads every sample, in the main process or in a DataLoader worker: one line either way."""
    needle = DATA_CASES[case](data)
    report = tmp_path / "report"
    args = ["eval", weights, "--data", data, "--device", "cpu", "--workers", workers, "--out", report]
    user_error(capfd, args, needle, progress=True)
    assert not report.exists()


def _weights_trained_on(data: Path, out: Path) -> Path:
    """Untrained tiny weights saved as a run trained on ``data`` from its parent's parent would store them:
    data.root = "data/shapes" (relative, as the quickstart preset has it) and the data's fingerprint."""
    from segcli.config.load import load_preset
    from segcli.core.checkpoint import save_weights
    from segcli.core.factory import model_from_preset
    from segcli.data.format import DataFingerprint, DatasetIndex

    over = ["model.backbone=resnet18", "model.decoder_channels=16", "model.pretrained=false", "eval.size=[]"]
    preset = load_preset("quickstart", [*over, "data.root=data/shapes"]).preset
    index = DatasetIndex.scan(data, ["train", "val"])
    model = model_from_preset(preset.model, index.info.num_classes)
    return save_weights(out, model, preset, index.info, data=DataFingerprint.of(index))


def test_eval_of_a_run_scores_the_data_it_trained_on(
    shapes_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture
) -> None:
    """Reported: a run stores data.root = "data/shapes" relative to where it trained; from another folder with its
    own data/shapes, seg eval scored those 8 images instead of the run's 100 and said nothing."""
    import shutil

    from segcli.data.prepare.shapes import prepare_shapes

    trained_data = tmp_path / "a" / "data" / "shapes"
    shutil.copytree(shapes_root, trained_data)  # 16 train, 8 val
    weights = _weights_trained_on(trained_data, tmp_path / "w.safetensors")
    other = tmp_path / "b"
    prepare_shapes(other / "data" / "shapes", train=4, val=4, size=48, seed=2)
    monkeypatch.chdir(other)
    report = ["--out", tmp_path / "reports"]

    assert run(["eval", str(weights), *report]) == 0  # data/shapes here is not it: the stored folder is used
    assert f"data: {trained_data.resolve()} (8 images)" in capfd.readouterr().out

    shutil.rmtree(tmp_path / "a")  # the trained-on data is gone: the other data is refused, --data named
    user_error(capfd, ["eval", weights, *report], "not the data this model trained on", "val has 4 images, not 8",
               "--data data/shapes")  # fmt: skip
    assert run(["eval", str(weights), "--data", "data/shapes", *report]) == 0  # asked for: scored
    assert f"data: {(other / 'data' / 'shapes').resolve()} (4 images)" in capfd.readouterr().out
    monkeypatch.chdir(tmp_path)
    user_error(capfd, ["eval", weights, *report], "the data this model trained on is gone", "--data")
