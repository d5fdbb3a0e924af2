"""The dataset format: dataset.toml, the sample listing, the index scanned once, and the validator."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import user_error
from data_helpers import make_toy_dataset

from segcli.data.datasets import TrainDataset
from segcli.data.format import read_dataset_info, validate_dataset
from segcli.data.io import write_mask
from segcli.data.transforms import Compose
from segcli.errors import DataError


def test_valid_dataset_round_trips(tmp_path: Path) -> None:
    root = make_toy_dataset(tmp_path / "d")
    info = validate_dataset(root, sample_masks=None)
    assert info.classes == ("c0", "c1", "c2") and info.ignore_index == 255
    assert len(info.palette) == 3 and info == read_dataset_info(root)


def test_missing_dataset_toml(tmp_path: Path) -> None:
    root = make_toy_dataset(tmp_path / "d")
    (root / "dataset.toml").unlink()
    with pytest.raises(DataError, match=r"dataset.toml: missing; .* is not a segcli dataset"):
        validate_dataset(root)
    with pytest.raises(DataError, match="dataset folder not found"):
        validate_dataset(tmp_path / "nowhere")


def test_image_without_mask_and_mask_without_image(tmp_path: Path) -> None:
    root = make_toy_dataset(tmp_path / "d")
    (root / "masks" / "train" / "1.png").unlink()
    with pytest.raises(DataError, match=r"1 image\(s\) have no mask, e.g. 1.png"):
        validate_dataset(root)
    root2 = make_toy_dataset(tmp_path / "e")
    (root2 / "images" / "val" / "2.png").unlink()
    with pytest.raises(DataError, match=r"1 mask\(s\) have no image, e.g. 2"):
        validate_dataset(root2)


def test_unknown_split(tmp_path: Path) -> None:
    root = make_toy_dataset(tmp_path / "d")
    with pytest.raises(DataError, match=r"split 'test' not found \(splits present: train, val\)"):
        validate_dataset(root, splits=["test"])


def test_out_of_range_values(tmp_path: Path) -> None:
    root = make_toy_dataset(tmp_path / "d")
    write_mask(root / "masks" / "train" / "0.png", np.full((16, 16), 7, np.uint8))
    with pytest.raises(DataError, match=r"0.png: mask values \[7\] are not class ids 0..2 nor ignore_index 255"):
        validate_dataset(root, sample_masks=None)


def test_bad_dataset_toml(tmp_path: Path) -> None:
    root = make_toy_dataset(tmp_path / "d")
    (root / "dataset.toml").write_text('classes = ["a", "a"]\n')
    with pytest.raises(DataError, match="duplicate names: a"):
        read_dataset_info(root)
    (root / "dataset.toml").write_text('classes = ["a", "b"]\nignore_index = 1\n')
    with pytest.raises(DataError, match=r"'ignore_index' = 1 must be an integer >= number of classes"):
        read_dataset_info(root)
    (root / "dataset.toml").write_text('classes = ["a", "b"]\npalette = [[0, 0, 0]]\n')
    with pytest.raises(DataError, match="'palette' must list one"):
        read_dataset_info(root)
    (root / "dataset.toml").write_text("classes = [\n")
    with pytest.raises(DataError, match="invalid TOML"):
        read_dataset_info(root)


def test_index_scans_once_and_feeds_every_reader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import segcli.data.format as fmt
    from segcli.data.datasets import EvalDataset
    from segcli.data.lint import quick_lint
    from segcli.data.stats import dataset_summary

    root = make_toy_dataset(tmp_path / "d", n=4)
    listed: list[str] = []
    real_list = fmt.list_samples
    monkeypatch.setattr(fmt, "list_samples", lambda r, s: listed.append(s) or real_list(r, s))
    index = fmt.DatasetIndex.scan(root, ["train", "val"])
    assert listed == ["train", "val"] and index.names == ["train", "val"]
    assert [p.name for p, _ in index.pairs("val")] == ["0.png", "1.png", "2.png", "3.png"]

    def no_rescan(*_a: object, **_k: object) -> None:
        raise AssertionError("the dataset was scanned or dataset.toml parsed again")

    monkeypatch.setattr(fmt, "list_samples", no_rescan)
    monkeypatch.setattr(fmt, "read_dataset_info", no_rescan)
    monkeypatch.setattr(fmt, "list_splits", no_rescan)
    assert validate_dataset(index, splits=["train"], sample_masks=None).name == "toy"
    assert quick_lint(index, ["train", "val"], sample=2) == []
    assert len(TrainDataset(index, "train", Compose([]))) == 4 and len(EvalDataset(index, "val")) == 4
    summary = dataset_summary(index)
    assert summary["images"] == {"train": 4, "val": 4} and abs(sum(summary["pixel_share"].values()) - 1) < 1e-9
    with pytest.raises(DataError, match=r"split 'test' not found \(splits present: train, val\)"):
        TrainDataset(index, "test", Compose([]))


OPTION_CASES: dict[str, tuple[Callable[[Path, Path, Path], list], tuple[str, ...]]] = {
    "eval split missing": (lambda w, d, t: ["eval", w, "--data", d, "--split", "tset"], ("tset",)),
}


@pytest.mark.parametrize("case", list(OPTION_CASES))
def test_bad_option(case: str, weights: Path, data: Path, tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    make, needles = OPTION_CASES[case]
    user_error(capfd, make(weights, data, tmp_path), *needles)


def test_channel_keys_of_dataset_toml_are_checked(tmp_path: Path) -> None:
    make_toy_dataset(tmp_path)
    toml = tmp_path / "dataset.toml"
    base = toml.read_text()
    for extra, problem in [
        ("channels = 0\n", "'channels' = 0 must be an integer from 1 to 64"),
        ('extra_channels = ["a/b"]\n', "'extra_channels' must list folder names"),
        ("channels = 4\nmean = [0.5, 0.5, 0.5]\n", "'mean' must list 4 numbers"),
    ]:
        toml.write_text(base + extra)
        with pytest.raises(DataError, match=problem):
            read_dataset_info(tmp_path)


def test_channel_count_extra_folders_and_recorded_statistics(tmp_path: Path) -> None:
    from segcli.data.format import DatasetIndex, extra_channel_files, write_channel_stats

    make_toy_dataset(tmp_path)
    index = DatasetIndex.scan(tmp_path)
    assert index.info.channels == 3 and not index.info.states_channels
    assert index.with_channels(4, "data.channels =").info.channels == 4  # not stated: the reader's count
    write_channel_stats(tmp_path, 4, (0.1, 0.2, 0.3, 0.4), (0.5, 0.5, 0.5, 0.5))
    info = read_dataset_info(tmp_path)
    assert (info.channels, info.extra["mean"], info.classes) == (4, [0.1, 0.2, 0.3, 0.4], ("c0", "c1", "c2"))
    with pytest.raises(DataError, match=r"dataset.toml: the dataset has 4-channel images .* but the model takes 3"):
        DatasetIndex.scan(tmp_path).with_channels(3, "the model takes")
    toml = tmp_path / "dataset.toml"
    toml.write_text(toml.read_text() + 'extra_channels = ["nir"]\n')
    image = tmp_path / "images" / "train" / "0.png"
    with pytest.raises(DataError, match=r"nir/train/0.\*: extra channel 'nir' of 0.png not found"):
        extra_channel_files(image, read_dataset_info(tmp_path))
    write_mask(tmp_path / "nir" / "train" / "0.png", np.zeros((16, 16), np.uint8))
    assert extra_channel_files(image, read_dataset_info(tmp_path)) == [tmp_path / "nir" / "train" / "0.png"]
