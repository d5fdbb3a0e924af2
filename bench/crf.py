"""Dense CRF (`--crf`): mIoU, boundary F-score and cost per image, with and without it.

    PYTHONPATH=$PWD python bench/crf.py RUN_OR_WEIGHTS --data DIR [--split test] [--tolerance 2]

Each image of the split is predicted once by the run's protocol (`seg eval`'s prediction core, whole image, no TTA),
and the same scores are then refined by the dense CRF under each setting, as the core does with ``--crf``
(segcli/infer/crf.py). Prints, for the plain prediction and each setting: mIoU, the boundary F-score
(segcli.metrics.BoundaryF) at ``--tolerance`` pixels and at 0.75% of the image diagonal (Csurka et al.'s), and the
milliseconds per image of the network and of the CRF (wall time, and this process's CPU time: on a shared machine
the wall time grows with the others' load, the CPU time much less). Settings: DeepLab v1's LargeFOV (the [eval.crf]
defaults) and DeepLab v2's ResNet-101 (theta_alpha 67, theta_beta 3, theta_gamma 1), and any given with --also.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from segcli.config.schema import CrfConfig
from segcli.data.datasets import EvalDataset
from segcli.data.format import DatasetIndex
from segcli.infer.crf import refine_scores
from segcli.infer.predict_core import class_ids, predict_images
from segcli.infer.predictor import open_model
from segcli.infer.protocol import ProtocolChoices, crf_config
from segcli.metrics import BoundaryF, ConfusionMatrix

SETTINGS = {
    "DeepLab v1 (121, 5, 3)": CrfConfig(),
    "DeepLab v2 (67, 3, 1)": CrfConfig(bi_xy_std=67.0, bi_rgb_std=3.0, pos_xy_std=1.0),
}


class Meters:
    """mIoU and boundary F at two tolerances of one way of predicting, and its time."""

    def __init__(self, classes: int, ignore: int, tolerances: tuple[int, int]) -> None:
        self.cm = ConfusionMatrix(classes, ignore)
        self.bf = [BoundaryF(classes, ignore, t) for t in tolerances]
        self.seconds = self.cpu = 0.0

    def update(self, pred: torch.Tensor, mask: torch.Tensor) -> None:
        self.cm.update(pred, mask)
        for bf in self.bf:
            bf.update(pred, mask)

    def row(self, name: str, images: int) -> str:
        f = " | ".join(f"{bf.compute()['boundary_f']:.4f}" for bf in self.bf)
        ms = f"{1000 * self.seconds / images:.0f} | {1000 * self.cpu / images:.0f}"
        return f"| {name} | {self.cm.compute()['mIoU']:.4f} | {f} | {ms} |"

    def timed(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)``, its wall and process CPU time added to this row's."""
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn(*args)
        self.seconds += time.perf_counter() - t0
        self.cpu += time.process_time() - c0
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights", help="a run directory or weights file")
    ap.add_argument("--data", required=True, help="the dataset folder")
    ap.add_argument("--split", default="test")
    ap.add_argument("--tolerance", type=int, default=2, help="boundary F tolerance in pixels (besides 0.75%% diag)")
    ap.add_argument(
        "--also",
        action="append",
        default=[],
        metavar="KEY=V,KEY=V",
        help="one more CRF setting: [eval.crf] keys over the defaults, e.g. bi_xy_std=20,bi_rgb_std=10 (repeatable)",
    )
    args = ap.parse_args()
    settings = dict(SETTINGS)
    for text in args.also:
        settings[text] = crf_config(CrfConfig(), {k: float(v) for k, v in (i.split("=") for i in text.split(","))})
    opened = open_model(args.weights, "cpu", ProtocolChoices(batch_size=1, crf=False))
    model, meta, proto, dev = opened.model, opened.meta, opened.protocol, opened.device
    ds = EvalDataset(DatasetIndex.scan(args.data, [args.split]), args.split, proto.size, proto.keep_ratio)
    image, mask = ds[0]
    tolerances = (args.tolerance, math.ceil(0.0075 * math.hypot(*mask.shape)))
    plain = Meters(meta.num_classes, ds.info.ignore_index, tolerances)
    refined = {name: Meters(meta.num_classes, ds.info.ignore_index, tolerances) for name in settings}
    for i in range(len(ds)):
        image, mask = ds[i]
        scores = plain.timed(predict_images, model, image[None], [tuple(mask.shape)], proto, dev)[0]
        plain.update(class_ids(scores), mask)
        colours = image.float()[None]
        if tuple(colours.shape[-2:]) != tuple(mask.shape):  # as the core: the model input's colours, resized
            colours = F.interpolate(colours, size=tuple(mask.shape), mode="bilinear", align_corners=False)
        for name, params in settings.items():
            q = refined[name].timed(refine_scores, scores, colours[0], params, proto.tta)
            refined[name].update(class_ids(q), mask)
    n = len(ds)
    print(f"threads: {torch.get_num_threads()}, images: {n} ({args.split}, {mask.shape[0]}x{mask.shape[1]})")
    head = f"| prediction | mIoU | boundary F ({tolerances[0]} px) | boundary F ({tolerances[1]} px) |"
    print(f"{head} wall ms / image | CPU ms / image |")
    print("| --- | --- | --- | --- | --- | --- |")
    print(plain.row("network alone", n))
    for name, meters in refined.items():
        print(meters.row(f"+ CRF {name}", n))


if __name__ == "__main__":
    main()
