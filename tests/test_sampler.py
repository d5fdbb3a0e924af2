"""SeededSampler: order and augmentation seeds are a pure function of (seed, epoch), sharded for DDP."""

from __future__ import annotations

from segcli.data.datasets import SeededSampler


def epoch_of(sampler: SeededSampler, epoch: int) -> list[tuple[int, int]]:
    sampler.set_epoch(epoch)
    return list(sampler)


def test_same_seed_and_epoch_same_stream() -> None:
    a, b = SeededSampler(10, seed=3), SeededSampler(10, seed=3)
    assert epoch_of(a, 2) == epoch_of(b, 2)
    assert sorted(i for i, _ in epoch_of(a, 0)) == list(range(10))  # a permutation
    assert epoch_of(a, 0) != epoch_of(a, 1) and epoch_of(a, 0) != epoch_of(SeededSampler(10, seed=4), 0)
    # resuming at epoch 2 needs no state besides the epoch number
    fresh = SeededSampler(10, seed=3)
    assert epoch_of(fresh, 2) == epoch_of(a, 2)


def test_no_shuffle_keeps_order() -> None:
    assert [i for i, _ in epoch_of(SeededSampler(5, seed=0, shuffle=False), 7)] == [0, 1, 2, 3, 4]


def test_ranks_split_one_permutation() -> None:
    full = [i for i, _ in epoch_of(SeededSampler(10, seed=1), 0)]
    shards = [[i for i, _ in epoch_of(SeededSampler(10, seed=1, rank=r, world_size=3), 0)] for r in range(3)]
    assert [len(s) for s in shards] == [4, 4, 4]  # padded by wrapping: every rank runs the same steps
    interleaved = [shards[p % 3][p // 3] for p in range(12)]
    assert interleaved == (full + full)[:12]
