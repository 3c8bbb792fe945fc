"""Keeping read models up to date from the event log, exactly once.

Each projection reads the log in notification order, in batches. A batch's rows and the
projection's new position are written in one transaction, so a crash or a restart neither skips
nor repeats an event: the next run starts after the last position committed. The position is
moved with a compare-and-set, so a second runner racing on the same projection rolls back
instead of applying a batch twice. Notification ids may have gaps (PostgreSQL sequences): a
projection only ever asks for ids greater than its position.
"""

from __future__ import annotations

import gc
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from operator import is_, itemgetter
from typing import Any, NamedTuple

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    DateTime,
    Engine,
    Integer,
    String,
    Table,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.schema import ScalarElementColumnDefault

from ledger import Ledger
from ledger.collector import collector_paused
from ledger.errors import Code, Conflict
from ledger.fields import StoredFields
from ledger.sqlite_rows import insert_together
from ledger.storage import ID_CHUNK
from projections.read_ahead import BuildAhead, ReadAhead, log_end, read_batch, read_events
from projections.tables import projection_positions

# Events of any projection's topics per transaction, all projections. A batch reloads, deletes
# and inserts again the rows of every payment and sale it touches: the fewer the batches, the
# fewer times a row that several batches touch is rewritten (and the fewer lookups in tables
# that grow as a rebuild goes). At 50,000 payments on PostgreSQL, batches of 20,000 events
# took a third less CPU, client and server, than batches of 5,000.
BATCH_SIZE_DEFAULT = 20_000
BATCH_SIZE_MAX = 50_000
RACE_ATTEMPTS_MAX = 20
ARRAY_IDS_MAX = 20_000  # ids per PostgreSQL statement of `load_rows`, `delete_rows`

Progress = Callable[[int], None]  # told how many events a batch applied


class Projection(ABC):
    """A read model: the events it reads and how a batch of them changes its tables."""

    name: str
    topics: tuple[str, ...]
    tables: tuple[Table, ...]  # emptied by a rebuild

    @abstractmethod
    def apply(self, conn: Connection, events: Sequence[StoredFields]) -> None:
        """Apply a batch of events of `topics`, in log order, inside the caller's transaction.
        Each comes as its fields (`ledger.fields`), not decoded: a projection keeps a few
        fields of each, and decoding every event was most of a catch-up's time."""


class SettlingProjection(Projection):
    """A projection with a step over its whole read model (Stripe's fold per payment) that a
    batch runs for the rows it touched (`apply`), or leaves to one run over every row at the
    end of a catch-up (`apply_unsettled`, then `settle`): cheaper when the catch-up has more
    of the log ahead of it than behind (a rebuild, a first catch-up, a large import).

    Each batch applied unsettled marks its position row `unsettled` in its own transaction.
    On PostgreSQL the batch that reaches the end of the log settles in its transaction and
    clears the mark (a transaction there locks only the rows it writes). On SQLite, whose
    write lock is the whole database's, that batch keeps the mark, and the catch-up settles
    after it (`_settle`): the step's rows are made from a read snapshot (`prepare`), no
    writer waiting, then written in (`settle_prepared`) in a transaction of their own that
    clears the mark, if nothing they were made of changed meanwhile; else `settle` runs in
    that transaction. A catch-up stopped between (a crash) leaves the mark, so the next one
    goes on unsettled and settles; its tables are read only after a catch-up (`ReadModels`),
    which settles them, and never while the mark stands (`unsettled`)."""

    def apply_unsettled(self, conn: Connection, events: Sequence[StoredFields]) -> None:
        """Apply a batch as `apply` does, without the step `settle` runs."""
        self.write_built(conn, self.build_unsettled(conn, events, None))

    @abstractmethod
    def build_unsettled(
        self, conn: Connection, events: Sequence[StoredFields], before: object | None
    ) -> object:
        """`apply_unsettled`'s rows of the batch, made from what `conn` reads of the read
        model, writing nothing; where the batch `before` (its rows, `build_unsettled`'s) is
        given, its rows as it wrote them: it is being written meanwhile, through another
        connection, and committed before these rows are (`write_built`). `before` is
        `EMPTY_READ_MODEL` where the projection stands at position 0: its tables hold no row
        to read."""

    @abstractmethod
    def write_built(self, conn: Connection, built: object) -> None:
        """Write the rows of `build_unsettled`."""

    @abstractmethod
    def settle(self, conn: Connection) -> None:
        """Run the step over the whole read model, after batches applied unsettled."""

    @abstractmethod
    def prepare(self, conn: Connection) -> object:
        """`settle`'s rows made from what `conn` reads, written nowhere but into its
        connection's temporary tables (run in a read transaction)."""

    @abstractmethod
    def settle_prepared(self, conn: Connection, prepared: object) -> None:
        """Write `prepare`'s rows in, as `settle` would have made them, in a later
        transaction of the same connection (the read model unchanged since)."""

    @abstractmethod
    def discard(self, conn: Connection, prepared: object) -> None:
        """Drop what `prepare` made."""


