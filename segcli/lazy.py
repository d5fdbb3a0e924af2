"""Public names imported on first use (a module-level ``__getattr__``, PEP 562), so that importing a package of
segcli stays cheap: ``import segcli`` or ``import segcli.infer`` loads no torch until a name is used."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_names(package: str, public: Mapping[str, str]) -> Callable[[str], Any]:
    """The ``__getattr__`` of ``package``: ``public`` maps a name to where it lives: ``"module"`` (the
    attribute of that name), ``"module:attribute"`` (another name there) or ``"module:"`` (the module itself)."""

    def __getattr__(name: str) -> Any:
        if name not in public:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, _, attribute = public[name].partition(":")
        found = importlib.import_module(module)
        if ":" in public[name] and not attribute:
            return found
        return getattr(found, attribute or name)

    return __getattr__
