"""`train.compile = true`: the trainer's torch.compile path (inductor, the default backend) trains as eager does.

The models' own tests compile through AOTAutograd only (what a model's code can break, without minutes of C++
builds); this is the one test of the whole inductor path, on the trainer's own call."""

from __future__ import annotations

import csv

import pytest
import torch
from safetensors.torch import load_file

from segcli.train.trainer import train

# SGD: an update proportional to the gradient, so that float reordering in the compiled kernels moves the weights by
# a rounding error (AdamW's first step is about lr x sign(gradient): a near-zero gradient could flip it)
RECIPE = ["train.iters=2", "optim.name=sgd", "optim.lr=0.01", "train.seed=3"]


@pytest.mark.slow
def test_compiled_training_matches_eager(tiny_overrides: list[str], tmp_path_factory: pytest.TempPathFactory) -> None:
    runs = {}
    for compiled in (False, True):
        out = tmp_path_factory.mktemp(f"compile_{compiled}")
        res = train(
            "quickstart", [*tiny_overrides, *RECIPE, f"train.compile={str(compiled).lower()}", f"train.out_dir={out}"]
        )
        row = list(csv.DictReader((res.run_dir / "metrics.csv").open()))[-1]
        runs[compiled] = (float(row["train_loss"]), load_file(str(res.run_dir / "weights" / "last.safetensors")))
    (loss_eager, eager), (loss_compiled, compiled) = runs[False], runs[True]
    assert loss_compiled == pytest.approx(loss_eager, rel=1e-4)
    assert eager.keys() == compiled.keys() and len(eager) > 10  # no torch.compile prefix in the checkpoint
    for key, w in eager.items():
        assert torch.allclose(compiled[key], w, atol=1e-5, rtol=1e-4), key