# `SettlingProjection.build_unsettled`'s `before` for a batch that finds its projection at
# position 0: a reset empties the tables as it moves the position there, and every write of
# them moves it past 0 in the same transaction, so they hold no row and none is looked up.
EMPTY_READ_MODEL = object()

# How long a catch-up holds off the collection of young objects, which the collector would
# otherwise run when they outnumber its threshold: at most this long plus a batch's time, the
# cycles other threads leave meanwhile wait for it.
PAUSED_COLLECTION_SECONDS = 2.0

# Set in a connection's `info` while it reads a snapshot to settle from (`_settle`): the
# read models' SQLite writer then begins its transaction DEFERRED, not IMMEDIATE.
SNAPSHOT = "offline_ledger.settling_snapshot"


class PositionMoved(Exception):
    """Another runner committed this projection's batch first, or reset its read model."""


class Standing(NamedTuple):
    """A projection's position row as a transaction found it."""

    position: int
    unsettled: bool
    # How many times its read model was emptied (`reset`): the same position in another
    # generation is a read model built again, not the one a runner's earlier work went into.
    generation: int


def catch_up(
    ledger: Ledger,
    engine: Engine,
    projections: Iterable[Projection],
    *,
    batch_size: int = BATCH_SIZE_DEFAULT,
    progress: Progress | None = None,
    until: int | None = None,
) -> int:
    """Bring the projections up to the end of the log (or up to position `until`: an audit
    meeting the live read models where they stand); return how many events they applied
    (an event two projections read counts twice).

    The log is read once for all of them: each batch is one read of the events of their
    topics, handed to each projection that follows the topic, and every projection's rows and
    position are written in one transaction. Read projection by projection, the log's
    location events were fetched and parsed twice, and each read was a query of its own."""
    assert 0 < batch_size <= BATCH_SIZE_MAX, batch_size
    chosen = list(projections)
    for projection in chosen:
        _ensure_position(engine, projection.name)
    topics = sorted({topic for p in chosen for topic in p.topics})
    ahead = ReadAhead(lambda after: read_batch(ledger, after, batch_size, topics, until))
    batches = _Batches(
        ledger,
        topics,
        batch_size,
        until,
        ahead,
        BuildAhead(engine, ahead.overlap),
    )
    applied = races = 0
    # The collector is held off for the whole catch-up, not batch by batch: between two
    # batches the next one's events and rows (read and built ahead) were alive and young,
    # and the collection that ran there walked every one of them, the writer's thread
    # holding the GIL meanwhile, to free a few dozen objects. The collector is the
    # process's: other threads' cycles (a server's requests) are collected between batches
    # every `PAUSED_COLLECTION_SECONDS`, not held until a long catch-up's end.
    collect_at = time.monotonic() + PAUSED_COLLECTION_SECONDS
    with collector_paused():
        try:
            while True:
                if time.monotonic() >= collect_at:
                    gc.collect(1)
                    collect_at = time.monotonic() + PAUSED_COLLECTION_SECONDS
                try:
                    moved, count = _apply_next_batch(engine, chosen, batches)
                except PositionMoved:
                    races += 1
                    if races > RACE_ATTEMPTS_MAX:
                        raise Conflict(
                            Code.CONTENTION,
                            "other runners moved the read models' positions first "
                            f"{races} times (catch-ups, rebuilds or an audit swap running at "
                            "once): what this one applied is kept, nothing is applied twice; "
                            "run again",
                            details={"attempts": races},
                        ) from None
                    continue
                if not moved:
                    break
                applied += count
                if count and progress is not None:
                    progress(count)
        finally:
            try:
                batches.ahead.close()
            finally:
                # Its thread joined even if the reader's close was interrupted.
                batches.built.close()
    if engine.dialect.name == "sqlite":
        for projection in chosen:
            if isinstance(projection, SettlingProjection):
                _settle(ledger, engine, projection)
    return applied


