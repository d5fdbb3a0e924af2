"""The model registry and what it knows about each model without building it.

Architecture modules import ``MODELS`` from here (never the package ``__init__``), and register a
builder, a function or a class called as ``builder(num_classes, **options)``::

    @MODELS.register("fpn")                                    # a decoder on a timm encoder
    @MODELS.register("bisenetv1", strides=(32,), builtin_aux=2)  # two built-in aux heads
    @MODELS.register("enet", timm_encoder=False, rejects=("separable",))

A decoder's default output stride is its ``default_stride`` class attribute (see ``base.EncoderDecoder``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch.nn as nn

from segcli.registry import Registry


@dataclass(frozen=True)
class ModelInfo:
    """What preset validation needs to know about a model, declared when it is registered."""

    timm_encoder: bool = True  # it uses model.backbone; False = its own backbone (backbone, aux_stages unused)
    strides: tuple[int, ...] = (8, 16, 32)  # the explicit output strides it supports
    builtin_aux: int = 0  # auxiliary outputs of its built-in heads in training (when builtin_aux is on)
    rejects: tuple[str, ...] = ()  # options it cannot honour: setting them to a non-default value is an error
    paper: str = ""  # the paper it follows: "Authors, Title, venue year"
    reference: str = ""  # the reference implementation its layers and tests are checked against

    def aux_outputs(self, builtin_aux: bool, aux_stages: Sequence[int]) -> int:
        """How many auxiliary outputs it returns in training with these options."""
        return (self.builtin_aux if builtin_aux else 0) + (len(aux_stages) if self.timm_encoder else 0)


MODELS: Registry[Callable[..., nn.Module]] = Registry("model", info=ModelInfo)


def model_options(name: str) -> frozenset[str] | None:
    """The keyword options the builder of ``name`` accepts (None: any, it takes ``**kwargs``)."""
    builder = MODELS.get(name)
    params = list(inspect.signature(builder).parameters.values())[1:]  # after num_classes
    named = frozenset(p.name for p in params if p.kind is not p.VAR_KEYWORD)
    extra = getattr(builder, "extra_options", None)  # a decoder's own options (base.EncoderDecoder)
    if isinstance(extra, dict):
        return named | frozenset(extra)
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return named


def supported_options(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """The subset of ``options`` that the builder of ``name`` takes (models with their own backbone take no
    ``backbone``, for example)."""
    accepted = model_options(name)
    return {k: v for k, v in options.items() if accepted is None or k in accepted}


def short_paper(paper: str) -> str:
    """``"Long et al., Fully Convolutional ..., CVPR 2015"`` → ``"Long et al., CVPR 2015"`` (for narrow tables);
    authors listed by name are cut to the first: ``"Kirillov, Wu, He, Girshick, ..."`` → ``"Kirillov et al."``."""
    parts = [p.strip() for p in paper.split(",")]
    if len(parts) < 3:
        return paper
    first = parts[0] if len(parts) == 3 or "et al" in parts[0] else f"{parts[0]} et al."
    return f"{first}, {parts[-1]}"
