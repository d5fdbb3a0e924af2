"""Run under torchrun by tests/models/test_models_ddp.py: one DDP training step (Gloo, CPU) of each model named on
the command line, as the trainer wraps it (no find_unused_parameters), on rank-specific data; rank 0 writes
``{name: max |parameter difference| between the ranks after the step}`` to the JSON file ``$SEG_DDP_OUT``."""

from __future__ import annotations

import json
import os
import sys

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from segcli.losses import build_loss
from segcli.losses.outputs import output_loss
from segcli.models import MODELS, build_model, supported_options

NUM_CLASSES = 3


def step(name: str, rank: int) -> float:
    torch.manual_seed(0)  # the same initial weights on every rank
    options = supported_options(name, {"backbone": "test_resnet", "decoder_channels": 16})
    model = build_model(name, NUM_CLASSES, **options).train()
    net = DistributedDataParallel(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    g = torch.Generator().manual_seed(100 + rank)  # each rank its own batch
    x = torch.rand(2, 3, 64, 64, generator=g) * 255
    y = torch.randint(0, NUM_CLASSES, (2, 64, 64), generator=g)
    n_aux = MODELS.info(name).aux_outputs(True, ())
    loss, _ = output_loss(build_loss(["ce"], NUM_CLASSES), net(x), y, [0.4] * n_aux)
    loss.backward()
    opt.step()
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])
    gathered = [torch.zeros_like(flat) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, flat)
    return float((gathered[0] - gathered[1]).abs().max())


def main() -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    torch.set_num_threads(1)
    result = {name: step(name, rank) for name in sys.argv[1:]}
    if rank == 0:
        with open(os.environ["SEG_DDP_OUT"], "w", encoding="utf-8") as f:
            json.dump(result, f)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
