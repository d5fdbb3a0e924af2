"""Temporal prior (`model.prior = "mask"`): flicker and mIoU on the moving-shapes video, with and without it.

    seg prepare shapes --out data/shapes-video --video 150
    seg train quickstart data.root=data/shapes-video train.epochs=8 train.name=none
    seg train quickstart data.root=data/shapes-video train.epochs=8 train.name=mask model.prior=mask
    PYTHONPATH=$PWD python bench/video_prior.py runs/none/1 runs/mask/1 --data data/shapes-video

Each run predicts the dataset's ``video.avi`` as `seg infer` does (segcli.infer.predict: frame by frame, a prior
model fed the previous frame's mask) into ``--out``; the masks are scored against the split ``video``'s ground
truth (mIoU, one confusion matrix over the clip) and their flicker (the share of pixels whose class changes between
consecutive frames) is set beside the ground truth's own, the rate the scene really changes at; "steady flicker"
counts only the pixels whose true class stays the same from one frame to the next (labelled in both), the changes
the scene does not explain. The still-image val mIoU of each run (`seg eval`: a prior model gets an empty prior)
is printed too.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from segcli.data.format import read_dataset_info
from segcli.data.io import read_mask
from segcli.data.prepare.shapes import VIDEO_FILE, VIDEO_SPLIT
from segcli.infer import OutputOptions, ProtocolChoices, evaluate, predict
from segcli.metrics import ConfusionMatrix, flicker


def score(run: str, data: Path, out: Path, ignore: int, classes: int) -> dict[str, float]:
    """The run's prediction of the video: its flicker (as `seg infer` reports it), its mIoU on the clip and on val."""
    res = predict(run, [str(data / VIDEO_FILE)], out, device="cpu", output=OutputOptions(save="mask", overwrite=True))
    entry = res.outputs[0]
    truth = sorted((data / "masks" / VIDEO_SPLIT).iterdir())
    masks = sorted(Path(entry["mask"]).iterdir())
    assert len(masks) == len(truth), (len(masks), len(truth))
    cm = ConfusionMatrix(classes, ignore)
    steady = compared = 0
    previous: tuple[np.ndarray, np.ndarray] | None = None
    for p, t in zip(masks, truth):
        pred, true = read_mask(p), read_mask(t)
        cm.update(torch.from_numpy(pred.astype(np.int64)), torch.from_numpy(true.astype(np.int64)))
        if previous is not None:
            same = (true == previous[1]) & (true != ignore)
            steady += int((same & (pred != previous[0])).sum())
            compared += int(same.sum())
        previous = pred, true
    val = evaluate(run, data, "val", device="cpu", protocol=ProtocolChoices(batch_size=8))
    return {
        "flicker": entry["flicker"],
        "steady": steady / max(compared, 1),
        "video_miou": cm.compute()["mIoU"],
        "val_miou": val.metrics["mIoU"],
        "prior": entry["prior"],
        "seconds": res.seconds,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="run directories or weights files (e.g. one without the prior, one with)")
    ap.add_argument("--data", required=True, type=Path, help="a shapes dataset prepared with --video")
    ap.add_argument("--out", type=Path, default=Path("predictions/video_prior"), help="where the masks go")
    args = ap.parse_args()
    info = read_dataset_info(args.data)
    truth = [read_mask(p) for p in sorted((args.data / "masks" / VIDEO_SPLIT).iterdir())]
    gt_flicker = flicker(np.where(m == info.ignore_index, 0, m) for m in truth)
    print(f"threads: {torch.get_num_threads()}, frames: {len(truth)} ({truth[0].shape[0]}x{truth[0].shape[1]})")
    print(f"ground truth's own flicker (void pixels as class 0): {gt_flicker:.4f}")
    print("| run | prior fed | flicker | steady flicker | video mIoU | val mIoU (stills) | infer seconds |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for k, run in enumerate(args.runs):
        s = score(run, args.data, args.out / str(k), info.ignore_index, info.num_classes)
        figures = [s["flicker"], s["steady"], s["video_miou"], s["val_miou"]]
        cells = " | ".join(f"{v:.4f}" for v in figures)
        print(f"| {run} | {'yes' if s['prior'] else 'no'} | {cells} | {s['seconds']:.1f} |")


if __name__ == "__main__":
    main()
