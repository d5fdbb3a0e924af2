"""PANet: FPN with the bottom-up path augmentation of Liu et al., "Path Aggregation Network for Instance
Segmentation", CVPR 2018 (``model.name = "fpn"`` with ``model.neck = "panet"``; the neck, its reference and its
departures are in :mod:`segcli.models.necks`). The paper is an instance-segmentation network: here only its
neck is used, under segcli's FPN semantic head.
"""

from __future__ import annotations

from segcli.models.fpn import FPN
from segcli.models.registry import MODELS


@MODELS.register(
    "panet",
    rejects=("neck", "neck_repeats"),
    paper="Liu et al., Path Aggregation Network for Instance Segmentation, CVPR 2018",
    reference="https://github.com/open-mmlab/mmdetection (mmdet/models/necks/pafpn.py)",
)
class PANet(FPN):
    """FPN whose neck is PANet's (top-down, then bottom-up path augmentation)."""

    fixed_neck = "panet"
