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


def test_start_skips_the_first_samples_of_the_epoch() -> None:
    """A run resumed mid-epoch continues with exactly the remaining samples and seeds."""
    full = epoch_of(SeededSampler(10, seed=2), 3)
    s = SeededSampler(10, seed=2)
    s.set_epoch(3, start=4)
    assert len(s) == 6 and list(s) == full[4:]
    s.set_epoch(4)  # the next epoch is whole again
    assert len(s) == 10 and list(s) == epoch_of(SeededSampler(10, seed=2), 4)
    for r in range(3):
        whole = epoch_of(SeededSampler(10, seed=1, rank=r, world_size=3), 0)
        part = SeededSampler(10, seed=1, rank=r, world_size=3)
        part.set_epoch(0, start=2)
        assert list(part) == whole[2:] and len(part) == 2


def test_global_batch_sees_the_same_samples_per_step_on_one_and_two_processes() -> None:
    """data.batch_size is global: each of W ranks takes batch / W; step k covers the same samples and seeds."""
    n, batch = 16, 4

    def steps(world: int) -> list[set[tuple[int, int]]]:
        per_rank = [epoch_of(SeededSampler(n, seed=5, rank=r, world_size=world), 3) for r in range(world)]
        b = batch // world
        return [set().union(*(set(s[k * b : (k + 1) * b]) for s in per_rank)) for k in range(n // batch)]

    assert steps(1) == steps(2) == steps(4)
    assert all(len(step) == batch for step in steps(2))
