"""Name → builder registries: registration once per name, info stored beside each builder, and unknown names
answered with the closest name and the valid ones."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from segcli.errors import UserError
from segcli.registry import Registry, did_you_mean


@dataclass(frozen=True)
class _Info:
    paper: str = ""
    strides: tuple[int, ...] = (32,)


def _registry() -> Registry:
    reg: Registry = Registry("widget", info=_Info)

    @reg.register("round", paper="Round et al.")
    def round_widget() -> str:
        return "round"

    @reg.register("square")
    def square_widget() -> str:
        return "square"

    return reg


def test_register_get_and_iterate() -> None:
    reg = _registry()
    assert reg.get("round")() == "round" and reg.get("square")() == "square"
    assert reg.names() == ["round", "square"] and list(reg) == ["round", "square"] and len(reg) == 2
    assert "round" in reg and "oval" not in reg and 3 not in reg


def test_the_decorator_returns_the_builder_unchanged() -> None:
    reg: Registry = Registry("thing")

    def build() -> int:
        return 1

    assert reg.register("one")(build) is build


def test_info_is_built_from_the_registration_keywords() -> None:
    reg = _registry()
    assert reg.info("round") == _Info(paper="Round et al.")
    assert reg.info("square") == _Info()  # the info type's defaults
    with pytest.raises(UserError, match="unknown widget 'oval'"):
        reg.info("oval")


def test_info_needs_an_info_type() -> None:
    reg: Registry = Registry("thing")
    with pytest.raises(TypeError, match=r"the thing registry takes no registration info, got \['paper'\]"):
        reg.register("x", paper="p")
    reg.register("y")(lambda: None)
    assert reg.info("y") is None


def test_a_name_is_registered_once() -> None:
    reg = _registry()
    with pytest.raises(ValueError, match="widget 'round' is registered twice"):
        reg.register("round")(lambda: None)
    assert reg.get("round")() == "round"  # the first stays


def test_unknown_name_names_the_closest_and_every_valid_one() -> None:
    reg = _registry()
    with pytest.raises(UserError) as info:
        reg.get("sqare")
    assert str(info.value) == "unknown widget 'sqare' (did you mean \"square\"?); valid: round, square"
    with pytest.raises(UserError) as info:
        reg.get("zzz")
    assert str(info.value) == "unknown widget 'zzz'; valid: round, square"


def test_unregister_removes_name_and_info() -> None:
    reg = _registry()
    reg.unregister("round")
    reg.unregister("never registered")  # no error
    assert reg.names() == ["square"] and "round" not in reg
    reg.register("round", paper="again")(lambda: "new")  # the name is free again
    assert reg.get("round")() == "new" and reg.info("round").paper == "again"


@pytest.mark.parametrize(
    ("name", "options", "hint"),
    [
        ("resnet19", ["resnet18", "resnet50"], ' (did you mean "resnet18"?)'),
        ("unetz", ("unet", "fpn"), ' (did you mean "unet"?)'),
        ("xyz", ["unet", "fpn"], ""),
        ("unet", [], ""),
    ],
)
def test_did_you_mean(name: str, options: list[str] | tuple[str, ...], hint: str) -> None:
    assert did_you_mean(name, options) == hint


def test_the_package_registries_are_registries() -> None:
    """Models, losses and converters share this class: an unknown name reads the same everywhere."""
    from segcli.losses import LOSSES
    from segcli.models import MODELS

    for reg in (MODELS, LOSSES):
        assert isinstance(reg, Registry) and len(reg) > 0 and reg.names() == sorted(reg.names())
        with pytest.raises(UserError, match=rf"^unknown {reg.kind} 'no-such-name'.*; valid: {reg.names()[0]}, "):
            reg.get("no-such-name")
