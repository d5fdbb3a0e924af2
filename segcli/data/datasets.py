"""Torch datasets over the segcli format, and a sampler that makes augmentation reproducible."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from segcli.data.format import DatasetIndex, DatasetInfo, as_index, check_mask_values, extra_channel_files
from segcli.data.io import read_image, read_mask
from segcli.data.transforms import Compose, inference_size, resize_pair
from segcli.errors import DataError

Pair = tuple[np.ndarray, np.ndarray]


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, e.g. a container's or taskset's share)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def resolve_workers(value: int | str, processes_per_node: int = 1) -> int:
    """``data.num_workers``: a number as given, or ``"auto"``: this process's share of the usable cores,
    less one for the process itself (so 0 on a one-core share, 1 on two cores)."""
    if value != "auto":
        return int(value)
    return max(usable_cores() // max(processes_per_node, 1) - 1, 0)


def worker_init(_: int) -> None:
    """In each loader worker: one thread for OpenCV and torch (the workers are the parallelism;
    nested thread pools would oversubscribe the cores)."""
    cv2.setNumThreads(0)
    torch.set_num_threads(1)


def decode_all(samples: list[tuple[Path, Path]], info: DatasetInfo, threads: int) -> list[Pair]:
    """Every sample decoded (in ``threads`` threads: OpenCV releases the GIL), for ``data.cache = "ram"``."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max(threads, 1)) as pool:
        return list(pool.map(lambda s: _load_pair(*s, info), samples))


def cache_bytes(pairs: list[Pair]) -> int:
    return sum(im.nbytes + m.nbytes for im, m in pairs)


class SampleError(DataError):
    """A sample that cannot be loaded; its message is one line naming the file.

    A DataLoader worker's exception reaches the main process re-built by torch as
    ``SampleError("Caught SampleError in DataLoader worker process N.\\nOriginal Traceback ...")``;
    the constructor keeps only our own line from that text, so the CLI still prints one line.
    """

    def __init__(self, message: str) -> None:
        if message.startswith("Caught ") and "\nOriginal Traceback" in message:
            prefix = f"{type(self).__name__}: "
            ours = [line for line in message.splitlines() if prefix in line and not line.startswith("Caught ")]
            if ours:
                message = ours[-1].split(prefix, 1)[1]
        super().__init__(message)


def _load_pair(image_path: Path, mask_path: Path, info: DatasetInfo) -> tuple[np.ndarray, np.ndarray]:
    """The sample's image (``info.channels`` channels, with its extra-channel files) and mask, checked (sizes,
    mask values); any failure is a SampleError naming the file."""
    try:
        image = read_image(image_path, info.channels, extra_channel_files(image_path, info))
        mask = read_mask(mask_path)
        if image.shape[:2] != mask.shape:
            raise DataError(
                f"{mask_path}: mask is {mask.shape[1]}x{mask.shape[0]} but its image {image_path.name} is "
                f"{image.shape[1]}x{image.shape[0]}; re-run `seg prepare` or resize the mask (nearest)"
            )
        check_mask_values(mask, info, mask_path)
    except SampleError:
        raise
    except DataError as e:
        raise SampleError(str(e)) from None
    except (OSError, ValueError, cv2.error) as e:
        first = (str(e).strip().splitlines() or [""])[0]
        raise SampleError(
            f"{image_path} (mask {mask_path.name}): cannot load this sample ({type(e).__name__}: {first})"
        ) from None
    return image, mask


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """An (H, W, C) image (RGB uint8, or N channels uint8/float32) → tensor (C, H, W) of its dtype; normalisation
    happens inside the model. A 2-D image (OpenCV drops a single channel) is one channel."""
    if image.ndim == 2:
        image = image[..., None]
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))


def _indexed(dataset: str | os.PathLike | DatasetIndex, split: str, channels: int | None, source: str) -> DatasetIndex:
    index = as_index(dataset, [split])
    return index if channels is None else index.with_channels(channels, source)


