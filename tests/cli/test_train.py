"""`seg train`: the preset loaded once and handed to the engine, --resume/--extend, --budget, --devices, the
console progress, and a tiny run end to end (then evaluated and used for prediction)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from cli_helpers import run_json, user_error
from safetensors import safe_open

from segcli.cli.app import run
from segcli.data.io import read_mask


@pytest.mark.slow
def test_train_eval_infer(
    tmp_path: Path, tiny_overrides: list[str], shapes_root: Path, capsys: pytest.CaptureFixture
) -> None:
    res = run_json(capsys, ["train", "quickstart", *tiny_overrides])
    run_dir = Path(res["run_dir"])
    assert run_dir.parent.name == "quickstart" and run_dir.name == "1"
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2] and all(0 <= float(r["mIoU"]) <= 1 for r in rows)
    for f in ("preset.toml", "weights/last.safetensors", "weights/best.safetensors", "state.pt", "log.txt"):
        assert (run_dir / f).is_file(), f
    with safe_open(str(run_dir / "weights" / "best.safetensors"), "pt") as f:
        meta = f.metadata()
    assert json.loads(meta["classes"])[0] == "background" and "[model]" in meta["preset"]
    assert json.loads(meta["palette"])[1] == [230, 25, 75]

    # a second run never overwrites the first
    res2 = run_json(capsys, ["train", "quickstart", *tiny_overrides, "train.epochs=1"])
    assert Path(res2["run_dir"]).name == "2"

    ev = run_json(capsys, ["eval", str(run_dir), "--data", str(shapes_root)])
    assert ev["images"] == 8 and 0 <= ev["mIoU"] <= 1 and len(ev["per_class"]) == 5
    assert ev["per_class"][0]["class"] == "background"
    assert Path(ev["report"]).is_file() and Path(ev["report"]).parent == run_dir / "eval"
    assert json.loads(Path(ev["report"]).read_text())["mIoU"] == ev["mIoU"]
    # the table form prints the conventions
    assert run(["eval", str(run_dir / "weights" / "last.safetensors"), "--data", str(shapes_root)]) == 0
    assert "ignore_index" in capsys.readouterr().out

    out_dir = tmp_path / "pred"
    inf = run_json(capsys, ["infer", str(run_dir), str(shapes_root / "images" / "val"), "--out", str(out_dir)])
    assert inf["images"] == 8
    mask = read_mask(out_dir / "masks" / "val_00000.png")
    assert mask.shape == (48, 48) and mask.max() < 5
    assert (out_dir / "overlays" / "val_00000.jpg").is_file()
    # refusing to overwrite is a user error
    capsys.readouterr()
    assert (
        run(["infer", str(run_dir), str(shapes_root / "images" / "val" / "val_00001.jpg"), "--out", str(out_dir)]) == 2
    )
    err = capsys.readouterr().err
    assert "--overwrite" in err and "Traceback" not in err
    # glob input
    assert (
        run(
            [
                "infer",
                str(run_dir),
                str(shapes_root / "images" / "val" / "val_0000[01].jpg"),
                "--out",
                str(tmp_path / "p2"),
            ]
        )
        == 0
    )
    assert sorted(p.name for p in (tmp_path / "p2" / "masks").iterdir()) == ["val_00000.png", "val_00001.png"]


def test_train_passes_preset_and_overrides(calls: list, capsys: pytest.CaptureFixture) -> None:
    assert run(["train", "quickstart", "train.epochs=3", "optim.lr=0.1", "--json"]) == 0
    ((name, args, kwargs),) = calls
    (loaded,) = args  # the preset, loaded and validated once by the command, with its overrides applied
    assert name == "train" and loaded.stem == "quickstart"
    assert loaded.preset.train.epochs == 3 and loaded.preset.optim.lr == 0.1
    assert kwargs.get("resume") is None and len(kwargs["callbacks"]) == 1


def test_train_resume_takes_no_preset(calls: list, tmp_path: Path) -> None:
    assert run(["train", "--resume", str(tmp_path), "--json"]) == 0
    ((_, args, kwargs),) = calls
    assert args == (None, []) and kwargs["resume"] == tmp_path and kwargs["extend"] == []


def test_train_resume_extend_is_repeatable(calls: list, tmp_path: Path) -> None:
    argv = ["train", "--resume", str(tmp_path), "--extend", "train.epochs=5", "--extend", "train.iters=9", "--json"]
    assert run(argv) == 0
    ((_, _, kwargs),) = calls
    assert kwargs["extend"] == ["train.epochs=5", "train.iters=9"]


def test_train_devices_option_hands_the_same_arguments_to_the_launcher(monkeypatch) -> None:  # noqa: ANN001
    from typer.testing import CliRunner

    from segcli.cli.app import app
    from segcli.core import distributed

    seen = {}
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setattr(distributed, "launch", lambda n, args: seen.update(n=n, args=args) or 0)
    res = CliRunner().invoke(app, ["train", "quickstart", "train.epochs=1", "--devices", "3", "--json"])
    assert res.exit_code == 0, res.output
    assert seen == {"n": 3, "args": ["train", "quickstart", "train.epochs=1", "--json"]}


def test_train_with_resume_and_a_word_takes_it_as_an_override(calls: list, tmp_path: Path) -> None:
    assert run(["train", "--resume", str(tmp_path), "train.epochs=3", "--json"]) == 0
    ((_, args, kwargs),) = calls
    assert args == (None, ["train.epochs=3"]) and kwargs["resume"] == tmp_path


def test_budget_asks_for_the_auto_recipe(calls: list) -> None:
    assert run(["train", "quickstart", "--budget", "15m", "--json"]) == 0
    ((_, (loaded,), _),) = calls
    assert loaded.preset.train.time_budget == "15m" and loaded.preset.train.auto is True


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["train", "--json"], ("give a preset", "--resume RUN_DIR")),
        (["train", "--resume", "runs/x/1", "--budget", "15m"], ("--budget starts a new run", "--extend")),
    ],
)
def test_contradicting_or_missing_arguments(
    args: list[str], needles: tuple[str, ...], calls: list, capfd: pytest.CaptureFixture
) -> None:
    user_error(capfd, args, *needles)
    assert calls == []


def test_table_output_names_the_run(calls: list, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert run(["train", "quickstart"]) == 0
    out = capsys.readouterr().out
    assert "validation (best epoch 1, last epoch 1)" in out and "mIoU" in out and "0.5000" in out
    assert f"run directory: {tmp_path / 'runs' / 'x' / '1'}" in out
    assert "report:" not in out  # the fake run wrote no report.html


def test_an_interrupted_run_prints_the_hint_and_exits_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import segcli.train.trainer as trainer
    from segcli.errors import TrainingInterrupted

    def stopped(*args: object, **kwargs: object) -> None:
        raise TrainingInterrupted("interrupted after epoch 3; continue with seg train --resume runs/x/1")

    monkeypatch.setattr(trainer, "train", stopped)
    assert run(["train", "quickstart"]) == 130
    err = capsys.readouterr().err
    assert err.strip() == "interrupted after epoch 3; continue with seg train --resume runs/x/1"


def _start(path: Path):  # noqa: ANN202 - a RunStart
    from segcli.core.callbacks import RunStart
    from segcli.core.rundir import RunDir

    return RunStart(RunDir(path), epochs=4, iters_per_epoch=3, first_epoch=0, log_every=1)


def test_console_progress_as_plain_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from segcli.cli.train import RichProgress

    monkeypatch.delenv("RANK", raising=False)
    reporter = RichProgress(live=False)
    reporter.on_train_start(_start(tmp_path))
    reporter.on_epoch_end(1, {"train_loss": 0.25, "mIoU": 0.5, "pixel_accuracy": float("nan"), "seconds": 2.0}, True)
    reporter.on_epoch_end(2, {"train_loss": 0.2, "seconds": 2.0}, False)  # no validation: no line
    reporter.on_message("saved")
    reporter.stop()
    err = capsys.readouterr().err
    assert f"run directory: {tmp_path}" in err
    assert "epoch 2/4: loss 0.2500  val mIoU 0.5000  pixel acc nan  (2.0s)" in err
    assert "epoch 3/4" not in err and err.rstrip().endswith("saved")


def test_console_progress_is_quiet_off_rank_0(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from segcli.cli.train import RichProgress

    monkeypatch.setenv("RANK", "1")
    reporter = RichProgress(live=False)
    reporter.on_train_start(_start(tmp_path))
    reporter.on_message("saved")
    reporter.stop()
    assert reporter.quiet and capsys.readouterr().err == ""


def test_live_progress_counts_iterations_and_shows_the_loss_terms(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    from segcli.cli.train import RichProgress
    from segcli.core.callbacks import IterStats, RunStart
    from segcli.core.rundir import RunDir

    monkeypatch.delenv("RANK", raising=False)
    reporter = RichProgress(live=True)
    reporter.on_train_start(RunStart(RunDir(tmp_path), epochs=4, iters_per_epoch=3, first_epoch=1, first_iter=1))
    task = reporter.progress.tasks[0]
    assert (task.total, task.completed, task.fields["epoch"], task.fields["loss"]) == (12, 4, 2, "-")  # resumed
    reporter.on_iter_stats(IterStats(1, 1, 3, loss=0.5, lr=0.01, images_per_s=10.0, terms={"ce": 0.4}))
    task = reporter.progress.tasks[0]
    assert task.completed == 5 and task.fields["it"] == 2
    assert task.fields["loss"] == "0.5000 (mean 0.5000) ce 0.400" and task.fields["lr"] == "1.00e-02"
    reporter.stop()
    assert reporter.progress is None
    reporter.stop()  # twice is harmless (the command stops it in a finally)


def test_a_time_budgeted_run_has_no_total(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    from segcli.cli.train import RichProgress
    from segcli.core.callbacks import RunStart
    from segcli.core.rundir import RunDir

    monkeypatch.delenv("RANK", raising=False)
    reporter = RichProgress(live=True)
    reporter.on_train_start(RunStart(RunDir(tmp_path), epochs=0, iters_per_epoch=3, first_epoch=0))
    task = reporter.progress.tasks[0]
    reporter.stop()
    assert task.total is None and task.fields["epochs"] == "?" and task.fields["epoch"] == 1


def test_common_flags_set_their_preset_keys(calls: list, capsys: pytest.CaptureFixture) -> None:
    argv = ["train", "quickstart", "--epochs", "3", "--device", "cpu", "--batch-size", "2", "--name", "mine"]
    assert run([*argv, "--data", "data/mine", "--json"]) == 0
    ((_, (loaded,), _),) = calls
    t, d = loaded.preset.train, loaded.preset.data
    assert (t.epochs, t.device, d.batch_size, t.name, d.root) == (3, "cpu", 2, "mine", "data/mine")


def test_a_flag_wins_over_the_same_key_given_as_an_override(calls: list) -> None:
    assert run(["train", "quickstart", "train.epochs=5", "--epochs", "2", "--json"]) == 0
    ((_, (loaded,), _),) = calls
    assert loaded.preset.train.epochs == 2


def test_bare_keys_are_read_with_a_note(calls: list, capsys: pytest.CaptureFixture) -> None:
    assert run(["train", "quickstart", "epochs=3", "batch_size=4", "imgsz=96", "--json"]) == 0
    ((_, (loaded,), _),) = calls
    p = loaded.preset
    assert (p.train.epochs, p.data.batch_size, p.augment.crop_size) == (3, 4, (96, 96))
    err = capsys.readouterr().err
    assert "note: epochs=3 read as train.epochs=3" in err
    assert "note: imgsz=96 read as augment.crop_size=[96, 96]" in err


def test_own_data_without_a_name_says_where_the_run_goes(calls: list, capsys: pytest.CaptureFixture) -> None:
    assert run(["train", "quickstart", "--data", "data/mine", "--json"]) == 0
    assert "runs without a name go to runs/quickstart/N; --name NAME" in capsys.readouterr().err
    assert run(["train", "quickstart", "--data", "data/mine", "--name", "mine", "--json"]) == 0
    assert "without a name" not in capsys.readouterr().err


def test_common_flags_are_refused_with_resume(calls: list, tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    user_error(capfd, ["train", "--resume", str(tmp_path), "--epochs", "9"], "--epochs", "--extend train.epochs=N")
    assert calls == []


def test_unknown_bare_key_suggests_the_full_key(calls: list, capfd: pytest.CaptureFixture) -> None:
    user_error(capfd, ["train", "quickstart", "epoch=1"], 'did you mean "train.epochs"')
    user_error(capfd, ["train", "quickstart", "data.batch=4"], 'did you mean "data.batch_size"')


def test_live_progress_has_a_validation_bar(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    from segcli.cli.train import RichProgress, TrainFields
    from segcli.core.callbacks import IterStats, RunStart
    from segcli.core.rundir import RunDir

    monkeypatch.delenv("RANK", raising=False)
    reporter = RichProgress(live=True)
    reporter.on_train_start(RunStart(RunDir(tmp_path), epochs=2, iters_per_epoch=3, first_epoch=0))
    reporter.on_iter_stats(IterStats(0, 2, 3, loss=0.5, lr=0.01, images_per_s=10.0, loss_mean=0.6, losses=(0.5,)))
    train_task = reporter.progress.tasks[0]
    assert train_task.description == "epoch 1/2 it 3/3" and train_task.fields["loss"] == "0.5000 (mean 0.6000)"
    assert str(TrainFields().render(train_task)).startswith("loss 0.5000 (mean 0.6000) lr 1.00e-02")
    reporter.on_val_progress(0, 8)
    reporter.on_val_progress(4, 8)
    val = reporter.progress.tasks[1]
    assert (val.description, val.completed, val.total) == ("validating 4/8 images", 4, 8)
    assert str(TrainFields().render(val)) == ""
    reporter.on_val_progress(8, 8)  # done: the bar goes, the training bar stays
    assert len(reporter.progress.tasks) == 1 and reporter.val_task is None
    reporter.stop()
