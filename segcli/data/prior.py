"""The temporal prior of a video model (``model.prior = "mask"``): the previous frame's mask as one more input
channel, and how training makes one from a still image's ground truth.

A prior-trained model sees the RGB image plus one channel holding a class mask: at inference the prediction of
the previous frame, in training a perturbed copy of the ground truth (:func:`perturb_prior`), so that the model
learns to use it where it agrees with the image and to overrule it where it does not. The perturbations are what
a previous frame's prediction gets wrong: objects moved (a shift per class), grown or shrunk (dilation, erosion),
missed (a dropped class shows as class 0) and, for the first frame of a clip, no prior at all.

Encoding (:func:`encode_prior`): one uint8 channel beside the image's three, 0 = no prior (first frame, or a
still image), class ``c`` = round((c + 1) * 255 / K) for K classes, so every code lies in the image's [0, 255]
range and the model normalises it like a colour channel (mean 0.5, std 0.5 of 255: :data:`PRIOR_MEAN`,
:data:`PRIOR_STD`). The codes are distinct up to 255 classes; above that, neighbouring classes share a code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

PRIORS = ("none", "mask")
PRIOR_MEAN = 0.5  # the prior channel's normalisation, in [0, 1] units like the image's mean/std
PRIOR_STD = 0.5
NO_PRIOR = 0  # the code of "no previous frame"


@dataclass(frozen=True)
class PriorPerturbation:
    """How a ground-truth mask is spoilt into a training prior.

    ``empty``: the probability of no prior at all (a first frame); ``drop``: of each class present other than 0
    being missed (painted as class 0); ``swap``: of it being taken for another class; ``shift``: the largest move of
    a class's region, as a share of the mask's shorter side (each class its own move, uniform in both directions);
    ``morph``: the largest dilation or erosion radius, as a share of the shorter side (each class: dilated, eroded
    or left, equally likely); ``blobs``: the mean number of stray blobs of a random class (a prediction's speckle
    and holes), each of radius up to ``morph`` x 2.
    """

    empty: float = 0.2
    drop: float = 0.1
    swap: float = 0.1
    shift: float = 0.03
    morph: float = 0.02
    blobs: float = 1.0


def perturb_prior(
    mask: np.ndarray,
    rng: np.random.Generator,
    ignore_index: int = 255,
    how: PriorPerturbation = PriorPerturbation(),
    num_classes: int = 0,
) -> np.ndarray | None:
    """A spoilt copy of the id mask ``mask`` (None: no prior this time), as a previous frame's prediction might be.

    Class 0 is the fill: every other class present is, in random order, dropped, or moved, grown or shrunk and
    perhaps taken for another class, and painted over class 0 (ignored pixels become class 0, as a prediction has
    none); then stray blobs. Swapped and blob classes are drawn from ``num_classes`` (0: the classes present).
    A pure function of ``rng``.
    """
    if rng.random() < how.empty:
        return None
    h, w = mask.shape
    side = min(h, w)
    prior = np.zeros((h, w), mask.dtype)
    classes = [int(c) for c in np.unique(mask) if c != 0 and c != ignore_index]
    pool = num_classes or max([*classes, 0]) + 1
    for c in rng.permutation(classes) if classes else ():
        if rng.random() < how.drop:
            continue
        paint = int(rng.integers(1, pool)) if pool > 1 and rng.random() < how.swap else c
        region = (mask == c).astype(np.uint8)
        dx, dy = rng.uniform(-how.shift, how.shift, size=2) * side
        region = cv2.warpAffine(region, np.float32([[1, 0, dx], [0, 1, dy]]), (w, h), flags=cv2.INTER_NEAREST)
        radius = int(rng.integers(0, round(how.morph * side) + 1))
        op = rng.integers(0, 3)  # 0 dilate, 1 erode, 2 as it is
        if radius and op < 2:
            kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
            region = (cv2.dilate if op == 0 else cv2.erode)(region, kernel)
        prior[region.astype(bool)] = paint
    for _ in range(int(rng.poisson(how.blobs))):
        radius = int(rng.integers(1, max(2, round(2 * how.morph * side)) + 1))
        centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        cv2.circle(prior, centre, radius, int(rng.integers(0, pool)), -1)
    return prior


def encode_prior(ids: np.ndarray | None, num_classes: int, shape: tuple[int, int] | None = None) -> np.ndarray:
    """The prior channel (H, W) uint8 of a class-id mask: 0 where there is none (``ids`` None: all of ``shape``),
    round((c + 1) * 255 / K) for class c of K."""
    if ids is None:
        if shape is None:
            raise ValueError("encode_prior: give the shape of an empty prior")
        return np.zeros(shape, np.uint8)
    k = max(int(num_classes), 1)
    table = np.round((np.arange(max(k, 256)) + 1) * 255.0 / k).clip(1, 255).astype(np.uint8)
    return table[np.clip(ids, 0, len(table) - 1)]


class WithPrior:
    """A prior model's training transform: ``transform`` (the augmentation), then the prior channel made from the
    augmented mask (:func:`perturb_prior`, :func:`encode_prior`) appended to the image. Same call as
    :class:`segcli.data.transforms.Compose`: ``(image, mask, rng)`` → ``(image with one more channel, mask)``."""

    def __init__(
        self, transform: Any, num_classes: int, ignore_index: int = 255, how: PriorPerturbation = PriorPerturbation()
    ) -> None:
        self.transform, self.num_classes, self.ignore_index, self.how = transform, num_classes, ignore_index, how

    def __call__(self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        image, mask = self.transform(image, mask, rng)
        prior = perturb_prior(mask, rng, self.ignore_index, self.how, self.num_classes)
        return add_prior_channel(image, encode_prior(prior, self.num_classes, mask.shape[:2])), mask


def add_prior_channel(image: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """An (H, W, C) image (or (H, W)) and an (H, W) prior channel → (H, W, C + 1), the input of a prior model."""
    image = image[..., None] if image.ndim == 2 else image
    return np.concatenate([image, prior[..., None].astype(image.dtype)], axis=2)
