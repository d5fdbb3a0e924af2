"""segcli: semantic segmentation from one command, `seg`."""

__version__ = "0.1.0"
