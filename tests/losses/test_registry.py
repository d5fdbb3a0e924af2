"""The loss registry: what a loss declares when it registers (its options) matches how it is built."""

from __future__ import annotations

import dataclasses
import inspect

import pytest
import torch

from segcli.errors import UserError
from segcli.losses import LOSSES, LossInfo, NoOptions, loss_options

ALL_TERMS = tuple(LOSSES.names())


def test_the_bundled_losses_are_registered() -> None:
    assert {"ce", "ohem", "topk", "dice", "focal", "lovasz", "jaccard", "tversky"} <= set(LOSSES.names())


@pytest.mark.parametrize("term", ALL_TERMS)
def test_every_option_is_a_keyword_of_the_loss_with_the_same_default(term: str) -> None:
    """A loss is built with every field of its options dataclass as a keyword argument."""
    params = inspect.signature(LOSSES.get(term)).parameters
    for f in dataclasses.fields(loss_options(term)):
        assert f.name in params and params[f.name].default == f.default, f.name


def test_a_loss_without_options_declares_no_options() -> None:
    assert loss_options("dice") is not NoOptions  # dice has options (smooth, log_loss)
    name = "_test_no_options"
    LOSSES.register(name)(lambda num_classes: torch.nn.Identity())
    try:
        assert loss_options(name) is NoOptions and dataclasses.fields(NoOptions) == ()
        assert LOSSES.info(name) == LossInfo()
    finally:
        LOSSES.unregister(name)
    assert name not in LOSSES


def test_unknown_loss_options_name_the_valid_losses() -> None:
    with pytest.raises(UserError, match=r"unknown loss 'fcal' \(did you mean \"focal\"\?\); valid: .*ce"):
        loss_options("fcal")
