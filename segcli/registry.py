"""Name → builder registries with helpful errors (models, losses, dataset converters...)."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from segcli.errors import UserError

T = TypeVar("T", bound=Callable[..., Any])


def did_you_mean(name: str, options: list[str] | tuple[str, ...]) -> str:
    """Return ' (did you mean "x"?)' for the closest option, or '' when none is close."""
    close = difflib.get_close_matches(name, list(options), n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""


class Registry(Generic[T]):
    """Maps names to builders. Duplicate names raise; unknown names list the valid ones.

    With ``info`` (a callable, usually a frozen dataclass), ``register(name, **kwargs)`` also stores
    ``info(**kwargs)`` for the name: what callers need to know about a builder without calling it.
    """

    def __init__(self, kind: str, info: Callable[..., Any] | None = None) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._info_type = info
        self._info: dict[str, Any] = {}

    def register(self, name: str, **info: Any) -> Callable[[T], T]:
        if info and self._info_type is None:
            raise TypeError(f"the {self.kind} registry takes no registration info, got {sorted(info)}")
        meta = self._info_type(**info) if self._info_type is not None else None

        def deco(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            self._info[name] = meta
            return obj

        return deco

    def unregister(self, name: str) -> None:
        """Remove ``name`` (tests register temporary builders)."""
        self._items.pop(name, None)
        self._info.pop(name, None)

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            valid = ", ".join(sorted(self._items))
            raise UserError(f"unknown {self.kind} {name!r}{did_you_mean(name, self.names())}; valid: {valid}") from None

    def info(self, name: str) -> Any:
        """The registration info of ``name`` (unknown names raise as in :meth:`get`)."""
        self.get(name)
        return self._info[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)