def _settle(ledger: Ledger, engine: Engine, projection: SettlingProjection) -> None:
    """Settle the projection if a catch-up left it unsettled at the end of the log (SQLite,
    `SettlingProjection`): its step made from a read snapshot, then written in a transaction
    that locks the position row and clears the mark.

    Written in only if the row is in the generation the snapshot read (no reset since: a
    rebuild run whole meanwhile reaches the same position with other rows) and no event of
    the projection's topics came after the snapshot's position (a batch applied meanwhile,
    unsettled, changed what the rows were made of); else `settle` runs in that transaction,
    as the batch that reached the end would have. Either way this settling finishes: events
    arriving meanwhile never start it over."""
    with engine.connect() as conn:
        conn.info[SNAPSHOT] = True
        try:
            with conn.begin():
                seen = _standing(conn, projection.name)
                if not seen.unsettled:
                    return
                prepared = projection.prepare(conn)
        finally:
            del conn.info[SNAPSHOT]
        try:
            with conn.begin():
                now = _standing(conn, projection.name)
                if now.unsettled:
                    if now.generation == seen.generation and not _any_between(
                        ledger, projection, seen.position, now.position
                    ):
                        projection.settle_prepared(conn, prepared)
                    else:
                        projection.settle(conn)
                    conn.execute(
                        update(projection_positions)
                        .where(projection_positions.c.name == projection.name)
                        .values(unsettled=False)
                    )
                projection.discard(conn, prepared)
        except BaseException:
            # The snapshot's temporary tables are dropped in a transaction that takes no
            # write lock (this one may have failed for want of it), or, failing that, die
            # with the connection, taken out of the pool: left on it, they would make every
            # later snapshot on it fail. The error raised is the one that got here.
            conn.info[SNAPSHOT] = True
            try:
                with conn.begin():
                    projection.discard(conn, prepared)
            except Exception:
                del conn.info[SNAPSHOT]
                conn.invalidate()
            else:
                del conn.info[SNAPSHOT]
            raise


def _any_between(ledger: Ledger, projection: Projection, after: int, until: int) -> bool:
    """Whether the log holds an event of the projection's topics after `after`, up to
    `until`."""
    if until <= after:
        return False
    found = ledger.stored_fields(after, 1, sorted(projection.topics))
    return bool(found) and found[0][0] <= until


def rebuild(
    ledger: Ledger,
    engine: Engine,
    projections: Iterable[Projection],
    progress: Progress | None = None,
    batch_size: int = BATCH_SIZE_DEFAULT,
) -> int:
    """Empty the projections' tables and replay the whole log into them."""
    chosen = list(projections)
    reset(engine, chosen)
    return catch_up(ledger, engine, chosen, batch_size=batch_size, progress=progress)


def reset(engine: Engine, projections: Iterable[Projection]) -> None:
    """Empty the projections' tables and forget their positions, in one transaction; each
    position row's generation goes up by one, so a runner that began before can tell the
    read model it worked on is gone even once a catch-up has brought the new one back to the
    same position.

    On PostgreSQL by TRUNCATE (transactional there): a DELETE of every row left them all
    dead in the table and its indexes until a vacuum, and the rebuild that follows inserted
    each row next to its dead copies (a unique index checks each one): a rebuild repeated
    without a vacuum in between slowed down run by run. SQLite empties a table whose
    DELETE has no WHERE clause at once."""
    chosen = list(projections)
    tables = [table for projection in chosen for table in projection.tables]
    for projection in chosen:
        _ensure_position(engine, projection.name)  # counted from its first reset on
    with engine.begin() as conn:
        # The position rows first, as a catch-up takes them (`_apply_next_batch`): taken
        # after the TRUNCATE's locks on the tables, a catch-up holding a row and reaching for
        # a table would wait for this transaction while it waits for that row (PostgreSQL
        # ends one of the two as a deadlock).
        for projection in chosen:
            _standing(conn, projection.name)
        if conn.dialect.name == "postgresql" and tables:
            format_table = conn.dialect.identifier_preparer.format_table
            conn.exec_driver_sql(f"TRUNCATE {', '.join(format_table(t) for t in tables)}")
        else:
            for table in tables:
                conn.execute(delete(table))
        for projection in chosen:
            conn.execute(
                update(projection_positions)
                .where(projection_positions.c.name == projection.name)
                .values(
                    position=0,
                    unsettled=False,
                    generation=projection_positions.c.generation + 1,
                )
            )


def position(conn: Connection, name: str) -> int:
    """How far the projection has read."""
    query = select(projection_positions.c.position).where(projection_positions.c.name == name)
    found = conn.execute(query).scalar()
    return int(found) if found is not None else 0


def generation(conn: Connection, name: str) -> int:
    """How many times the projection's read model was emptied (`reset`)."""
    query = select(projection_positions.c.generation).where(projection_positions.c.name == name)
    found = conn.execute(query).scalar()
    return int(found) if found is not None else 0


