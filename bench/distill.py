"""Does distillation help? The same student for the same wall time, with and without a teacher.

For each dataset, one after the other on this machine: first the teacher is trained (``--teacher`` overrides on
``presets/quickstart.toml``, FPN on resnet18 by default, for ``--teacher-budget``; its time is reported on its
own and is not part of the students' budget); then the student (``--student`` overrides, ENet by default) trains
twice for ``--budget`` of wall time each: without the teacher (``loss.terms = ['ce']``), and with it
(``train.distill.teacher`` = the teacher's run, ``loss.terms`` = ``--terms`` weighted by ``--weights``). The
teacher's forward pass runs inside the distilled student's step, so that student takes fewer steps in the same
time. Every model is scored on a held-out test split by bench/budget.py's function (whole images padded to a
multiple of 32, torchmetrics' MulticlassJaccardIndex); prints the mIoUs, whatever they are.

Data: the built-in shapes (300 train / 20 val / 100 test, 128 px) and, where ../shared/fixtures/membrane is
present, the ISBI 2012 membrane images (18 train, 4 val, 8 test).

    PYTHONPATH=$PWD python bench/distill.py --data shapes --teacher-budget 3m --budget 2m
    PYTHONPATH=$PWD python bench/distill.py --tiny     # a smoke run of a minute: the script works, no figures
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/budget.py: datasets and the test mIoU

from budget import prepare, scores, test_pairs  # noqa: E402

from segcli.config.schema import parse_duration  # noqa: E402
from segcli.core.checkpoint import build_from_weights  # noqa: E402
from segcli.data.format import DatasetIndex  # noqa: E402
from segcli.data.prepare.shapes import prepare_shapes  # noqa: E402
from segcli.train.trainer import train  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PRESET = str(ROOT / "presets" / "quickstart.toml")
TEACHER = ["model.name=fpn", "model.backbone=resnet18", "model.decoder_channels=128"]
STUDENT = ["model.name=enet"]
# what every run shares: bench/budget.py's crop, a warmup over 5% of the run, no plots (they cost time)
COMMON = [
    "augment.crop_size=[128,128]",
    "schedule.warmup_iters=0",
    "schedule.warmup_fraction=0.05",
    "train.plots=false",
]


def load() -> str:
    """The 1-minute load average (what else ran on this machine)."""
    return f"{os.getloadavg()[0]:.2f}"


TINY = ["augment.crop_size=[64,64]", "data.batch_size=4", "data.num_workers=0"]


def run(root: Path, work: Path, tag: str, seconds: float, overrides: list[str]) -> tuple[Path, int, float]:
    """Train one model for ``seconds`` of wall time; (run directory, optimiser steps, wall seconds)."""
    over = [f"data.root={root}", f"train.time_budget={seconds:g}s", f"train.out_dir={work / 'runs'}"]
    t0 = time.perf_counter()
    result = train(PRESET, [*over, f"train.name={tag}", *COMMON, *overrides])
    return Path(result.run_dir), int(result.last.get("iterations", 0)), time.perf_counter() - t0


def score(run_dir: Path, pairs: list, classes: int) -> float:
    model, _ = build_from_weights(run_dir / "weights" / "last.safetensors")
    return scores(lambda x: model(x), pairs, classes, None)["mIoU"]


def dataset(name: str, work: Path, tiny: bool) -> tuple[Path, str]:
    """bench/budget.py's datasets; ``tiny``: 16 train / 8 val / 8 test shapes images of 64 px."""
    if not tiny:
        return prepare(name, work)
    root, test = work / "tiny_shapes", work / "tiny_shapes_test"
    prepare_shapes(root, train=16, val=8, size=64, seed=0)
    prepare_shapes(test, train=1, val=8, size=64, seed=12345)
    return root, str(test / "images" / "val")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", nargs="+", default=["shapes"], choices=["shapes", "membrane"])
    ap.add_argument("--budget", default="2m", help="wall time of each student run")
    ap.add_argument("--teacher-budget", default="3m", help="wall time of the teacher's training")
    ap.add_argument("--teacher", nargs="*", default=TEACHER, metavar="KEY=VALUE", help="the teacher's overrides")
    ap.add_argument("--student", nargs="*", default=STUDENT, metavar="KEY=VALUE", help="the student's overrides")
    ap.add_argument("--terms", default="ce,kd,cwd", help="loss.terms of the distilled student")
    ap.add_argument("--weights", default="1,1,3", help="loss.term_weights of the distilled student")
    ap.add_argument("--work", type=Path, default=Path("/tmp/segcli_bench_distill"), help="datasets and runs")
    ap.add_argument("--tiny", action="store_true", help="tiny data and 15 s budgets: checks the script runs")
    ap.add_argument("--teacher-run", type=Path, help="reuse this trained teacher run (one dataset) instead of training")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.tiny:
        args.budget = args.teacher_budget = "15s"
        args.data = ["shapes"]
        COMMON.extend(TINY)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load {load()} at the start")
    terms = [t.strip() for t in args.terms.split(",")]
    distill = [f"loss.terms={terms!r}", f"loss.term_weights=[{args.weights}]"]
    rows = []
    for name in args.data:
        root, test_dir = dataset(name, args.work, args.tiny)
        pairs = test_pairs(test_dir)
        classes = DatasetIndex.scan(root, ["train"]).info.num_classes
        seconds, teacher_seconds = parse_duration(args.budget), parse_duration(args.teacher_budget)
        if args.teacher_run:  # trained before: its steps and time are in its own metrics.csv / log.txt
            t_run, t_steps, t_wall = args.teacher_run, 0, float("nan")
        else:
            t_run, t_steps, t_wall = run(root, args.work, f"{name}_teacher", teacher_seconds, args.teacher)
        t_miou = score(t_run, pairs, classes)
        print(f"[{name}] teacher {' '.join(args.teacher)}: test mIoU {t_miou:.4f}, {t_steps} steps, {t_wall:.0f}s")
        plain_run, plain_steps, plain_wall = run(root, args.work, f"{name}_student", seconds, args.student)
        plain = score(plain_run, pairs, classes)
        print(f"[{name}] student alone: test mIoU {plain:.4f}, {plain_steps} steps, {plain_wall:.0f}s")
        with_teacher = [*args.student, f"train.distill.teacher={t_run}", *distill]
        kd_run, kd_steps, kd_wall = run(root, args.work, f"{name}_distilled", seconds, with_teacher)
        kd = score(kd_run, pairs, classes)
        print(f"[{name}] student + teacher ({args.terms} x {args.weights}): test mIoU {kd:.4f}, {kd_steps} steps")
        rows.append((name, t_miou, t_wall, plain, plain_steps, kd, kd_steps))
        sys.stdout.flush()
    teacher = f"reused from {args.teacher_run}" if args.teacher_run else args.teacher_budget
    print(f"\nload {load()} at the end; student budget {args.budget}, teacher {teacher}")
    print("dataset   teacher mIoU (s)   student alone (steps)   student + teacher (steps)")
    for name, t_miou, t_wall, plain, plain_steps, kd, kd_steps in rows:
        print(
            f"{name:9} {t_miou:.4f} ({t_wall:4.0f}s)   {plain:.4f} ({plain_steps:5d})         {kd:.4f} ({kd_steps:5d})"
        )


if __name__ == "__main__":
    main()
