"""Torch datasets over the segcli format: worker counts, loader workers, the RAM cache, train and eval samples."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from cli_helpers import DATA_CASES, user_error
from data_helpers import make_toy_dataset
from torch.utils.data import DataLoader, Dataset

from segcli.data import datasets
from segcli.data.datasets import (
    EvalDataset,
    SampleError,
    TrainDataset,
    cache_bytes,
    decode_all,
    eval_collate,
    image_to_tensor,
    resolve_workers,
)
from segcli.data.format import read_dataset_info
from segcli.data.io import read_image, read_mask, write_image, write_mask
from segcli.data.transforms import Compose
from segcli.errors import DataError
from segcli.train.trainer import loader_options


@pytest.mark.parametrize(
    ("cores", "per_node", "value", "expected"),
    [(2, 1, "auto", 1), (1, 1, "auto", 0), (16, 2, "auto", 7), (3, 4, "auto", 0), (2, 1, 5, 5), (8, 1, 0, 0)],
)
def test_auto_workers_leave_a_core_for_the_training_process(
    monkeypatch: pytest.MonkeyPatch, cores: int, per_node: int, value: int | str, expected: int
) -> None:
    monkeypatch.setattr(datasets, "usable_cores", lambda: cores)
    assert datasets.resolve_workers(value, per_node) == expected


class _Threads(Dataset):
    def __len__(self) -> int:
        return 1

    def __getitem__(self, i: int) -> tuple[int, int]:
        return cv2.getNumThreads(), torch.get_num_threads()


def test_workers_run_opencv_and_torch_single_threaded() -> None:
    loader = DataLoader(_Threads(), batch_size=None, **loader_options(1, pin=False))
    cv_threads, torch_threads = next(iter(loader))
    assert cv_threads <= 1 and torch_threads == 1


def test_size_mismatch_is_reported(tmp_path: Path) -> None:
    root = make_toy_dataset(tmp_path / "d")
    write_mask(root / "masks" / "train" / "0.png", np.zeros((8, 8), np.uint8))
    ds = TrainDataset(root, "train", Compose([]))
    with pytest.raises(DataError, match=r"0.png: mask is 8x8 but its image 0.png is 16x16"):
        ds[0]


def test_usable_cores_is_the_affinity_share(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(datasets.os, "sched_getaffinity", lambda _pid: {0, 3, 5}, raising=False)
    assert datasets.usable_cores() == 3
    monkeypatch.delattr(datasets.os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(datasets.os, "cpu_count", lambda: 6)
    assert datasets.usable_cores() == 6


def test_auto_workers_with_a_zero_process_count_take_the_whole_share(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(datasets, "usable_cores", lambda: 4)
    assert resolve_workers("auto", 0) == 3
    assert resolve_workers("2") == 2


def test_train_dataset_yields_the_files_as_tensors_and_the_cache_gives_the_same(tmp_path: Path) -> None:
    root = make_toy_dataset(tmp_path / "d", n=2)
    ds = TrainDataset(root, "train", Compose([]))
    assert len(ds) == 2
    image, mask = ds[1]
    assert image.dtype == torch.uint8 and image.shape == (3, 16, 16)
    assert mask.dtype == torch.int64 and mask.shape == (16, 16)
    assert torch.equal(image, image_to_tensor(read_image(root / "images" / "train" / "1.png")))
    assert torch.equal(mask, torch.from_numpy(read_mask(root / "masks" / "train" / "1.png").astype(np.int64)))
    cache = decode_all(ds.samples, ds.info, threads=2)
    assert len(cache) == 2 and cache_bytes(cache) == 2 * (16 * 16 * 3 + 16 * 16)
    cached = TrainDataset(root, "train", Compose([]), cache)
    for key in (0, (1, 7)):
        assert all(torch.equal(a, b) for a, b in zip(ds[key], cached[key]))
    # With a cache the files are not read again.
    first = ds[0][0]
    (root / "images" / "train" / "0.png").unlink()
    assert torch.equal(cached[0][0], first)
    with pytest.raises(SampleError, match=r"0\.png"):
        ds[0]


def test_train_dataset_seed_drives_the_augmentation(tmp_path: Path) -> None:
    root = make_toy_dataset(tmp_path / "d", n=1)

    def noise(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        return np.full_like(image, rng.integers(0, 256)), mask

    ds = TrainDataset(root, "train", Compose([noise]))
    assert torch.equal(ds[(0, 3)][0], ds[(0, 3)][0])
    assert {int(ds[(0, s)][0][0, 0, 0]) for s in range(8)} != {int(ds[(0, 0)][0][0, 0, 0])}
    assert torch.equal(ds[0][0], ds[(0, 0)][0])  # a bare index is its own seed


def test_bad_mask_values_are_a_sample_error_naming_the_file(tmp_path: Path) -> None:
    root = make_toy_dataset(tmp_path / "d", n=1)
    write_mask(root / "masks" / "val" / "0.png", np.full((16, 16), 9, np.uint8))
    with pytest.raises(SampleError, match=r"0\.png: mask values \[9\] are not class ids 0..2") as e:
        EvalDataset(root, "val")[0]
    assert isinstance(e.value, DataError) and "\n" not in str(e.value)


def test_unreadable_image_is_one_line_naming_image_and_mask(tmp_path: Path) -> None:
    root = make_toy_dataset(tmp_path / "d", n=1)
    (root / "images" / "train" / "0.png").write_bytes(b"not a png at all")
    with pytest.raises(SampleError) as e:
        TrainDataset(root, "train", Compose([]))[0]
    msg = str(e.value)
    assert "0.png" in msg and "\n" not in msg


def test_sample_error_rebuilt_by_a_loader_worker_keeps_our_line() -> None:
    ours = "/d/masks/train/a.png: mask values [7] are not class ids 0..4"
    wrapped = (
        "Caught SampleError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
        f'  File "x.py", line 1, in f\nsegcli.data.datasets.SampleError: {ours}\n'
    )
    assert str(SampleError(wrapped)) == ours
    assert str(SampleError("plain message")) == "plain message"
    odd = "Caught SampleError in DataLoader worker process 0.\nOriginal Traceback: nothing of ours"
    assert str(SampleError(odd)) == odd


def test_eval_dataset_resizes_the_image_only(tmp_path: Path) -> None:
    root = make_toy_dataset(tmp_path / "d", n=2, size=16)
    image, mask = EvalDataset(root, "val", size=(8, 12))[0]
    assert image.shape == (3, 8, 12) and mask.shape == (16, 16)
    image, mask = EvalDataset(root, "val", keep_ratio=(32, 24))[1]
    assert image.shape == (3, 24, 24) and mask.shape == (16, 16)
    image, _ = EvalDataset(root, "val")[0]
    assert torch.equal(image, image_to_tensor(read_image(root / "images" / "val" / "0.png")))


def test_eval_collate_stacks_same_sizes_and_lists_mixed_ones() -> None:
    a = (torch.zeros(3, 4, 4, dtype=torch.uint8), torch.zeros(4, 4, dtype=torch.int64))
    b = (torch.ones(3, 4, 4, dtype=torch.uint8), torch.ones(4, 4, dtype=torch.int64))
    c = (torch.ones(3, 6, 4, dtype=torch.uint8), torch.ones(6, 4, dtype=torch.int64))
    images, masks = eval_collate([a, b])
    assert isinstance(images, torch.Tensor) and images.shape == (2, 3, 4, 4) and isinstance(masks, list)
    images, masks = eval_collate([a, c])
    assert isinstance(images, list) and [m.shape for m in masks] == [(4, 4), (6, 4)]


def test_image_to_tensor_is_channels_first() -> None:
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    t = image_to_tensor(rgb)
    assert t.shape == (3, 2, 3) and t.dtype == torch.uint8 and int(t[2, 1, 0]) == int(rgb[1, 0, 2])


def test_datasets_read_an_index_without_rescanning(tmp_path: Path) -> None:
    from segcli.data.format import DatasetIndex

    root = make_toy_dataset(tmp_path / "d", n=2)
    index = DatasetIndex.scan(root, ["train"])
    write_image(root / "images" / "train" / "9.png", np.zeros((16, 16, 3), np.uint8))  # added after the scan
    write_mask(root / "masks" / "train" / "9.png", np.zeros((16, 16), np.uint8))
    assert len(TrainDataset(index, "train", Compose([]))) == 2 and len(TrainDataset(root, "train", Compose([]))) == 3
    assert TrainDataset(index, "train", Compose([])).info == read_dataset_info(root)


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


@pytest.mark.filterwarnings("ignore")
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


def test_n_channel_samples_from_tiffs_and_extra_channel_folders(tmp_path: Path) -> None:
    """data.channels = 4 from 4-channel TIFFs, or from RGB images plus a ``nir/`` folder: (4, H, W) tensors; a
    file with another count is one line naming it."""
    pytest.importorskip("tifffile")
    from data_helpers import make_tiff_dataset

    root = make_tiff_dataset(tmp_path / "tiff", train=2, val=1, size=16)
    x, m = TrainDataset(root, "train", Compose([]), channels=4)[0]
    assert x.shape == (4, 16, 16) and x.dtype == torch.float32 and m.shape == (16, 16)
    x, _ = EvalDataset(root, "val", size=(8, 8), channels=4)[0]
    assert x.shape == (4, 8, 8)
    with pytest.raises(DataError, match="the dataset has 4-channel images .* but the model takes 3"):
        EvalDataset(root, "val", channels=3)
    rgb = make_toy_dataset(tmp_path / "rgb", n=2)
    (rgb / "dataset.toml").write_text((rgb / "dataset.toml").read_text() + 'extra_channels = ["nir"]\n')
    for split in ("train", "val"):
        for i in range(2):
            write_mask(rgb / "nir" / split / f"{i}.png", np.full((16, 16), 7 * i, np.uint8))
    x, _ = TrainDataset(rgb, "train", Compose([]), channels=4)[1]
    assert x.shape == (4, 16, 16) and x.dtype == torch.uint8 and int(x[3].max()) == 7
    with pytest.raises(SampleError, match=r"images/train/0.png: image has 4 channels with its 1 extra-channel"):
        TrainDataset(rgb, "train", Compose([]), channels=5)[0]