def unsettled(conn: Connection, projections: Iterable[Projection]) -> bool:
    """Whether a catch-up left one of the projections unsettled (`SettlingProjection`): it
    was stopped, or runs now, and their tables are not to be read yet."""
    names = [projection.name for projection in projections]
    marked = select(projection_positions.c.name).where(
        projection_positions.c.name.in_(names), projection_positions.c.unsettled
    )
    return conn.execute(marked.limit(1)).first() is not None


class _Batches(NamedTuple):
    """Where a catch-up's batches come from: the log's events of `topics`, up to `until`,
    `size` at a time, the next one read ahead while one is written (`ahead`), and on
    PostgreSQL a settling projection's rows of it built ahead too (`built`)."""

    ledger: Ledger
    topics: list[str]
    size: int
    until: int | None
    ahead: ReadAhead
    built: BuildAhead


def _apply_next_batch(
    engine: Engine, projections: Sequence[Projection], batches: _Batches
) -> tuple[bool, int]:
    """Apply the next batch of the projections' events and move their positions past it;
    whether any position moved, and how many events were applied.

    The batch is the next `batch_size` events of any of their topics after the earliest
    position: each projection applies those of its topics past its own position. A batch
    shorter than `batch_size` holds every such event up to the end of the log as it was read
    first, so each position moves to that end: a projection whose topics are rare (or
    absent) does not scan the rest of the log again on every run, and its lag reads 0 once
    it has caught up.

    A full batch has the next one read ahead (`projections.read_ahead`) while it is
    written; that read is taken if it starts where this transaction finds the positions and
    is the batch a read here would give, else the batch is read here, as it always was. On
    PostgreSQL a settling projection's rows of it are built ahead too (`_apply_unsettled`)."""
    ledger, batch_size, ahead = batches.ledger, batches.size, batches.ahead
    ahead.wait()  # not with the position rows held
    batches.built.wait()
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            _commit_unflushed(conn)
        standing = {p.name: _standing(conn, p.name) for p in projections}
        starts = {name: found.position for name, found in standing.items()}
        first = min(starts.values())
        end = log_end(ledger, batches.until)
        if end <= first:
            return False, 0
        events = ahead.take(first, end, batch_size)
        if events is None:
            events = read_events(ledger, first, batch_size, batches.topics, batches.until)
        if len(events) == batch_size:
            ahead.start(events[-1][0])
        last = events[-1][0] if events else first
        to = max(end, last) if len(events) < batch_size else last
        applied = 0
        for projection, own in zip(projections, _routed(events, projections, starts), strict=True):
            found = standing[projection.name]
            start, was_unsettled = found.position, found.unsettled
            # Unsettled once marked, or when more of the log is ahead than behind and this
            # batch does not reach its end (a catch-up of one batch settles no cheaper).
            settling = isinstance(projection, SettlingProjection) and (
                was_unsettled or (end - start > start and to < end)
            )
            # SQLite: the catch-up settles after its batches, off the write lock (`_settle`).
            later = settling and conn.dialect.name == "sqlite"
            if to > start:
                _move(conn, projection.name, found, to, unsettled=settling and (to < end or later))
            if not settling:
                if own:
                    projection.apply(conn, own)
            else:
                assert isinstance(projection, SettlingProjection)
                if own:
                    _apply_unsettled(conn, projection, own, found, to, events, batches)
                if to >= end and not later:
                    projection.settle(conn)
            applied += len(own)
    return True, applied


def _commit_unflushed(conn: Connection) -> None:
    """PostgreSQL: the batch's transaction commits without waiting for its WAL to reach the
    disk (`synchronous_commit` off for it alone); the WAL writer flushes it within moments.

    A batch writes megabytes of WAL (its rows, their indexes), and its commit waited for all
    of it to be flushed, the writer doing nothing meanwhile: a twentieth of a long catch-up.
    Nothing is lost that the log does not hold: a crash of the server can only undo the last
    batches committed, each whole, its rows with its position (one transaction, never torn),
    and the next catch-up applies them again. The read model never gets ahead of the log:
    the events a batch read were committed before it began, and the WAL is flushed in order,
    their commits before its own."""
    conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")


