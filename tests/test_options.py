"""Declaring options: a dataclass field with its default, one-line doc and bounds; mutable defaults refused."""

from __future__ import annotations

import dataclasses

import pytest

from segcli.options import opt


@dataclasses.dataclass(frozen=True)
class _Options:
    weight: float = opt(1.0, "weight of the term", minimum=0.0)
    gamma: float = opt(2.0, "focusing exponent", minimum=0.0, maximum=5.0)
    classes: tuple[int, ...] = opt((), "class ids (empty: all)")
    name: str = opt("", "free text")


def test_a_field_keeps_its_default_doc_and_bounds() -> None:
    fields = {f.name: f for f in dataclasses.fields(_Options)}
    assert _Options() == _Options(weight=1.0, gamma=2.0, classes=(), name="")
    assert dict(fields["gamma"].metadata) == {"doc": "focusing exponent", "minimum": 0.0, "maximum": 5.0}
    assert dict(fields["weight"].metadata) == {"doc": "weight of the term", "minimum": 0.0, "maximum": None}
    assert fields["classes"].metadata["minimum"] is None and fields["classes"].default == ()


@pytest.mark.parametrize("default", [[], [1, 2], {}, {"a": 1}])
def test_mutable_defaults_are_refused(default: object) -> None:
    with pytest.raises(TypeError, match="use tuples for sequence defaults"):
        opt(default, "a list")
