"""Python's cycle collector held off while a batch of work allocates.

A batch that makes tens of thousands of objects that all live until it ends (an ingest's
events and results, a replay's steps and outcomes) wakes the collector every 700 new objects;
it walks the young ones each time and every object alive every so often, finding nothing to
free: about a fifth of an ingest's CPU time and half a replay's went there. Paused, it runs
again (at the next allocations) once the last batch ends. Only for work that makes no
reference cycle that must be freed midway (reference counting frees the rest as usual).
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# The collector is one per process, its pauses counted across threads (the server's batches
# overlap): the first pause turns it off, the last one's end turns it back on, if it was.
# Without the count, a pause beginning as another ended could find it off, turn it off after
# the other turned it on again, and leave it off for good.
_lock = threading.Lock()
_pauses = 0
_was_enabled = False


@contextmanager
def collector_paused() -> Iterator[None]:
    global _pauses, _was_enabled
    with _lock:
        if _pauses == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        with _lock:
            _pauses -= 1
            if _pauses == 0 and _was_enabled:
                gc.enable()