def _apply_unsettled(
    conn: Connection,
    projection: SettlingProjection,
    own: Sequence[StoredFields],
    found: Standing,
    to: int,
    events: list[StoredFields],
    batches: _Batches,
) -> None:
    """Apply the projection's share of the batch unsettled, with its rows built ahead if
    they were built from this batch's events and the read model as this transaction found
    it (`BuildAhead.take`); on PostgreSQL, with the next batch being read ahead, build its
    rows meanwhile, from the read model with this batch's rows over it, while this batch
    writes and commits.

    Built that way from the read model as another connection reads it, before or after this
    batch commits: what this batch's rows do not replace is the same either way, since every
    other write of Stripe's tables moves its position or its generation (a batch, a reset,
    the audit's swap), and the next batch takes the rows only if it finds the position where
    this one moves it, in the same generation."""
    built = batches.built.take(projection.name, found.position, found.generation, events)
    if built is None:
        empty = found.position == 0  # a first catch-up's or a rebuild's first batch
        built = projection.build_unsettled(conn, own, EMPTY_READ_MODEL if empty else None)
    read = batches.ahead.pending()
    if read is not None and conn.dialect.name == "postgresql":
        topics = frozenset(projection.topics)

        def build_next(reader: Connection, following: list[StoredFields]) -> object:
            # The batch read ahead holds the other projections' topics too.
            share = [event for event in following if event[2] in topics and event[0] > to]
            return projection.build_unsettled(reader, share, built)

        batches.built.start(projection.name, (to, found.generation), read, build_next)
    projection.write_built(conn, built)


def _routed(
    events: Sequence[StoredFields], projections: Sequence[Projection], starts: dict[str, int]
) -> list[list[StoredFields]]:
    """Each projection's share of a batch: the events of its topics past its position."""
    shares: list[list[StoredFields]] = [[] for _ in projections]
    routes: dict[str, list[list[StoredFields]]] = {}
    for projection, share in zip(projections, shares, strict=True):
        for topic in projection.topics:
            routes.setdefault(topic, []).append(share)
    for event in events:
        for share in routes[event[2]]:
            share.append(event)
    return [
        [event for event in share if event[0] > starts[projection.name]]
        if share and share[0][0] <= starts[projection.name]
        else share
        for projection, share in zip(projections, shares, strict=True)
    ]


def _ensure_position(engine: Engine, name: str) -> None:
    """The projection's position row, at 0 the first time (a racing runner may insert it)."""
    with engine.connect() as conn:
        if (
            conn.execute(
                select(projection_positions.c.name).where(projection_positions.c.name == name)
            ).first()
            is not None
        ):
            return
    try:
        with engine.begin() as conn:
            conn.execute(insert(projection_positions).values(name=name, position=0))
    except IntegrityError:
        pass  # another runner inserted it first


def _standing(conn: Connection, name: str) -> Standing:
    """The projection's position row, locked: a second runner waits here until the first
    commits, then reads the moved position (PostgreSQL: FOR UPDATE; SQLite: the writer's
    transactions begin IMMEDIATE, see `projections.read_models`)."""
    p = projection_positions
    query = select(p.c.position, p.c.unsettled, p.c.generation).where(p.c.name == name)
    found = conn.execute(query.with_for_update()).first()
    if found is None:
        return Standing(0, False, 0)
    return Standing(int(found[0]), bool(found[1]), int(found[2]))


def _move(conn: Connection, name: str, start: Standing, end: int, *, unsettled: bool) -> None:
    """Move the position from where this transaction found it, in the generation it found:
    a batch read before a reset never lands on the read model built again after it, even at
    the same position."""
    assert end > start.position, (start, end)
    p = projection_positions
    moved = conn.execute(
        update(p)
        .where(
            p.c.name == name,
            p.c.position == start.position,
            p.c.generation == start.generation,
        )
        .values(position=end, unsettled=unsettled)
    )
    if moved.rowcount != 1:
        raise PositionMoved(name)


# -- helpers for projections ----------------------------------------------------------------

Moment = Callable[[str], Any]  # a moment's ISO text (with its offset) -> its column's value


def stored_moments(conn: Connection) -> Moment:
    """How the tables' time columns hold a moment given as ISO text with an offset (a state's
    tagged moment, `ledger.fields.moment`, or an observation's): in UTC, on SQLite the text
    SQLAlchemy's DateTime writes there, on PostgreSQL a naive datetime. A projection keeps
    times in this form, as `load_rows` gives them, and `insert_rows` writes them as they are:
    no datetime parsed back from a row a batch reloads, none formatted again per row."""
    return _sqlite_text if conn.dialect.name == "sqlite" else _naive_utc


def _naive_utc(text: str) -> datetime:
    """A moment in UTC (as the ledger stores them, `Z` as Stripe's observations hold them)
    is read without its offset: no aware datetime made, converted and stripped."""
    if text.endswith("+00:00"):
        return datetime.fromisoformat(text[:-6])
    if text.endswith("Z"):
        return datetime.fromisoformat(text[:-1])
    return datetime.fromisoformat(text).astimezone(UTC).replace(tzinfo=None)


