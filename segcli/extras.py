"""Optional extras: is a package installed, and the one-line fix when it is not.

Features behind an extra (``tensorboard``, ``wandb``, ``plots``) check here when a preset loads, so a
missing package is a clear error naming the ``pip install`` line instead of an ImportError mid-run.
"""

from __future__ import annotations

import importlib.util


def package_available(package: str) -> bool:
    """True when ``package`` can be imported (found without importing it)."""
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):  # a parent package missing, or a module set to None in sys.modules
        return False


def install_hint(extra: str) -> str:
    """The command that installs segcli's ``extra``."""
    return f"pip install 'segcli[{extra}]'"
