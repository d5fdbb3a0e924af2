"""Run under torchrun by tests/core/test_distributed.py: trains, and every rank writes its own weights at each
epoch end to ``$SEG_RANK_DIR/rank<R>_epoch<E>.pt`` (rank 0 alone writes the run directory), and rank 0 writes
the all-reduced confusion matrix of every validation to ``confusion<N>.pt``. ``SEG_KILL_AFTER_EPOCH=E``
kills rank 0 right after the save of epoch E."""

from __future__ import annotations

import os
import signal
import sys

import torch

from segcli.train import trainer

save = trainer.Trainer.save


def save_and_dump(self: trainer.Trainer, row: dict, improved: bool) -> None:
    save(self, row, improved)
    out = os.environ["SEG_RANK_DIR"]
    # parameters: BatchNorm running statistics are per rank on CPU (DDP broadcasts rank 0's before each forward)
    weights = {k: v.detach().clone() for k, v in self.state.model.named_parameters()}
    torch.save(weights, f"{out}/rank{self.rt.dist.rank}_epoch{self.state.progress.epoch}.pt")
    if self.rt.dist.rank == 0 and str(self.state.progress.epoch) == os.environ.get("SEG_KILL_AFTER_EPOCH"):
        os.kill(os.getpid(), signal.SIGKILL)  # a node lost right after a save: torchrun tears the job down


trainer.Trainer.save = save_and_dump
calls = {"n": 0}


def dumping(confusion):  # noqa: ANN001, ANN202
    """``confusion`` (the trainer's validation of the model, or of its EMA) writing each matrix on rank 0, in order."""

    def confusion_and_dump(model, loader, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        cm = confusion(model, loader, *args, **kwargs)
        if int(os.environ["RANK"]) == 0:
            torch.save(cm.mat, f"{os.environ['SEG_RANK_DIR']}/confusion{calls['n']}.pt")
        calls["n"] += 1
        return cm

    return confusion_and_dump


trainer.confusion_with = dumping(trainer.confusion_with)  # the model, with its validation loss
trainer.confusion_over_loader = dumping(trainer.confusion_over_loader)  # the EMA weights

if __name__ == "__main__":
    trainer.train(sys.argv[1], sys.argv[2:])