def _sqlite_text(text: str) -> str:
    """SQLAlchemy's SQLite storage format, 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC): its text
    compares as its moment does.

    A moment as `datetime.isoformat` writes it (whole seconds or microseconds, an offset of
    hours and minutes) keeps its seconds and fraction: only its minute moves with the
    offset, which is worked out once per minute and offset; in UTC (as the ledger stores
    them, `Z` as Stripe's observations hold them), not even that."""
    if text.endswith("Z"):
        if len(text) == _WHOLE_SECONDS_Z and text[10:11] == "T":
            return f"{text[:10]} {text[11:19]}.000000"  # Stripe's: whole seconds in UTC
        text = f"{text[:-1]}+00:00"
    size = len(text)
    if text.endswith("+00:00") and text[10:11] == "T":
        if size == _MICROSECONDS and text[19] == ".":
            return f"{text[:10]} {text[11:26]}"
        if size == _WHOLE_SECONDS:
            return f"{text[:10]} {text[11:19]}.000000"
    if (
        size in _ISO_LENGTHS
        and text[10] == "T"
        and text[16] == ":"
        and text[-6] in "+-"
        and text[-3] == ":"
        and (size == _WHOLE_SECONDS or text[19] == ".")
    ):
        minute = text[:16] + text[-6:]
        utc_minute = _MINUTES.get(minute)
        if utc_minute is None:
            if len(_MINUTES) >= _MINUTES_MAX:
                _MINUTES.clear()
            utc_minute = _MINUTES[minute] = _utc_text(f"{text[:16]}:00{text[-6:]}")[:16]
        if size == _WHOLE_SECONDS:
            return f"{utc_minute}{text[16:19]}.000000"
        return utc_minute + text[16:26]
    return _utc_text(text)


def _utc_text(text: str) -> str:
    return datetime.fromisoformat(text).astimezone(UTC).isoformat(" ", "microseconds")[:26]


_WHOLE_SECONDS = len("2026-01-01T00:00:00+00:00")
_MICROSECONDS = len("2026-01-01T00:00:00.000000+00:00")
_WHOLE_SECONDS_Z = len("2026-01-01T00:00:00Z")
_ISO_LENGTHS = (_WHOLE_SECONDS, _MICROSECONDS)
_MINUTES: dict[str, str] = {}  # 'YYYY-MM-DDTHH:MM+HH:MM' -> 'YYYY-MM-DD HH:MM' in UTC
_MINUTES_MAX = 100_000


def load_rows(
    conn: Connection, table: Table, key: str, ids: Iterable[str]
) -> dict[str, dict[str, Any]]:
    """The rows whose `key` column is in `ids`, as mutable dicts keyed by it, each value as
    the driver reads it (a time in its stored form, `stored_moments`)."""
    names = [column.name for column in table.columns]
    at = names.index(key)
    return {
        values[at]: dict(zip(names, values, strict=True))
        for values in rows_among(conn, table, key, ids)
    }


def rows_among(conn: Connection, table: Table, key: str, ids: Iterable[str]) -> list[Any]:
    """The rows whose `key` column is in `ids`, as the driver's tuples of every column in the
    table's order, read through the driver's own cursor: no SQLAlchemy row, no result
    processor (a time stays in its stored form)."""
    quote = conn.dialect.identifier_preparer.quote
    columns = ", ".join(quote(column.name) for column in table.columns)
    return _where_among(conn, f"SELECT {columns} FROM", table, key, ids, fetch=True)


def replace_rows(
    conn: Connection,
    table: Table,
    key: str,
    existing: Iterable[str],
    rows: Sequence[dict[str, Any]],
    *,
    typed: bool = False,
) -> None:
    """Write a batch's rows: delete the old versions of those that existed, insert all
    (`typed`: see `insert_values`)."""
    delete_rows(conn, table, key, existing)
    insert_rows(conn, table, rows, typed=typed)


def delete_rows(conn: Connection, table: Table, key: str, ids: Iterable[str]) -> None:
    """Delete the rows whose `key` column is in `ids`."""
    _where_among(conn, "DELETE FROM", table, key, ids, fetch=False)


