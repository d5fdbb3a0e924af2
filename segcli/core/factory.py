"""The preset layer over models and losses: maps a validated preset's keys onto the builders' options.

Models and losses know nothing of presets; this module is the one place that reads ``[model]`` and
``[loss]`` to build them. It trusts the preset: :func:`segcli.config.load.load_preset` has already
checked every name, count and file it uses.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import torch

from segcli.config.schema import LossConfig, ModelConfig
from segcli.config.validate import aux_loss_weights, check_class_weights, read_class_weights, resolve_normalisation
from segcli.data.prior import PRIOR_MEAN, PRIOR_STD
from segcli.losses import CombinedLoss, build_loss
from segcli.models import MODELS, Segmenter, build_model, supported_options

# Preset keys that are not builder options (mean/std and the prior go to the Segmenter, name picks the builder).
_NOT_OPTIONS = ("name", "mean", "std", "aux_weights", "prior")


def model_from_preset(cfg: ModelConfig, num_classes: int, in_channels: int | None = None) -> Segmenter:
    """The network of ``[model]`` wrapped in a Segmenter; keys the model does not take are left out.

    Models with their own backbone take no ``backbone``, ``pretrained``, ``output_stride`` or
    ``aux_stages`` (validation rejects the ones that would change what is built). ``mean``/``std`` =
    "auto" become the backbone's pretraining statistics (see ``validate.backbone_norm``).
    The network takes one input channel per ``mean`` value (a loaded preset's mean has ``data.channels``
    values); ``in_channels`` (a preset's ``data.channels``) resolves "auto" for that many and must agree.
    """
    # a loaded preset is resolved already; a ModelConfig made in code may not be
    cfg = resolve_normalisation(cfg, in_channels or 3)
    keys = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if f.name not in _NOT_OPTIONS}
    options = supported_options(cfg.name, keys)
    channels = in_channels or len(cfg.mean)
    mean, std = tuple(cfg.mean), tuple(cfg.std)
    if cfg.prior == "mask":  # one more channel, the previous frame's mask (segcli.data.prior)
        mean, std, channels = (*mean, PRIOR_MEAN), (*std, PRIOR_STD), channels + 1
    prior = cfg.prior == "mask"
    return build_model(cfg.name, num_classes, mean=mean, std=std, in_channels=channels, prior=prior, **options)


def aux_weights(cfg: ModelConfig) -> list[float]:
    """The loss weight of each auxiliary output the model of ``[model]`` returns in training (maybe none).

    The trainer adds ``sum(w_i * loss(aux_i))`` to the main loss; compute this once, not per iteration.
    """
    n_aux = MODELS.info(cfg.name).aux_outputs(cfg.builtin_aux, cfg.aux_stages)
    return aux_loss_weights(cfg.aux_weights, n_aux, cfg.name)


def resolve_class_weights(
    value: tuple[float, ...] | str, num_classes: int, base: str | os.PathLike = "."
) -> torch.Tensor | None:
    """``loss.class_weights``: a list, or a TOML file from `seg class-weights` (relative to ``base``)."""
    source = "loss.class_weights"
    if isinstance(value, str):
        if not value:
            return None
        path = Path(value) if Path(value).is_absolute() else Path(base) / value
        value, source = read_class_weights(path), str(path)
    if not value:
        return None
    check_class_weights(value, num_classes, source)
    return torch.tensor(value, dtype=torch.float32)


def class_weights_from_preset(cfg: LossConfig, num_classes: int) -> torch.Tensor | None:
    """The class weights of ``[loss]`` for a dataset of ``num_classes`` (None = unweighted).

    A relative file path is relative to the working directory, like ``data.root``. The one check left
    for training time: the number of weights against the dataset's classes.
    """
    return resolve_class_weights(cfg.class_weights, num_classes)


def loss_from_preset(
    cfg: LossConfig, num_classes: int, ignore_index: int, class_weights: torch.Tensor | None
) -> CombinedLoss:
    """The weighted sum of ``loss.terms``, each configured from its ``[loss.<term>]`` table (or defaults).

    Call it as ``loss(logits, target)``; call ``loss.set_progress(step, total)`` every iteration.
    """
    options = {t: cfg.options_for(t) for t in cfg.terms if cfg.options_for(t) is not None}
    return build_loss(
        cfg.terms, num_classes, ignore_index, class_weights, term_weights=cfg.term_weights, options=options
    )


def build_network(
    name: str,
    num_classes: int,
    backbone: str | None = None,
    pretrained: bool = False,
    in_channels: int = 3,
    **options: object,
) -> Segmenter:
    """``segcli.build_model``: the network ``name`` (``seg models``) for ``num_classes`` classes as a plain
    ``nn.Module``, for code that trains it itself. ``backbone``/``pretrained`` and ``options`` are the preset's
    ``model.*`` keys (``decoder_channels=64``, ``output_stride=8``...), checked as a preset's are (an unknown key,
    a backbone the model does not take, a missing backbone are clear errors). It takes RGB in [0, 255] (the
    normalisation of the backbone is inside) and returns logits (N, num_classes, H, W) in eval mode; in training
    mode a model with auxiliary heads returns a dict (``out`` and the auxiliary logits). ``in_channels`` (the
    preset's ``data.channels``) other than 3 gives a stem for that many channels (timm adapts pretrained RGB
    stem weights); ``mean``/``std`` then need that many values (left out: RGB's, then 0.5/0.25 per extra channel)."""
    from segcli.config.load import load_preset

    keys = {"name": name, **({"backbone": backbone} if backbone is not None else {}), **options}
    if pretrained:
        keys["pretrained"] = True
    overrides = [override_text(f"model.{k}", v) for k, v in keys.items()]
    if in_channels != 3:
        overrides.append(f"data.channels={in_channels}")
    cfg = load_preset(None, overrides).preset.model
    return model_from_preset(cfg, num_classes, in_channels)


def override_text(key: str, value: object) -> str:
    """``key=value`` as typed on the command line, for a Python value: booleans as true/false, lists and tuples
    as TOML arrays (strings quoted), paths and everything else as their text (what the Python calls hand
    ``load_preset``)."""
    return f"{key}={_value_text(value)}"


def _value_text(value: object, quoted: bool = False) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value_text(v, quoted=True) for v in value) + "]"
    if isinstance(value, (str, os.PathLike)):
        text = os.fspath(value)
        return json.dumps(text) if quoted else text
    return str(value)
