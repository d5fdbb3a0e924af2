"""Optional extras: whether a package is installed, and the one line that says how to install it or do without."""

from __future__ import annotations

import sys

import pytest

from segcli.extras import install_hint, missing, package_available


def test_package_available_finds_without_importing() -> None:
    assert package_available("json") and package_available("segcli.io_utils")
    assert not package_available("segcli_no_such_package")
    assert not package_available("segcli_no_such_package.sub")  # a missing parent is not an ImportError


def test_a_module_set_to_none_counts_as_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    """``sys.modules[name] = None`` is how a test (or a user) blocks a package: find_spec raises ValueError."""
    monkeypatch.setitem(sys.modules, "segcli_blocked", None)
    assert not package_available("segcli_blocked")


def test_install_hint_names_the_extra() -> None:
    assert install_hint("wandb") == "pip install 'segcli[wandb]'"


def test_missing_is_none_for_an_installed_package() -> None:
    assert missing("json", "plots", "train.plots: true", "set train.plots = false") is None


def test_missing_is_one_line_naming_what_asked_the_fix_and_the_way_around() -> None:
    line = missing("segcli_no_such_package", "wandb", "train.loggers: 'wandb'", "remove 'wandb' from train.loggers")
    assert line == (
        "train.loggers: 'wandb' needs the segcli_no_such_package package, which is not installed; "
        "pip install 'segcli[wandb]' (or remove 'wandb' from train.loggers)"
    )
