"""Run under torchrun by tests/test_distributed.py: trains, and every rank writes its own weights at each
epoch end to ``$SEG_RANK_DIR/rank<R>_epoch<E>.pt`` (rank 0 alone writes the run directory)."""

from __future__ import annotations

import os
import sys

import torch

from segcli.engine import trainer

save = trainer.Trainer.save


def save_and_dump(self: trainer.Trainer, row: dict, improved: bool) -> None:
    save(self, row, improved)
    out = os.environ["SEG_RANK_DIR"]
    # parameters: BatchNorm running statistics are per rank on CPU (DDP broadcasts rank 0's before each forward)
    weights = {k: v.detach().clone() for k, v in self.state.model.named_parameters()}
    torch.save(weights, f"{out}/rank{self.rt.dist.rank}_epoch{self.state.progress.epoch}.pt")


trainer.Trainer.save = save_and_dump

if __name__ == "__main__":
    trainer.train(sys.argv[1], sys.argv[2:])
