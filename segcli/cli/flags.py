"""The one map from the engine's argument names to the flags that set them.

The engine names what a caller passed by its Python name (``errors.arg("tile")`` → ```tile```); a command's
error line shows the flag instead (``--tile``). Most flags are the name with dashes; the exceptions are listed.
"""

from __future__ import annotations

from typing import Any

from segcli.config.keys import short_key
from segcli.errors import render_args

# argument name → flag, where the flag is not "--" + the name with dashes
FLAG_OF: dict[str, str] = {
    "out_dir": "--out",
    "weights_or_run": "WEIGHTS_OR_RUN",
    "data_root": "--data",
    "num_workers": "--workers",
    "fmt": "--onnx/--openvino/--torchscript",
    "layout": "--input",
    "which": "--weights",
    "source": "--from",
    "force": "--overwrite",
}


# `seg train`'s common flags: each is the bare key of the preset key it sets, resolved by the short-key rules that
# `key=value` and the Python API use (config.keys.short_key: --data → data.root, --epochs → train.epochs)
TRAIN_FLAGS: tuple[str, ...] = ("epochs", "device", "batch_size", "name", "data")


def train_overrides(values: dict[str, Any]) -> list[str]:
    """The ``key=value`` overrides of the common `seg train` flags given (None: not given), in TRAIN_FLAGS order."""
    return [f"{short_key(name)}={values[name]}" for name in TRAIN_FLAGS if values.get(name) is not None]


def flag_of(name: str) -> str:
    """The command-line flag of the engine argument ``name``."""
    return FLAG_OF.get(name, "--" + name.replace("_", "-"))


def cli_message(message: str) -> str:
    """An engine message as the command line says it: argument names become flags."""
    return render_args(message, flag_of)