def _where_among(
    conn: Connection, head: str, table: Table, key: str, ids: Iterable[str], *, fetch: bool
) -> list[Any]:
    """`head` (a SELECT's or a DELETE's) over the rows whose `key` is in `ids`, ID_CHUNK ids a
    statement (ARRAY_IDS_MAX on PostgreSQL), through the driver's own cursor: SQLAlchemy
    compiled such a statement again for each chunk. On PostgreSQL `= ANY(array)`, one
    parameter however many ids."""
    dialect = conn.dialect
    preparer = dialect.identifier_preparer
    statement = f"{head} {preparer.format_table(table)} WHERE {preparer.quote(key)} "
    raw: Any = conn.connection.driver_connection
    found: list[Any] = []
    listed = list(ids)
    # PostgreSQL takes the ids as one array, a parameter whatever its length: a statement
    # per ID_CHUNK ids was a round trip to the server for every 500 of a batch's ids.
    size = ARRAY_IDS_MAX if dialect.name == "postgresql" else ID_CHUNK
    cursor = raw.cursor()
    try:
        for at in range(0, len(listed), size):
            chunk = listed[at : at + size]
            if dialect.name == "postgresql":
                # Binary both ways (`%b`, `binary`): the ids' array is sent as it is, not
                # quoted id by id as text (a regular expression per id). Never prepared: a
                # plan kept from when the table was small (a rebuild starts from empty tables)
                # scans it for each id of the array once it has grown, and only a plan made
                # with the array in hand looks its ids up in a hash.
                cursor.execute(f"{statement}= ANY(%b)", (chunk,), binary=True, prepare=False)
            else:
                cursor.execute(f"{statement}IN ({', '.join('?' * len(chunk))})", chunk)
            if fetch:
                found += cursor.fetchall()
    finally:
        cursor.close()
    return found


def insert_rows(
    conn: Connection, table: Table, rows: Sequence[dict[str, Any]], *, typed: bool = False
) -> None:
    """Insert a batch's rows (a column a row leaves out takes its default), their values
    taken out of each row by one `itemgetter` (`insert_values`)."""
    if not rows:
        return
    columns = list(table.columns)
    assert len(columns) > 1, table  # itemgetter of one name gives a value, not a tuple
    defaults = {column.name: _default(column) for column in columns}
    values_of = itemgetter(*defaults)
    whole = len(defaults)
    values = (values_of(row if len(row) == whole else {**defaults, **row}) for row in rows)
    if conn.dialect.name == "postgresql":
        # Each row's values taken as the COPY sends it: the server inserts the first rows
        # while the client makes the next ones, where it waited for all of them first.
        _copy_values(conn, table, values, typed=typed)
    else:
        insert_values(conn, table, list(values), typed=typed)


def insert_values(
    conn: Connection, table: Table, rows: Sequence[Sequence[Any]], *, typed: bool = False
) -> None:
    """Insert a batch's rows, each the values of every column in the table's order, in one
    statement written here: SQLAlchemy's executemany builds and processes a dict of
    parameters per row, more time than SQLite takes to insert it.

    On PostgreSQL a COPY of the rows: an `INSERT ... SELECT FROM unnest` of one array per
    column spent most of its time in the driver's quoting of each element (a regular
    expression per value) and the server's parsing of the arrays' text. `typed`: every value
    is of its column's Python type (an int, a str, a bool, a naive datetime, as
    `stored_moments` and `load_rows` give them), so the COPY is binary, the driver's dumpers
    chosen once per column: a text COPY formats each time and integer as text, most of the
    client's time in the COPY. On SQLite an executemany of the rows, each value converted
    as SQLAlchemy would (its bind processors: the text form of a time) unless every value of
    the column is already in its stored form.

    SQLite's statements are `INSERT OR FAIL`: a row that breaks a constraint stops the
    statement with an IntegrityError, as a plain INSERT's would, but leaves the statement's
    rows before it in place, so SQLite keeps no statement journal to take them back out. With
    hundreds of rows a statement, each into five or six B-trees, that journal outgrew its
    memory and was written to a temporary file (26,000 pages in a catch-up of 70,000 Stripe
    events). Nothing carries on past such an error: it fails the caller's transaction, which
    is rolled back whole."""
    if not rows:
        return
    dialect = conn.dialect
    if dialect.name == "postgresql":
        _copy_values(conn, table, rows, typed=typed)
        return
    columns = list(table.columns)
    quote = dialect.identifier_preparer.quote
    names = ", ".join(quote(column.name) for column in columns)
    into = dialect.identifier_preparer.format_table(table)
    raw: Any = conn.connection.driver_connection
    processors = [
        (index, process)
        for index, column in enumerate(columns)
        if (process := column.type.dialect_impl(dialect).bind_processor(dialect)) is not None
        and not _stored_as_they_are(column, rows, index)
    ]
    if processors:
        converted = list(map(list, zip(*rows, strict=True)))
        for index, process in processors:
            # A time already in its stored form (`stored_moments`) is written as it is.
            converted[index] = [
                value if value is None or value.__class__ is str else process(value)
                for value in converted[index]
            ]
        rows = list(zip(*converted, strict=True))
    elif rows[0].__class__ is not tuple:
        rows = list(map(tuple, rows))  # the driver's executemany takes tuples, not lists
    statement = f"INSERT OR FAIL INTO {into} ({names}) VALUES "
    width = len(columns)
    groups = (
        _by_nulls(rows, width)
        if any(column.nullable for column in columns)
        else [(f"({', '.join('?' * width)})", rows)]
    )
    cursor = raw.cursor()
    try:
        for values, bound in groups:
            insert_together(cursor, statement + values, bound, READ_MODEL_ROWS_PER_INSERT)
    finally:
        cursor.close()


