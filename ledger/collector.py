"""Python's cycle collector held off while a batch of work allocates.

A batch that makes tens of thousands of objects that all live until it ends (an ingest's
events and results, a replay's steps and outcomes) wakes the collector every 700 new objects;
it walks the young ones each time and every object alive every so often, finding nothing to
free: about a fifth of an ingest's CPU time and half a replay's went there. Paused, it runs
once after the batch. Only for work that makes no reference cycle that must be freed midway
(reference counting frees the rest as usual).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
