"""A catch-up's next batch read from the log while the current one is written.

A batch's work is the client's (reading the log's events and parsing their states, building
rows) and the database's (writing the rows and their indexes, the commit). Done one after the
other, a catch-up's time is their sum. Reading and parsing the next batch needs nothing the
current one writes (the log is only appended to), so a thread of its own does it meanwhile,
through the ledger's own connections: while the writer waits for the database (PostgreSQL's
server, SQLite's engine: neither holds the GIL), the reader runs, and its read waits for the
database while the writer's Python runs.

At most one batch is read ahead, and only after a full batch: a batch shorter than asked
for reached the end of the log, and the next one is read when the catch-up gets there, as
it always was (a live tail waits for no reader). The writer takes a batch read ahead only if
it starts where the position rows it locked say the next batch starts, and if it is the same
batch a read at that moment would give (`Read.fits`); otherwise it reads the batch itself.
The price is memory: a long catch-up holds two batches' parsed events at once, not one.

On PostgreSQL the batch read ahead has a settling projection's rows built too, in another
thread (`BuildAhead`), while the current batch's rows are written: the server writes one
batch (its COPYs, their indexes, the commit) while the client builds the next one's rows,
from the read model as another connection reads it with the current batch's rows over it
(`runner.SettlingProjection.build_unsettled`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import NamedTuple

from sqlalchemy import Connection, Engine

from ledger import Ledger
from ledger.fields import StoredFields


class Read(NamedTuple):
    """A batch read from the log: the events of the topics after position `after` (at most
    the batch's size, none past `until`), and the log's end (`until` at most) read first."""

    after: int
    end: int
    events: list[StoredFields]

    def fits(self, after: int, end: int, batch_size: int) -> bool:
        """Whether a writer that locked the position rows at `after`, the log's end read at
        `end`, can apply this batch as though it had read it then: the log is only appended
        to, and every event up to its end was committed when the end was read
        (`Ledger.last_position`), so a full batch read earlier is the same batch; one that
        reached the end of the log is, if the end has not moved since."""
        return self.after == after and (len(self.events) == batch_size or self.end >= end)


def read_batch(
    ledger: Ledger, after: int, batch_size: int, topics: Sequence[str], until: int | None
) -> Read:
    """The log's end (no later than `until`), then the batch after `after` (`read_events`),
    none read once the end is not past `after`."""
    end = log_end(ledger, until)
    events = read_events(ledger, after, batch_size, topics, until) if end > after else []
    return Read(after, end, events)


def log_end(ledger: Ledger, until: int | None) -> int:
    """The position of the newest event in the log, `until` at most."""
    end = ledger.last_position()
    return end if until is None else min(end, until)


def read_events(
    ledger: Ledger, after: int, batch_size: int, topics: Sequence[str], until: int | None
) -> list[StoredFields]:
    """The next `batch_size` events of `topics` after `after`, those up to `until`."""
    events = ledger.stored_fields(after, batch_size, topics)
    if until is not None:
        events = [event for event in events if event[0] <= until]
    return events


@dataclass
class Overlap:
    """Where the catch-up's writer and its reader waited for each other, in seconds of wall
    time: what a benchmark shows of the read-ahead."""

    reads: int = 0  # batches read ahead
    taken: int = 0  # of those, applied (the others were read again by the writer)
    failed: int = 0  # of those, failed in the reader (read again by the writer)
    reading: float = 0.0  # the reader's wall time reading and parsing
    reading_cpu: float = 0.0  # its thread's CPU time
    writer_waited: float = 0.0  # the writer blocked on a read not yet finished
    reader_waited: float = 0.0  # the reader idle, its read done, until the next was asked
    builds: int = 0  # a projection's rows of a batch read ahead built ahead (`BuildAhead`)
    builds_taken: int = 0  # of those, written
    builds_failed: int = 0  # of those, failed in the builder (built again by the writer)
    building_cpu: float = 0.0  # the builder's thread's CPU time
    writer_waited_build: float = 0.0  # the writer blocked on rows not yet built


class ReadAhead:
    """One batch read ahead in a thread of its own, started by `start`, taken by `take`;
    `close` waits for it and ends the thread (at the end of a catch-up, or its error)."""

    def __init__(self, read: Callable[[int], Read]) -> None:
        self._read = read
        self._thread: ThreadPoolExecutor | None = None  # started with the first read ahead
        self._pending: tuple[int, Future[Read]] | None = None  # where it reads from, its read
        self._done_at: float | None = None  # when the reader finished its last read
        self.overlap = Overlap()

    def start(self, after: int) -> None:
        """Read the batch after position `after` in the reader's thread. Where no thread can
        be started (none left to the process, or the interpreter shutting down) nothing is
        read ahead: the writer reads the batch itself, as without a reader."""
        assert self._pending is None, "one batch ahead at most"
        try:
            if self._thread is None:
                self._thread = ThreadPoolExecutor(1, thread_name_prefix="catch-up-read-ahead")
            future = self._thread.submit(self._timed, after)
        except RuntimeError:
            # `submit` queues the read before it starts the thread: a thread that failed to
            # start leaves it queued, to be run first by the next thread; cancelled here.
            if self._thread is not None:
                self._thread.shutdown(wait=False, cancel_futures=True)
                self._thread = None
            return
        if self._done_at is not None:
            self.overlap.reader_waited += time.perf_counter() - self._done_at
        self.overlap.reads += 1
        self._pending = (after, future)

    def wait(self) -> None:
        """Wait until the batch being read ahead (if any) is read: called before the writer
        locks the position rows, so that they are not held while it waits."""
        if self._pending is not None and not self._pending[1].done():
            started = time.perf_counter()
            self._pending[1].exception()  # waits; an error is raised by `take`
            self.overlap.writer_waited += time.perf_counter() - started

    def take(self, after: int, end: int, batch_size: int) -> list[StoredFields] | None:
        """The events read ahead if they are the batch after `after` with the log's end at
        `end` (`Read.fits`), else None: the writer reads the batch itself. So it does when
        the reader's read failed: the read ahead only saves time, and a writer's own read
        either succeeds (the failure was passing, or the batch is no longer the one read)
        or fails with its own error, in the writer's thread. Either way nothing is left
        pending."""
        self.wait()
        pending, self._pending = self._pending, None
        if pending is None or pending[0] != after:
            return None  # a read from elsewhere, dropped with its error if it had one
        if pending[1].exception() is not None:
            self.overlap.failed += 1
            return None
        read = pending[1].result()
        if not read.fits(after, end, batch_size):
            return None
        self.overlap.taken += 1
        return read.events

    def pending(self) -> Future[Read] | None:
        """The read ahead started by `start` and not yet taken."""
        return None if self._pending is None else self._pending[1]

    def close(self) -> None:
        """Wait for a read still going and end the reader's thread; its result and error
        are dropped (the catch-up is over, or failed with an error of its own)."""
        self._pending = None
        if self._thread is not None:
            self._thread.shutdown(wait=True, cancel_futures=True)
            self._thread = None

    def _timed(self, after: int) -> Read:
        started, cpu = time.perf_counter(), time.thread_time()
        try:
            return self._read(after)
        finally:
            self._done_at = time.perf_counter()
            self.overlap.reading += self._done_at - started
            self.overlap.reading_cpu += time.thread_time() - cpu


# Builds a projection's rows of a batch from its events, reading its tables through the
# connection given (`runner.SettlingProjection.build_unsettled`).
Build = Callable[[Connection, list[StoredFields]], object]


class BuildAhead:
    """A projection's rows of the batch being read ahead, built in a thread of its own (one
    for all projections, with a connection of the read models' engine) while the current
    batch is written: on PostgreSQL the server writes one batch's rows (the COPYs, their
    indexes) while the client builds the next one's, where one waited for the other.

    `start` builds once the read ahead is done; `take` gives the rows to the batch that
    applies those very events (the same list: a batch the writer read again is built again)
    with the projection's position row as the builder expected it. Whatever is not taken is
    dropped, its error too: the writer builds the rows itself."""

    def __init__(self, engine: Engine, overlap: Overlap) -> None:
        self._engine = engine
        self._thread: ThreadPoolExecutor | None = None
        # By projection: the position and generation expected, what is being built.
        self._pending: dict[str, tuple[tuple[int, int], Future[tuple[object, object]]]] = {}
        self.overlap = overlap  # the read-ahead's, counting the builds too

    def start(self, name: str, expected: tuple[int, int], read: Future[Read], build: Build) -> None:
        """Build the projection's rows of `read`'s events, to be taken by the batch that
        finds its position and generation at `expected`. Where no thread can be started,
        nothing is built ahead."""
        try:
            if self._thread is None:
                self._thread = ThreadPoolExecutor(1, thread_name_prefix="catch-up-build-ahead")
            future = self._thread.submit(self._build, read, build)
        except RuntimeError:
            if self._thread is not None:
                self._thread.shutdown(wait=False, cancel_futures=True)
                self._thread = None
            return
        self.overlap.builds += 1
        self._pending[name] = (expected, future)

    def wait(self) -> None:
        """Wait for the rows being built: called before the writer locks the position
        rows."""
        for _, future in self._pending.values():
            if not future.done():
                started = time.perf_counter()
                future.exception()
                self.overlap.writer_waited_build += time.perf_counter() - started

    def take(
        self, name: str, position: int, generation: int, events: list[StoredFields]
    ) -> object | None:
        """The projection's rows built from `events` (this very list: the batch read
        ahead, taken) if its position row stands at `position` in `generation`, where the
        builder expected it; else None."""
        pending = self._pending.pop(name, None)
        if pending is None or pending[0] != (position, generation):
            return None
        if pending[1].exception() is not None:
            return None
        built_from, built = pending[1].result()
        if built_from is not events:
            return None
        self.overlap.builds_taken += 1
        return built

    def close(self) -> None:
        """Wait for rows still being built and end the thread; they are dropped."""
        self._pending.clear()
        if self._thread is not None:
            self._thread.shutdown(wait=True, cancel_futures=True)
            self._thread = None

    def _build(self, read: Future[Read], build: Build) -> tuple[object, object]:
        events = read.result().events
        cpu = time.thread_time()
        try:
            # Each read a transaction of its own: none holds a table's lock while it waits
            # for another's (a reset's TRUNCATE takes them one by one), so no deadlock. The
            # rows are as consistent as in one transaction: what the batch being written
            # replaces is taken from its rows, and a position moved by another runner
            # meanwhile leaves the rows built here untaken.
            with self._engine.connect() as conn:
                reader = conn.execution_options(isolation_level="AUTOCOMMIT")
                return events, build(reader, events)
        except Exception:
            self.overlap.builds_failed += 1
            raise
        finally:
            self.overlap.building_cpu += time.thread_time() - cpu
