"""The prediction protocol: how an image becomes class scores, as one object built once and passed whole.

- :class:`ProtocolChoices` is what a caller asks for (the command line's protocol options, or a Python call's):
  each field left None keeps the checkpoint preset's value.
- :func:`resolve_protocol` resolves the choices exactly once against the checkpoint's preset (``eval.*``,
  ``train.amp``, ``train.channels_last``) and the device into a :class:`PredictionProtocol`.
- :class:`PredictionProtocol` is validated when it is made, and then read by every path that predicts:
  validation, `seg eval`, `seg infer`, the run report, export's parity gate and `seg benchmark`.

Errors name the protocol's fields (:func:`segcli.errors.arg`: ```tile```), which the command line shows as
its flags (``--tile``), or the preset keys they come from (``eval.keep_ratio``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from segcli.errors import UserError, arg

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from segcli.config.schema import CrfConfig, Preset

PRECISIONS = ("none", "bf16", "fp16")  # a resolved precision (``auto`` is resolved on the device)


def _text(values: Sequence[object]) -> str:
    return ",".join(map(str, values))


@dataclass(frozen=True)
class PredictionProtocol:
    """How an image is predicted (the test protocol), resolved and checked.

    ``size`` (exact [H, W]) or else ``keep_ratio`` (fit inside [long, short]) is the resize before the model (in
    the data pipeline; neither: the native size). ``slide`` cuts ``tile`` windows every ``stride`` pixels;
    ``tta_scales`` (empty: no TTA) and ``tta_flip`` average views; ``amp`` is the autocast precision (none,
    bf16, fp16), ``channels_last`` the memory layout; ``batch_size`` images and ``window_batch`` sliding windows
    go through the model at once; ``temperature`` (the checkpoint's, from `seg calibrate`) divides the logits
    before anything else reads them; ``crf`` (None: off) refines the scores at the output size with the dense CRF
    of ``eval.crf`` (:mod:`segcli.infer.crf`).
    """

    size: tuple[int, ...] = ()
    keep_ratio: tuple[int, ...] = ()
    slide: bool = False
    tile: tuple[int, int] = (512, 512)
    stride: tuple[int, int] = (341, 341)
    tta_scales: tuple[float, ...] = ()  # empty: no TTA
    tta_flip: bool = False
    amp: str = "none"
    channels_last: bool = False
    batch_size: int = 1
    window_batch: int = 8  # sliding windows per forward pass
    temperature: tuple[float, ...] = ()  # logits divided by it (one value, or one a class); empty: none
    crf: CrfConfig | None = None  # dense CRF after the network (eval.crf); None: off

    def __post_init__(self) -> None:
        tile, stride, size = tuple(self.tile), tuple(self.stride), tuple(self.size)
        if size and (len(size) != 2 or min(size) < 1):
            raise UserError(f"{arg('size')} {_text(size)}: give H,W > 0, e.g. {arg('size')} 512,512")
        if self.keep_ratio and (len(self.keep_ratio) != 2 or min(self.keep_ratio) < 1):
            raise UserError(f"eval.keep_ratio = {list(self.keep_ratio)}: give [long, short] > 0, e.g. [2048, 512]")
        if len(tile) != 2 or any(v < 1 for v in tile):
            raise UserError(f"{arg('tile')} {_text(tile)}: give H,W > 0, e.g. {arg('tile')} 512,512")
        if len(stride) != 2 or not all(0 < s <= t for s, t in zip(stride, tile)):
            raise UserError(
                f"{arg('stride')} {_text(stride)}: give H,W in (0, tile], "
                f"e.g. {arg('stride')} {tile[0] * 2 // 3},{tile[1] * 2 // 3}"
            )
        if self.tta_scales and min(self.tta_scales) <= 0:
            raise UserError(
                f"{arg('tta_scales')} {_text(self.tta_scales)}: give factors > 0, e.g. {arg('tta_scales')} 0.75,1,1.25"
            )
        if self.amp not in PRECISIONS:
            raise UserError(f"{arg('amp')} {self.amp} is not one of {', '.join(PRECISIONS)}")
        for name in ("batch_size", "window_batch"):
            if getattr(self, name) < 1:
                raise UserError(f"{arg(name)} {getattr(self, name)}: give 1 or more")
        fix = object.__setattr__  # frozen: normalise the sequences once, here
        fix(self, "size", tuple(int(v) for v in size))
        fix(self, "keep_ratio", tuple(int(v) for v in self.keep_ratio))
        fix(self, "tile", (int(tile[0]), int(tile[1])))
        fix(self, "stride", (int(stride[0]), int(stride[1])))
        fix(self, "tta_scales", tuple(float(s) for s in self.tta_scales))
        fix(self, "temperature", tuple(float(t) for t in self.temperature))

    @property
    def tta(self) -> bool:
        return bool(self.tta_scales) or self.tta_flip


@dataclass(frozen=True)
class ProtocolChoices:
    """What a caller asks of the protocol; each None keeps the checkpoint preset's value (``eval.size``,
    ``eval.slide``, ``eval.tile``, ``eval.stride``, ``eval.tta``, ``eval.tta_scales``, ``train.amp``,
    ``train.channels_last``, ``eval.batch_size``, ``eval.crf.enabled``).

    ``size`` replaces the preset's resize (``eval.keep_ratio`` included); a ``tile`` without a ``stride`` slides
    by two-thirds of it; ``tta_scales`` turns TTA on; ``amp`` is auto, none, bf16 or fp16; ``crf_params`` sets
    ``eval.crf`` keys over the preset's (``{"bi_w": 1, "pos_w": 0}``) and turns the CRF on unless ``crf`` is False.
    """

    size: tuple[int, ...] | None = None
    slide: bool | None = None
    tile: tuple[int, ...] | None = None
    stride: tuple[int, ...] | None = None
    tta: bool | None = None
    tta_scales: tuple[float, ...] | None = None
    amp: str | None = None
    channels_last: bool | None = None
    batch_size: int | None = None
    crf: bool | None = None
    crf_params: Mapping[str, float] | None = None


def resolve_protocol(choices: ProtocolChoices, preset: Preset, device: torch.device) -> PredictionProtocol:
    """The protocol of a checkpoint's preset with ``choices`` on top, on ``device``: the one place the choices
    are resolved (the precision included: ``train.amp``'s fp16 becomes auto off CUDA, where fp16 autocast
    does not exist)."""
    from segcli.core.runtime import resolve_amp

    e, c = preset.eval, choices
    if c.stride:
        stride = tuple(c.stride)
    elif c.tile:  # a tile asked for without a stride: two-thirds of it (mmseg's 512/341 ratio)
        stride = tuple(max(1, t * 2 // 3) for t in c.tile)
    else:
        stride = tuple(e.stride)
    if c.tta_scales is not None and not c.tta_scales:
        raise UserError(f"{arg('tta_scales')} (none): give factors > 0, e.g. {arg('tta_scales')} 0.75,1,1.25")
    use_tta = (e.tta if c.tta is None else c.tta) or c.tta_scales is not None
    if c.amp is not None:
        amp = resolve_amp(c.amp, device, option=arg("amp"))
    else:
        train_amp = preset.train.amp
        amp = resolve_amp("auto" if train_amp == "fp16" and device.type != "cuda" else train_amp, device)
    return PredictionProtocol(
        size=tuple(c.size) if c.size is not None else tuple(e.size),
        keep_ratio=() if c.size is not None else tuple(e.keep_ratio),
        slide=e.slide if c.slide is None else c.slide,
        tile=tuple(c.tile) if c.tile else tuple(e.tile),  # type: ignore[arg-type]
        stride=stride,  # type: ignore[arg-type]
        tta_scales=tuple(c.tta_scales or e.tta_scales) if use_tta else (),
        tta_flip=bool(e.tta_flip) if use_tta else False,
        amp=amp,
        channels_last=preset.train.channels_last if c.channels_last is None else c.channels_last,
        batch_size=e.batch_size if c.batch_size is None else c.batch_size,
        crf=crf_config(e.crf, c.crf_params) if _crf_on(c, preset) else None,
    )


def _crf_on(c: ProtocolChoices, preset: Preset) -> bool:
    """Whether the dense CRF runs: ``crf`` when given, else on when ``crf_params`` are, else ``eval.crf.enabled``."""
    if c.crf is not None:
        return c.crf
    return bool(c.crf_params) or preset.eval.crf.enabled


def crf_config(base: CrfConfig, params: Mapping[str, float] | None = None) -> CrfConfig:
    """``base`` (a preset's ``eval.crf``) with ``params`` over it, each checked against the key's range, enabled."""
    fields = {f.name: f for f in dataclasses.fields(base) if f.name != "enabled"}
    values: dict[str, float] = {}
    for key, value in (params or {}).items():
        if key not in fields:
            raise UserError(f"{arg('crf_params')} {key}={value}: not an eval.crf key; give some of {', '.join(fields)}")
        lo, hi = fields[key].metadata.get("minimum"), fields[key].metadata.get("maximum")
        number = float(value)
        if not math.isfinite(number) or (lo is not None and number < lo) or (hi is not None and number > hi):
            bounds = f"{lo if lo is not None else '-inf'}..{hi if hi is not None else 'inf'}"
            raise UserError(f"{arg('crf_params')} {key}={value}: eval.crf.{key} must be in {bounds}")
        if key == "iterations" and number != int(number):
            raise UserError(f"{arg('crf_params')} {key}={value}: give a whole number of iterations")
        values[key] = int(number) if key == "iterations" else number
    return replace(base, enabled=True, **values)  # type: ignore[arg-type]


def eval_resize(preset: Preset) -> PredictionProtocol:
    """The preset's test-time resize with a plain forward pass (whole image, fp32, no TTA): what export's
    parity gate feeds the exported graph and PyTorch alike."""
    return PredictionProtocol(size=tuple(preset.eval.size), keep_ratio=tuple(preset.eval.keep_ratio))
