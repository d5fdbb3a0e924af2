"""Checkpoints in and out of segcli: safe loading, key maps for other libraries, `seg convert-ckpt`."""

from segcli.convert.core import ConvertOptions, ConvertReport, TargetOptions, convert

__all__ = ["ConvertOptions", "ConvertReport", "TargetOptions", "convert"]
