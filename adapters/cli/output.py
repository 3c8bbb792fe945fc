"""What the CLI prints: the consoles, JSON, progress bars. A bar goes to standard error and
only when someone is watching (a terminal), so that piped output stays the answer alone.
rich loads when a console is first used and its progress display when a bar is shown: a
command answering in JSON loads neither."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import ProgressColumn


class _FirstUse:
    """Stands for a rich `Console` made when one of its attributes is first read (rich and the
    console's look at the terminal cost a short command more than its answer)."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Console | None = None

    def made(self) -> Console:
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.made(), name)


# No emoji codes: an id may hold colons (`loc:smile:1`), and it is printed as typed.
stdout = cast("Console", _FirstUse(emoji=False))
stderr = cast("Console", _FirstUse(stderr=True, emoji=False))


def _made(console: Console) -> Console:
    """The console itself, for rich's displays that keep it."""
    return cast(_FirstUse, console).made()


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))


@contextmanager
def progress_bar(
    description: str,
    total: int | None,
    *columns: str | ProgressColumn,
    shown: bool = True,
    **fields: Any,
) -> Iterator[Callable[..., None] | None]:
    """A function that advances a transient bar by so many units (and sets the task's other
    `fields`, which columns may show as `{task.fields[name]}`), or None when nothing is shown
    (not `shown`, or standard error is not a terminal)."""
    if not (shown and stderr.is_terminal):
        yield None
        return
    from rich.progress import Progress

    with Progress(*columns, console=_made(stderr), transient=True) as progress:
        task = progress.add_task(description, total=total, **fields)
        yield lambda done, **changed: progress.update(task, advance=done, **changed)


def with_progress(catch_up: Callable[[Callable[[int], None] | None], int]) -> int:
    """Run a catch-up of the read models, with a progress bar when someone is watching."""
    from rich.progress import SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (
        SpinnerColumn(),
        "[progress.description]{task.description}",
        TextColumn("{task.completed:,} events"),
        TimeElapsedColumn(),
    )
    with progress_bar("updating read models", None, *columns) as advance:
        return catch_up(advance)


@contextmanager
def phases_progress(
    shown: bool = True,
) -> Iterator[Callable[[str, int | None], Callable[[int], None]] | None]:
    """One progress line per phase of a long run (the demo); a phase shows done when the next
    starts. None when nothing is shown."""
    if not (shown and stderr.is_terminal):
        yield None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=_made(stderr), transient=True) as progress:
        tasks: list[Any] = []

        def start(description: str, total: int | None) -> Callable[[int], None]:
            if tasks:
                done = progress.tasks[-1].completed or 1
                progress.update(tasks[-1], total=done, completed=done)
            task = progress.add_task(description, total=total)
            tasks.append(task)
            return lambda done: progress.advance(task, done)

        yield start
