"""Python's cycle collector held off while a batch of work allocates, and kept off what a
long run of batches holds.

A batch that makes tens of thousands of objects that all live until it ends (an ingest's
events and results, a replay's steps and outcomes) wakes the collector every 700 new objects;
it walks the young ones each time and every object alive every so often, finding nothing to
free: about a fifth of an ingest's CPU time and half a replay's went there. Paused, it runs
again (at the next allocations) once the last batch ends. Only for work that makes no
reference cycle that must be freed midway (reference counting frees the rest as usual).

Between the batches of a long ingest the ledger holds more and more (the aggregates cached,
the locations' timelines of the day): the collector's full passes walk all of it, each pass
longer than the last, and find next to nothing (a million-line day: 8 passes, 7.9 s of CPU,
3,115 objects freed). `survivors_set_aside` moves what the batches left alive out of the
collector's sight once their own cyclic garbage is collected, every so many new objects rather
than at every batch (most of what a batch makes is freed by the next); reference counting still
frees what is set aside (an aggregate evicted from the cache) and the collector sees it all
again when the run ends.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

# The collector is one per process, its pauses counted across threads (the server's batches
# overlap): the first pause turns it off, the last one's end turns it back on, if it was.
# Without the count, a pause beginning as another ended could find it off, turn it off after
# the other turned it on again, and leave it off for good.
_lock = threading.Lock()
_pauses = 0
_was_enabled = False
_set_asides = 0  # runs setting survivors aside: the last one's end gives them back


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


@contextmanager
def survivors_set_aside() -> Iterator[Callable[[], None]]:
    """Inside, the function given sets aside (`gc.freeze`) what the batches so far left alive,
    to be called between batches once the last batch's references are dropped. Once the
    collector's young objects have grown by `YOUNG_GROWTH_MAX` since it last ran, it first
    collects them, so that the batches' cycles (a refusal and its traceback, if one were
    kept) are freed rather than set aside; what is set aside and becomes a cycle later is
    kept until the end. At the end (of the last such run, for runs in several threads) the
    collector is given everything back (`gc.unfreeze`), to free on its own schedule."""
    global _set_asides
    with _lock:
        if _set_asides == 0:
            _freeze()  # what lived before the first batch: set aside, never walked again
        _set_asides += 1
    try:
        yield _set_aside
    finally:
        with _lock:
            _set_asides -= 1
            if _set_asides == 0:
                gc.unfreeze()


# The collector's count of its young objects (`gc.get_count()[0]`: containers it tracks made,
# less those freed, since it last ran or set them aside) that a set-aside lets grow before it
# collects. The count is the heap's growth in containers, cyclic garbage included, not in
# bytes: a few containers may hold a large line. So nothing a batch leaves may be kept by a
# cycle of its own that holds its lines (an ingest's refusals, raised while parsing or while
# deciding, are kept without their tracebacks): what a cycle holds is no batch's data. A
# collection walks every young object alive; most of what a batch makes (its records, events,
# results, the next batch's too, decided meanwhile) is freed by reference counting within a
# batch or two, so collecting at every batch walked each of them (about 14,000 a batch of
# 1,000 lines, 2-4 ms) to find nothing, while one collection every several batches walks only
# what is still alive then (about 100,000 objects every 7 to 50 batches as the ledger's cache
# fills).
YOUNG_GROWTH_MAX = 100_000

# The collections of each generation counted when the set-aside last froze (`gc.get_stats`).
_collections_at_freeze = [0, 0, 0]


def _set_aside() -> None:
    # Another thread's collection (a catch-up's, every few seconds) empties the young count
    # and moves what is alive then on to an older generation, a batch's cycle in use among it:
    # then the set-aside collects at once, before that cycle is frozen with the rest.
    if gc.get_count()[0] < YOUNG_GROWTH_MAX and _collections() == _collections_at_freeze:
        return
    # The young generation alone holds what came after the last freeze, unless a collection
    # elsewhere since (another thread's: a catch-up's, `projections.runner`) moved some of it,
    # a batch's cycles alive then among it, on to an older one: then up to that one. A full
    # collection costs about 40 % more than a young one of the same objects (it also goes
    # through every dict, to untrack those that hold no container, and empties free lists).
    # Another collection between the counts' reading and this one may move objects on again
    # (found by this one's count being not the only one to move): then again, up to there.
    level = 0
    while True:
        before = _collections()
        level = max(level, _oldest_moved_to(before))
        gc.collect(level)
        after = _collections()
        after[level] -= 1
        if after == before:
            break
    _freeze()


def _oldest_moved_to(now: list[int]) -> int:
    """The oldest generation a collection since the last freeze may have moved objects to."""
    then = _collections_at_freeze
    return min(max((g + 1 for g in range(len(now)) if now[g] > then[g]), default=0), 2)


def _freeze() -> None:
    # The counts read first: a collection elsewhere between the two is then seen by the next
    # set-aside (what it moved on is frozen here all the same, until the run ends: the gap of
    # two calls cannot be closed without stopping the other threads).
    counts = _collections()
    gc.freeze()
    _collections_at_freeze[:] = counts


def _collections() -> list[int]:
    return [generation["collections"] for generation in gc.get_stats()]
