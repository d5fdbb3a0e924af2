"""The converter package: `converters()` imports every module of MODULES, each registering its converters."""

from __future__ import annotations

import importlib

import segcli.data.prepare as package
from segcli.data.prepare import MODULES, Converter, converters


def _converters_defined_in(module_name: str) -> set[str]:
    """The names of the converter classes a module of MODULES defines (not the ones it imports)."""
    mod = importlib.import_module(f"segcli.data.prepare.{module_name}")
    return {
        obj.name
        for obj in vars(mod).values()
        if isinstance(obj, type) and issubclass(obj, Converter) and obj.__module__ == mod.__name__ and obj.name
    }


def test_registry_lists_every_converter() -> None:
    reg = converters()
    defined = set().union(*(_converters_defined_in(m) for m in MODULES))
    assert set(reg.names()) == defined
    assert {"cityscapes", "voc", "shapes", "folder"} <= defined
    for name in reg.names():
        conv = reg.get(name)
        assert conv.name == name and conv.help
    assert not reg.get("shapes").takes_sources  # generated: the only converter that reads no downloads
    assert all(reg.get(name).takes_sources for name in {"cityscapes", "voc", "folder"})


def test_every_module_in_modules_registers_a_converter() -> None:
    for module in MODULES:
        assert _converters_defined_in(module), f"{module} defines no converter"
    assert len(set(MODULES)) == len(MODULES)


def test_converters_returns_the_one_registry_and_loading_twice_is_harmless() -> None:
    first = converters()
    names = first.names()
    assert converters() is first is package.CONVERTERS and converters().names() == names


def test_the_package_exports_what_it_lists() -> None:
    assert all(hasattr(package, name) for name in package.__all__)
    assert {"prepare", "converters", "register_converter", "Converter"} <= set(package.__all__)
