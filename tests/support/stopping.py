"""A catch-up stopped between two of its batches, as a crash would stop it: its `progress`
callback raises once a batch is committed."""

from __future__ import annotations


class Stopped(Exception):
    """Raised by `stop` after a committed batch."""


def stop(applied: int) -> None:
    """A `progress` callback of `ReadModels.refresh`."""
    raise Stopped
