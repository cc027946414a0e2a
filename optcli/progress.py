"""A progress hook the library can call without printing: the CLI plugs in a rich bar on
stderr; the library default does nothing."""

from __future__ import annotations

from typing import Iterable, Iterator, Protocol, TypeVar

T = TypeVar("T")


class Progress(Protocol):
    def track(self, items: Iterable[T], total: int | None, description: str) -> Iterator[T]:
        ...


class NoProgress:
    def track(self, items: Iterable[T], total: int | None, description: str) -> Iterator[T]:
        yield from items