def _copy_values(
    conn: Connection, table: Table, rows: Iterable[Sequence[Any]], *, typed: bool
) -> None:
    """PostgreSQL: `insert_values`' COPY, the rows sent as they come."""
    columns = list(table.columns)
    preparer = conn.dialect.identifier_preparer
    names = ", ".join(preparer.quote(column.name) for column in columns)
    into = preparer.format_table(table)
    raw: Any = conn.connection.driver_connection
    types = _binary_types(columns) if typed else None
    how = " (FORMAT BINARY)" if types else ""
    with raw.cursor() as cursor, cursor.copy(f"COPY {into} ({names}) FROM STDIN{how}") as copy:
        if types:
            copy.set_types(types)
        write = copy.write_row
        for values in rows:
            write(values)


# SQLite: rows to a statement of `insert_values` (a read model's rows, mostly Stripe's).
READ_MODEL_ROWS_PER_INSERT = 500


def _by_nulls(
    rows: Sequence[Sequence[Any]], width: int
) -> Iterator[tuple[str, Sequence[Sequence[Any]]]]:
    """The rows grouped by which of their values are None, each group with its VALUES (a
    NULL written in for each) and its rows' other values: sqlite3 binds a None through its
    adapters' lookup (a tuple made, a dict and two attributes searched), costing more than
    the rest of a row's values together for the Stripe tables' rows, mostly NULL."""
    nones = (None,) * width
    groups: dict[tuple[bool, ...], list[Sequence[Any]]] = {}
    for row in rows:
        pattern = tuple(map(is_, row, nones))
        found = groups.get(pattern)
        if found is None:
            groups[pattern] = [row]
        else:
            found.append(row)
    for pattern, members in groups.items():
        kept = [index for index, null in enumerate(pattern) if not null]
        values = f"({', '.join('NULL' if null else '?' for null in pattern)})"
        if len(kept) == width:
            yield values, members
        elif len(kept) > 1:
            yield values, list(map(itemgetter(*kept), members))
        elif kept:
            yield values, [(row[kept[0]],) for row in members]
        else:
            yield f"({', '.join('?' * width)})", members


# The Python classes a SQLite column's values may have to be written without its bind
# processor: a time's stored text (`stored_moments`), a bool (sqlite3 binds it as the 0 or 1
# SQLAlchemy's Boolean processor makes of it).
_UNPROCESSED = frozenset({type(None), str})
_UNPROCESSED_BOOLEAN = frozenset({type(None), bool})


def _stored_as_they_are(column: Column[Any], rows: Sequence[Sequence[Any]], index: int) -> bool:
    """Whether every value of the column is written as it is: the batch's rows then go to
    the driver as they came, not taken apart column by column and put together again."""
    kept = _UNPROCESSED_BOOLEAN if isinstance(column.type, Boolean) else _UNPROCESSED
    return set(map(type, map(itemgetter(index), rows))) <= kept


def _binary_types(columns: Sequence[Column[Any]]) -> list[str] | None:
    """The PostgreSQL type of each column for a binary COPY (`insert_values`), None when a
    column's type is not one of the few the projections' tables use."""
    found: list[str] = []
    for column in columns:
        kind = column.type
        if isinstance(kind, BigInteger):
            found.append("int8")
        elif isinstance(kind, Integer):
            found.append("int4")
        elif isinstance(kind, Boolean):
            found.append("bool")
        elif isinstance(kind, DateTime) and not kind.timezone:
            found.append("timestamp")
        elif isinstance(kind, String):  # Text too
            found.append("text")
        else:
            return None
    return found


def _default(column: Column[Any]) -> Any:
    """The value a row without this column gets: its scalar default, else NULL."""
    default = column.default
    return default.arg if isinstance(default, ScalarElementColumnDefault) else None
