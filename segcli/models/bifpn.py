"""BiFPN: FPN with the weighted bidirectional neck of Tan et al., "EfficientDet: Scalable and Efficient Object
Detection", CVPR 2020 (``model.name = "fpn"`` with ``model.neck = "bifpn"``; ``model.neck_repeats`` layers,
3 by default as EfficientDet-D0). The neck, the reference it follows (google/automl) and its departures are in
:mod:`segcli.models.necks`. Like the paper's segmentation variant it classifies the finest level; the levels
are merged by segcli's FPN semantic head rather than read from P2 alone.

Trained from scratch, its eval-mode output trails training early on: 18 BatchNorm'd nodes in series, without
residuals, pass each layer's running-statistics lag on to the next while the learning rate is high (on the shapes
quickstart, 0.22 val mIoU after 2 epochs, 0.78 with the same weights once the BN statistics were recomputed). It
catches up as the rate falls (0.84 at epoch 3).
"""

from __future__ import annotations

from segcli.models.fpn import FPN
from segcli.models.registry import MODELS


@MODELS.register(
    "bifpn",
    rejects=("neck",),
    paper="Tan et al., EfficientDet: Scalable and Efficient Object Detection, CVPR 2020",
    reference="https://github.com/google/automl (efficientdet/keras/efficientdet_keras.py, fpn_configs.py)",
)
class BiFPNNet(FPN):
    """FPN whose neck is ``model.neck_repeats`` BiFPN layers."""

    fixed_neck = "bifpn"
