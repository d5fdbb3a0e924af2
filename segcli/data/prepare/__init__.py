"""Dataset converters: each writes the one segcli format (see segcli.data.format).

A converter is one module defining a :class:`Converter` subclass decorated with
:func:`register_converter`, plus its name in :data:`MODULES` (the registration line).
``prepare(name, sources, out, **options)`` runs one; ``converters()`` lists them.
"""

from __future__ import annotations

import importlib

from segcli.data.prepare.converter import CONVERTERS, Converter, Option, Plan, prepare, register_converter
from segcli.data.prepare.writer import PrepareResult, Sample, WriteOptions
from segcli.registry import Registry

# One entry per converter module; importing it registers its converters.
MODULES = (
    "shapes",
    "cityscapes",
    "ade20k",
    "folder",
    "voc",
    "voc_aug",
    "loveda",
    "lip",
    "mapillary",
    "camvid",
    "coco_stuff",
    "faces",
)


def converters() -> Registry[Converter]:
    """The converter registry, with every module of :data:`MODULES` imported (registered)."""
    for module in MODULES:
        importlib.import_module(f"{__name__}.{module}")
    return CONVERTERS


__all__ = [
    "CONVERTERS",
    "MODULES",
    "Converter",
    "Option",
    "Plan",
    "PrepareResult",
    "Sample",
    "WriteOptions",
    "converters",
    "prepare",
    "register_converter",
]
