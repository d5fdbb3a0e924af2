"""The best model in a fixed time: segcli's budget recipe against a plain segmentation-models-pytorch loop.

For each dataset and budget, one after the other on this machine: ``seg train`` with
``presets/budget_scratch.toml`` (FPN on resnet18 from scratch, ``train.time_budget``, ``train.auto``), then
a plain SMP loop (FPN on resnet18 from scratch, 256x256 random crops or the whole image when smaller,
batch 8, AdamW 1e-3 with poly decay over the same wall time, plain cross-entropy). Both final models are
evaluated on a held-out test split by one function (whole images padded to a multiple of 32, torchmetrics'
MulticlassJaccardIndex, ignore 255); prints both mIoUs, their ratio and where each run's time went.

Data: the built-in shapes (300 train / 20 val / 100 test, 128 px) and the ISBI 2012 membrane images from
../shared/fixtures/membrane (30 images: 18 train, 4 val, 8 test; 0/255 labels mapped to 0/1).

    PYTHONPATH=$PWD python bench/budget.py --budget 2m 5m --data shapes membrane
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F
from torchmetrics.classification import MulticlassJaccardIndex

from segcli.config.schema import parse_duration
from segcli.core.checkpoint import build_from_weights
from segcli.data.format import DatasetIndex
from segcli.data.io import read_image, read_mask
from segcli.data.prepare.shapes import prepare_shapes
from segcli.train.trainer import train

ROOT = Path(__file__).resolve().parents[1]
MEMBRANE = ROOT.parent / "shared" / "fixtures" / "membrane"
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1) * 255
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1) * 255


def prepare(name: str, work: Path) -> tuple[Path, str]:
    """The dataset in the segcli format under ``work`` and the split to test on (another root for shapes)."""
    if name == "shapes":
        root = work / "shapes"
        prepare_shapes(root, train=300, val=20, size=128, seed=0)
        test = work / "shapes_test"
        prepare_shapes(test, train=1, val=100, size=128, seed=12345)  # its val split: 100 unseen images
        return root, str(test / "images" / "val")
    if not MEMBRANE.is_dir():
        raise SystemExit(f"{MEMBRANE} not found (the ISBI membrane fixture)")
    lists = work / "membrane_lists"
    lists.mkdir(parents=True, exist_ok=True)
    ids = sorted((p.stem for p in (MEMBRANE / "image").glob("*.png")), key=int)
    splits = {"test": ids[:8], "val": ids[8:12], "train": ids[12:]}
    for split, names in splits.items():
        (lists / f"{split}.txt").write_text("\n".join(names) + "\n")
    root = work / "membrane"
    if not (root / "dataset.toml").is_file():
        cmd = [sys.executable, "-m", "segcli", "prepare", "folder", str(MEMBRANE / "image"), str(MEMBRANE / "label")]
        cmd += ["--out", str(root), "--name", "membrane", "--binary", "--classes", "membrane,cell"]
        cmd += ["--split-lists", ",".join(f"{s}={lists / f'{s}.txt'}" for s in splits)]
        subprocess.run(cmd, check=True, capture_output=True)
    return root, str(root / "images" / "test")


def test_pairs(images_dir: str) -> list[tuple[np.ndarray, np.ndarray]]:
    root, split = Path(images_dir).parents[1], Path(images_dir).name
    return [(read_image(i), read_mask(m)) for i, m in DatasetIndex.scan(root, [split]).pairs(split)]


@torch.no_grad()
def miou(predict, pairs: list[tuple[np.ndarray, np.ndarray]], num_classes: int) -> float:  # noqa: ANN001
    """Test mIoU of ``predict`` (RGB 0-255 tensor 1x3xHxW → logits), whole images padded to a multiple of 32."""
    metric = MulticlassJaccardIndex(num_classes, ignore_index=255, average="macro")
    for image, mask in pairs:
        x = torch.from_numpy(image).permute(2, 0, 1)[None].float()
        h, w = x.shape[-2:]
        x = F.pad(x, (0, -w % 32, 0, -h % 32), mode="reflect")
        pred = predict(x)[..., :h, :w].argmax(1)
        metric.update(pred, torch.from_numpy(mask.astype(np.int64))[None])
    return float(metric.compute())


# --- the plain loop, written as a user would write it --------------------------------------------------


PLAIN_MODELS = {"fpn": smp.FPN, "unet": smp.Unet}


def plain_loop(
    root: Path, num_classes: int, seconds: float, crop: int = 256, batch: int = 8, arch: str = "fpn"
) -> tuple:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    pairs = DatasetIndex.scan(root, ["train"]).pairs("train")
    images = [read_image(i) for i, _ in pairs]
    masks = [read_mask(m) for _, m in pairs]
    model = PLAIN_MODELS[arch]("resnet18", encoder_weights=None, classes=num_classes)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    criterion = torch.nn.CrossEntropyLoss(ignore_index=255)

    def sample() -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = [], []
        for k in rng.integers(0, len(images), batch):
            img, msk = images[k], masks[k]
            c = min(crop, *img.shape[:2])
            y0, x0 = rng.integers(0, img.shape[0] - c + 1), rng.integers(0, img.shape[1] - c + 1)
            img, msk = img[y0 : y0 + c, x0 : x0 + c], msk[y0 : y0 + c, x0 : x0 + c]
            if rng.random() < 0.5:
                img, msk = img[:, ::-1], msk[:, ::-1]
            xs.append(torch.from_numpy(img.copy()).permute(2, 0, 1))
            ys.append(torch.from_numpy(msk.astype(np.int64)))
        return (torch.stack(xs).float() - MEAN) / STD, torch.stack(ys)

    model.train()
    t0, steps, data_time = time.perf_counter(), 0, 0.0
    while (elapsed := time.perf_counter() - t0) < seconds:
        for group in optimizer.param_groups:
            group["lr"] = 1e-3 * (1 - elapsed / seconds) ** 0.9
        t_data = time.perf_counter()
        x, y = sample()
        data_time += time.perf_counter() - t_data
        loss = criterion(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        steps += 1
    total = time.perf_counter() - t0
    model.eval()
    shares = {"total": total, "train": total - data_time, "data_wait": data_time, "validation": 0.0, "saving": 0.0}
    return (lambda x: model((x - MEAN) / STD)), steps, shares


# --- segcli's budget recipe ----------------------------------------------------------------------------


def segcli_run(root: Path, seconds: float, work: Path, tag: str, extra: list[str]) -> tuple:
    over = [f"data.root={root}", f"train.time_budget={seconds:g}s", f"train.out_dir={work / 'runs'}"]
    over += [f"train.name={tag}", *extra]
    t0 = time.perf_counter()
    result = train(str(ROOT / "presets" / "budget_scratch.toml"), over)
    wall = time.perf_counter() - t0
    model, _ = build_from_weights(result.run_dir / "weights" / "last.safetensors")
    log = (result.run_dir / "log.txt").read_text()
    auto = next((x.split(" ", 2)[2] for x in log.splitlines() if "auto recipe:" in x), "")
    return (lambda x: model(x)), int(result.last.get("iterations", 0)), result.timing, wall, auto


def fmt_shares(s: dict) -> str:
    total = s["total"]
    parts = [f"{k} {s.get(k, 0.0) / total:.1%}" for k in ("train", "data_wait", "validation", "saving", "probe")]
    return f"{total:.0f}s: " + ", ".join(parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", nargs="+", default=["2m", "5m"], help="wall-time budgets, e.g. 2m 5m")
    ap.add_argument("--data", nargs="+", default=["shapes", "membrane"], choices=["shapes", "membrane"])
    ap.add_argument("--work", type=Path, default=Path("/tmp/segcli_bench_budget"), help="datasets and runs")
    ap.add_argument("--segcli", nargs="*", default=[], metavar="KEY=VALUE", help="extra overrides for segcli")
    ap.add_argument("--model", default="fpn", choices=sorted(PLAIN_MODELS), help="the architecture of both (resnet18)")
    ap.add_argument("--only", choices=["segcli", "plain"], help="run one side only")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {torch.backends.cpu.get_cpu_capability()}")
    results = []
    for name in args.data:
        root, test_dir = prepare(name, args.work)
        pairs = test_pairs(test_dir)
        classes = DatasetIndex.scan(root, ["train"]).info.num_classes
        for budget in args.budget:
            seconds = parse_duration(budget)
            tag = f"{name}_{budget}"
            ours = plain = float("nan")
            steps = psteps = 0
            if args.only != "plain":
                extra = [f"model.name={args.model}", *args.segcli]
                predict, steps, shares, wall, auto = segcli_run(root, seconds, args.work, tag, extra)
                ours = miou(predict, pairs, classes)
                print(f"[{tag}] segcli: test mIoU {ours:.4f}, {steps} steps, wall {wall:.0f}s; {fmt_shares(shares)}")
                print(f"[{tag}]   {auto}")
            if args.only != "segcli":
                predict, psteps, pshares = plain_loop(root, classes, seconds, arch=args.model)
                plain = miou(predict, pairs, classes)
                print(f"[{tag}] plain:  test mIoU {plain:.4f}, {psteps} steps; {fmt_shares(pshares)}")
            results.append((name, budget, ours, plain, steps, psteps))
            sys.stdout.flush()
    print("\ndataset   budget  segcli mIoU  plain mIoU  ratio   steps (segcli/plain)")
    for name, budget, ours, plain, steps, psteps in results:
        print(f"{name:9} {budget:6}  {ours:11.4f}  {plain:10.4f}  {ours / plain:5.3f}x  {steps}/{psteps}")


if __name__ == "__main__":
    main()
