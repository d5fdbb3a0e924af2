"""Checkpoints in and out of segcli: safe loading, key maps for other libraries, `seg convert-ckpt`."""

from segcli.convert.core import ConvertReport, convert

__all__ = ["ConvertReport", "convert"]
