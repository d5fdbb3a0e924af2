"""Datasets: the one on-disk format, image/mask I/O, paired transforms, converters."""
