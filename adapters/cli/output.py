"""What the CLI prints: the consoles, JSON, progress bars."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.progress import (
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

stdout = Console()
stderr = Console(stderr=True)


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))


def with_progress(catch_up: Callable[[Callable[[int], None] | None], int]) -> int:
    """Run a catch-up, with a progress bar when someone is watching."""
    if not stderr.is_terminal:
        return catch_up(None)
    with Progress(
        SpinnerColumn(),
        "[progress.description]{task.description}",
        TextColumn("{task.completed:,} events"),
        TimeElapsedColumn(),
        console=stderr,
        transient=True,
    ) as progress:
        task = progress.add_task("updating read models", total=None)
        return catch_up(lambda done: progress.advance(task, done))
