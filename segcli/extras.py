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


def missing(package: str, extra: str, wanted: str, instead: str) -> str | None:
    """None when ``package`` is installed; else the one line for ``wanted`` (what asked for it, e.g.
    ``train.loggers: 'wandb'``) naming the install command and the way to do without (``instead``). Every
    feature behind an extra is checked through here."""
    if package_available(package):
        return None
    return f"{wanted} needs the {package} package, which is not installed; {install_hint(extra)} (or {instead})"
