"""Bounded batches of a stream: the one way the ledger cuts work into pieces (records per
transaction, ids per query, observations per chunk of a file)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

BATCH_SIZE_DEFAULT = 1_000  # records per transaction when a file is ingested


def iter_batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Split a stream into lists of at most `size` items, in order, in constant memory: each
    list is one bounded statement, transaction or request."""
    assert size > 0, size
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