class TrainDataset(Dataset):
    """Training samples with augmentation. Index with ``(index, seed)`` from SeededSampler.

    ``dataset`` is a folder (its split is listed) or a :class:`DatasetIndex` (nothing is listed again).
    ``cache``: the decoded samples (:func:`decode_all`), read instead of the files; decoded in the main
    process before the workers fork, so the workers share its pages. ``channels``: ``data.channels`` (None: the
    dataset's own, dataset.toml's ``channels`` or 3).
    """

    def __init__(
        self,
        dataset: str | os.PathLike | DatasetIndex,
        split: str,
        transform: Compose,
        cache: list[Pair] | None = None,
        channels: int | None = None,
    ) -> None:
        index = _indexed(dataset, split, channels, "data.channels =")
        self.samples, self.info = index.pairs(split), index.info
        self.transform, self.cache = transform, cache

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        index, seed = key if isinstance(key, tuple) else (key, key)
        image, mask = self.cache[index] if self.cache is not None else _load_pair(*self.samples[index], self.info)
        image, mask = self.transform(image, mask, np.random.default_rng(seed))
        return image_to_tensor(image), torch.from_numpy(np.ascontiguousarray(mask).astype(np.int64))


class EvalDataset(Dataset):
    """Evaluation samples: the image optionally resized to ``size`` (exact) or to fit ``keep_ratio``
    ([long, short], mmseg's keep-ratio rule); the mask at full resolution. ``channels``: those the model takes
    (None: the dataset's own)."""

    def __init__(
        self,
        dataset: str | os.PathLike | DatasetIndex,
        split: str,
        size: tuple[int, ...] = (),
        keep_ratio: tuple[int, ...] = (),
        channels: int | None = None,
    ) -> None:
        index = _indexed(dataset, split, channels, "the model takes")
        self.samples, self.info = index.pairs(split), index.info
        self.size, self.keep_ratio = tuple(size), tuple(keep_ratio)

    def __len__(self) -> int:
        return len(self.samples)

    def extras(self, index: int) -> list[Path]:
        """The extra-channel files of sample ``index`` (none without extra-channel folders)."""
        return extra_channel_files(self.samples[index][0], self.info)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = _load_pair(*self.samples[index], self.info)
        target = inference_size(*image.shape[:2], self.size, self.keep_ratio)
        if target != image.shape[:2]:
            image, _ = resize_pair(image, None, target)
        return image_to_tensor(image), torch.from_numpy(mask.astype(np.int64))


def eval_collate(batch: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor | list, list[torch.Tensor]]:
    """Stack images when they share a size (else keep a list); masks always stay a list."""
    images = [b[0] for b in batch]
    masks = [b[1] for b in batch]
    same = all(im.shape == images[0].shape for im in images)
    return (torch.stack(images) if same else images), masks


class SeededSampler(Sampler):
    """Yields ``(index, seed)`` pairs; the order and the seeds depend only on (seed, epoch).

    Sharded by rank for DDP (each rank gets every ``world_size``-th sample of one shared
    permutation, padded by wrapping so every rank runs the same number of steps).
    ``set_epoch(epoch, start=k)`` skips this rank's first ``k`` samples of the epoch: a run resumed
    mid-epoch sees exactly the remaining samples, with the same seeds, that the uninterrupted run saw.
    """

    def __init__(self, num_samples: int, seed: int, shuffle: bool = True, rank: int = 0, world_size: int = 1) -> None:
        self.n, self.seed, self.shuffle = num_samples, seed, shuffle
        self.rank, self.world_size = rank, world_size
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Iterate epoch ``epoch`` from this rank's ``start``-th sample (0 = the whole epoch)."""
        if start < 0:
            raise ValueError(f"start must be >= 0, got {start}")
        self.epoch, self.start = epoch, start

    @property
    def per_epoch(self) -> int:
        """Samples of one whole epoch on this rank."""
        return -(-self.n // self.world_size)

    def __len__(self) -> int:
        return max(self.per_epoch - self.start, 0)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.n, generator=g).tolist() if self.shuffle else list(range(self.n))
        seeds = torch.randint(0, 2**31 - 1, (self.n,), generator=g).tolist()
        total = self.per_epoch * self.world_size
        order = (order * (total // max(len(order), 1) + 1))[:total]
        for pos in range(self.rank + self.start * self.world_size, total, self.world_size):
            yield order[pos], seeds[pos % self.n]
