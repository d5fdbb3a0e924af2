"""Key maps: declarative tables that rename another library's state dict into a segcli model's.

One module per source library registers its maps in ``MAPS`` (``@register`` on a function returning
a :class:`KeyMap`); adding a source is one new module plus its name in the import line of the package `__init__`.
A map also names the segcli model its weights fit (``model``: ``[model]`` preset keys), the keys that
identify the format (auto-detection), and a ``transform`` for values that need more than a new name
(a bias synthesised as zeros, a BatchNorm folded into the convolution before it).

A map whose source does not match any segcli architecture is registered with ``unsupported`` set to
the reason, so `seg convert-ckpt --from` explains instead of converting something that computes
something else.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from segcli.errors import CheckpointError, arg
from segcli.registry import Registry

State = dict[str, torch.Tensor]


@dataclass(frozen=True)
class KeyMap:
    """How one source format's keys become a segcli model's keys."""

    name: str  # "library:model", the value of --from
    doc: str  # one line: what it converts (and what it does not)
    model: dict[str, Any] = field(default_factory=dict)  # [model] preset keys of the matching segcli model
    rules: tuple[tuple[str, str], ...] = ()  # (regex matched at the start of a source key, replacement); first wins
    drop: tuple[str, ...] = ()  # source keys dropped on purpose (regex): auxiliary heads and the like
    signature: tuple[str, ...] = ()  # source keys that must all be present for auto-detection
    absent: tuple[str, ...] = ()  # source keys that must be absent (tells resnet50 from resnet101)
    classifier: str = ""  # source key whose first dimension is the number of classes
    infer: Callable[[State], dict[str, Any]] | None = None  # [model] keys read off the source (widths)
    needs_backbone: bool = False  # the source does not record its encoder: --backbone is required
    transform: Callable[[State], State] | None = None  # after renaming: fill in or fold values ("@..." keys)
    unsupported: str = ""  # non-empty: why no segcli model matches this source

    def apply(self, sd: State) -> tuple[State, list[str], list[str]]:
        """(renamed state, source keys no rule maps, source keys dropped by the map)."""
        out: State = {}
        unmapped: list[str] = []
        dropped: list[str] = []
        drops = [re.compile(p) for p in self.drop]
        rules = [(re.compile(p), r) for p, r in self.rules]
        for key, value in sd.items():
            if any(d.match(key) for d in drops):
                dropped.append(key)
                continue
            for pat, repl in rules:
                if pat.match(key):
                    new = pat.sub(repl, key, count=1)
                    if new in out:
                        raise CheckpointError(f"map {self.name}: two keys become {new!r}")
                    out[new] = value
                    break
            else:
                unmapped.append(key)
        if self.transform is not None and not unmapped:
            out = self.transform(out)
        return out, unmapped, dropped

    def matches(self, keys: set[str]) -> bool:
        """Whether a state dict with ``keys`` looks like this map's source format."""
        return (
            bool(self.signature) and all(k in keys for k in self.signature) and not any(k in keys for k in self.absent)
        )

    def num_classes(self, sd: State) -> int | None:
        """The number of classes a source state dict was trained for (None: the map cannot tell)."""
        t = sd.get(self.classifier)
        return int(t.shape[0]) if t is not None else None


MAPS: Registry[Callable[[], KeyMap]] = Registry("key map")


def register(fn: Callable[[], KeyMap]) -> Callable[[], KeyMap]:
    """Register a map under the name it returns."""
    MAPS.register(fn().name)(fn)
    return fn


def get_map(name: str) -> KeyMap:
    """The map ``name``; an unsupported source is a CheckpointError carrying the reason."""
    km = MAPS.get(name)()
    if km.unsupported:
        raise CheckpointError(f"{arg('source')} {name}: no segcli model matches it: {km.unsupported}")
    return km


def detect(sd: State) -> KeyMap | None:
    """The one map whose signature the state dict has (None: none; several: an error naming them)."""
    keys = set(sd)
    found = [km for km in (MAPS.get(n)() for n in MAPS.names()) if km.matches(keys)]
    if len(found) > 1:
        raise CheckpointError(
            "the checkpoint looks like several formats ("
            + ", ".join(k.name for k in found)
            + f"); pick one with {arg('source')}"
        )
    if found and found[0].unsupported:
        get_map(found[0].name)  # raises with the reason
    return found[0] if found else None


# --- value transforms shared by the maps -------------------------------------------------------


def zero_bias(weight_key: str) -> Callable[[State], State]:
    """Synthesise a zero bias for a convolution that had none in the source."""

    def fn(sd: State) -> State:
        w = sd[weight_key]
        sd[weight_key[: -len("weight")] + "bias"] = torch.zeros(w.shape[0], dtype=w.dtype)
        return sd

    return fn


def fold_bn(bn: str, conv: str, eps: float = 1e-5) -> Callable[[State], State]:
    """Fold BatchNorm ``bn`` (``@``-keys: weight, bias, running_mean, running_var) into the conv before it.

    Exact in inference: ``BN(conv(x)) == conv'(x)`` with ``w' = w * s`` and ``b' = beta + (b - mean) * s``,
    ``s = gamma / sqrt(var + eps)``.
    """

    def fn(sd: State) -> State:
        gamma, beta = sd.pop(f"{bn}.weight"), sd.pop(f"{bn}.bias")
        mean, var = sd.pop(f"{bn}.running_mean"), sd.pop(f"{bn}.running_var")
        sd.pop(f"{bn}.num_batches_tracked", None)
        w = sd[f"{conv}.weight"]
        b = sd.get(f"{conv}.bias", torch.zeros(w.shape[0], dtype=w.dtype))
        s = gamma / torch.sqrt(var + eps)
        sd[f"{conv}.weight"] = w * s.view(-1, *([1] * (w.dim() - 1)))
        sd[f"{conv}.bias"] = beta + (b - mean) * s
        return sd

    return fn


def identity_conv_bn(prefix: str, channels: int) -> Callable[[State], State]:
    """A 3x3 conv + BatchNorm that pass their input through unchanged (``prefix.0`` conv, ``prefix.1`` BN).

    Fills a layer segcli has and the source has not, where a ReLU follows (ReLU(ReLU(x)) = ReLU(x)).
    """

    def fn(sd: State) -> State:
        w = torch.zeros(channels, channels, 3, 3)
        w[torch.arange(channels), torch.arange(channels), 1, 1] = 1.0
        sd[f"{prefix}.0.weight"] = w
        sd[f"{prefix}.1.weight"] = torch.ones(channels)
        sd[f"{prefix}.1.bias"] = torch.zeros(channels)
        sd[f"{prefix}.1.running_mean"] = torch.zeros(channels)
        sd[f"{prefix}.1.running_var"] = torch.full((channels,), 1.0 - 1e-5)  # (var + eps) == 1
        sd[f"{prefix}.1.num_batches_tracked"] = torch.tensor(0)
        return sd

    return fn


def chain(*fns: Callable[[State], State]) -> Callable[[State], State]:
    """Apply transforms in order."""

    def fn(sd: State) -> State:
        for f in fns:
            sd = f(sd)
        return sd

    return fn
