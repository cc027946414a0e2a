"""The CLI's progress hook: a transient rich bar on stderr, shown only on a terminal and only
for work that takes more than a second (rich starts drawing after its first refresh)."""

from __future__ import annotations

from typing import Iterable, Iterator, TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

T = TypeVar("T")


class RichProgress:
    def __init__(self, console: Console):
        self.console = console

    def track(self, items: Iterable[T], total: int | None, description: str) -> Iterator[T]:
        if not self.console.is_terminal:
            yield from items
            return
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn())
        with Progress(*columns, console=self.console, transient=True) as bar:
            task = bar.add_task(description, total=total)
            for item in items:
                yield item
                bar.advance(task)
