"""The read side a command uses: every projection on the ledger's own database, brought up to
date before each read (read-your-writes)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from types import TracebackType
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event

from ledger import Ledger
from ledger.errors import Code, Conflict, LedgerError, NotFound, StorageError
from ledger.storage import StoreConfig, engine_for
from ledger.what_if import History
from projections.drift import TableDrift, compare, scratch_read_models, swap
from projections.offline_sales import OfflineSalesProjection, sale_histories
from projections.offline_status import (
    OfflineStatusProjection,
    StoredPayment,
    StoredTotal,
    stored_oldest_first,
    stored_payments,
    stored_totals,
)
from projections.payments import AuthorizedPayment, PaymentsProjection, authorized_payments
from projections.reconciliation import REPORT_WORK_MEM_MB, Filters, Thresholds, stream_report
from projections.report import Report
from projections.runner import (
    BATCH_SIZE_DEFAULT,
    SNAPSHOT,
    Progress,
    catch_up,
    position,
    rebuild,
    unsettled,
)
from projections.stripe_observations import StripeObservationsProjection

# How many times a read waits for catch-ups elsewhere to settle the read models: each wait
# runs them to the end of the log, only a catch-up of a log grown twice as long meanwhile
# leaves them unsettled again. Also how many times an audit catches its rebuilt read models up
# to the events written while it compares.
SETTLE_ATTEMPTS_MAX = 5
PROJECTIONS = (
    PaymentsProjection(),
    OfflineStatusProjection(),
    StripeObservationsProjection(),
    OfflineSalesProjection(),
)


class ReadModels:
    def __init__(self, ledger: Ledger, report_work_mem_mb: int | None = None) -> None:
        """Read models of `ledger`'s database; a report on PostgreSQL may take
        `report_work_mem_mb` (default `REPORT_WORK_MEM_MB`) of the server's memory for each
        sort or hash of its CSV."""
        if ledger.config.kind == "memory":
            raise StorageError(
                Code.INVALID_DATABASE_URL,
                "read models and reports need a "
                "database: use sqlite:///file.db or postgresql://...",
            )
        self.ledger = ledger
        self.report_work_mem_mb = (
            REPORT_WORK_MEM_MB if report_work_mem_mb is None else report_work_mem_mb
        )
        self.engine: Engine = engine_for(ledger.config)
        self.writer = (
            _writer_engine(ledger.config) if ledger.config.kind == "sqlite" else self.engine
        )

    def close(self) -> None:
        self.engine.dispose()
        self.writer.dispose()

    def __enter__(self) -> ReadModels:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def refresh(
        self, progress: Progress | None = None, batch_size: int = BATCH_SIZE_DEFAULT
    ) -> int:
        """Apply every event not yet projected; return how many."""
        return catch_up(
            self.ledger, self.writer, PROJECTIONS, batch_size=batch_size, progress=progress
        )

    def rebuild(
        self, progress: Progress | None = None, batch_size: int = BATCH_SIZE_DEFAULT
    ) -> int:
        """Empty every read model and replay the whole log into it."""
        return rebuild(self.ledger, self.writer, PROJECTIONS, progress, batch_size)

    def lag(self) -> int:
        """Events in the log that some read model has not applied yet (read as they are: this
        brings nothing up to date)."""
        with self.engine.connect() as conn:
            behind = min(position(conn, projection.name) for projection in PROJECTIONS)
        return max(0, self.ledger.last_position() - behind)

    def settling(self) -> bool:
        """Whether a read model is marked unsettled (read as it is): a long catch-up (a
        rebuild, a large import being projected) is still applying batches whose fold it left
        to its end or making that fold, or one stopped before. Reads wait for it, or finish it
        themselves."""
        with self.engine.connect() as conn:
            return unsettled(conn, PROJECTIONS)

    def stored_totals(self, location_id: str | None = None) -> list[StoredTotal]:
        self.refresh()
        with self.engine.connect() as conn:
            return stored_totals(conn, location_id)

    def audit_rebuild(
        self, swap_in: bool = False, progress: Progress | None = None
    ) -> list[TableDrift]:
        """Replay the whole log into scratch read models, compare them with the live ones
        and, with `swap_in`, replace the live ones.

        The live ones are compared as readers read them (`_settled`): up to date, settled, in
        one snapshot, and the scratch ones are caught up to that snapshot's position (not to
        the log's end, which records arriving meanwhile keep moving) before they are.
        Read while a catch-up elsewhere had left them unsettled, or after events came in
        during the rebuild, they showed drift that was not there."""
        tables = [table for projection in PROJECTIONS for table in projection.tables]
        with scratch_read_models(self.ledger, PROJECTIONS, progress) as rebuilt:
            for _ in range(SETTLE_ATTEMPTS_MAX):
                with self._settled() as live:
                    at = _positions(live)
                    catch_up(self.ledger, rebuilt, PROJECTIONS, until=min(at.values()))
                    if at == _positions(rebuilt):
                        drifts = compare(live, rebuilt, tables)
                        break
            else:
                raise Conflict(
                    Code.CONTENTION,
                    f"the live read models never stood at one position the rebuilt ones could "
                    f"reach ({SETTLE_ATTEMPTS_MAX} attempts): nothing was compared or swapped; "
                    "run again",
                    details={"attempts": SETTLE_ATTEMPTS_MAX},
                )
            if swap_in:
                swap(self.writer, rebuilt, tables, [p.name for p in PROJECTIONS])
        return drifts

    def sale_histories(self, location_id: str | None = None) -> Iterator[History]:
        """Each location's stored sales (`ledger.what_if.History`), one location at a time,
        from the offline sales read model brought up to date first."""
        self.refresh()
        with self.engine.connect() as conn:
            yield from sale_histories(conn, location_id)

    def stored_oldest_first(self, limit: int | None = None) -> list[str]:
        self.refresh()
        with self.engine.connect() as conn:
            return stored_oldest_first(conn, limit)

    def stored(
        self,
        location_id: str | None = None,
        device_id: str | None = None,
        stored_before: datetime | None = None,
    ) -> list[StoredPayment]:
        """Every payment still stored on a reader, the longest stored first (filtered)."""
        self.refresh()
        with self.engine.connect() as conn:
            return stored_payments(
                conn, location_id=location_id, device_id=device_id, stored_before=stored_before
            )

    def authorized(self) -> list[AuthorizedPayment]:
        """Forwarded payments waiting for a manual capture, the earliest deadline first."""
        self.refresh()
        with self.engine.connect() as conn:
            return authorized_payments(conn)

    def report(
        self, as_of: datetime, thresholds: Thresholds | None = None, filters: Filters | None = None
    ) -> Report:
        """The reconciliation report at `as_of`, its rows in a list (for a few thousand rows:
        `streamed_report` writes any number); NO_REPORT_DATA when nothing matches."""
        with self.streamed_report(as_of, thresholds, filters) as streamed:
            rows, totals = list(streamed.rows), streamed.totals
            # The brands a page asks for (rows with money at risk), while the database is open.
            branded = streamed.branded([row for row in rows if row.amount_at_risk])
        brands = {row.offline_id: row.card_brand for row in branded if row.offline_id}
        return replace(
            streamed,
            rows=rows,
            counted=lambda: totals,
            card_brands=lambda ids: {i: brand for i in ids if (brand := brands.get(i))},
            csv_lines=None,
        )

    @contextmanager
    def streamed_report(
        self, as_of: datetime, thresholds: Thresholds | None = None, filters: Filters | None = None
    ) -> Iterator[Report]:
        """The reconciliation report at `as_of`, its rows streamed from the database while
        the context is open (read them once); NO_REPORT_DATA when nothing matches."""
        if as_of.tzinfo is None:
            raise LedgerError(
                Code.INVALID_TIMESTAMP, "as_of needs a time zone offset", field="as_of"
            )
        chosen = filters or Filters()
        with self._settled() as conn:
            report = stream_report(
                conn, as_of, thresholds or Thresholds(), chosen, self.report_work_mem_mb
            )
            if report is None:
                shown = ", ".join(f"{k}={v}" for k, v in chosen.as_dict().items()) or "no filter"
                raise NotFound(
                    Code.NO_REPORT_DATA,
                    f"no payments and no Stripe objects to report "
                    f"({shown}): ingest records or import Stripe data first, or widen "
                    "--since/--until/--location",
                )
            yield report

    @contextmanager
    def _settled(self) -> Iterator[Connection]:
        """A connection to read the read models by, every event applied and no projection
        left unsettled (`projections.runner.SettlingProjection`): a catch-up elsewhere may
        have started applying batches unsettled since this one's, then this one goes on with
        it to the end and settles."""
        for _ in range(SETTLE_ATTEMPTS_MAX):
            self.refresh()
            with self.engine.connect() as conn:
                _one_snapshot(conn)
                if not unsettled(conn, PROJECTIONS):
                    yield conn
                    return
        raise Conflict(
            Code.CONTENTION,
            f"the read models were left unsettled by catch-ups elsewhere {SETTLE_ATTEMPTS_MAX} "
            "times in a row (a rebuild or a large import being projected, the log growing "
            "faster than they catch up): nothing was read; run again when it has finished",
            details={"attempts": SETTLE_ATTEMPTS_MAX},
        )


def _positions(source: Connection | Engine) -> dict[str, int]:
    """How far each read model has read."""
    if isinstance(source, Engine):
        with source.connect() as conn:
            return _positions(conn)
    return {projection.name: position(source, projection.name) for projection in PROJECTIONS}


def _one_snapshot(conn: Connection) -> None:
    """Let every statement on `conn` from here on read the database as of one moment: the
    check that no projection is left unsettled and each of the report's statements after it
    (its stages, rows and totals), while catch-ups commit elsewhere. PostgreSQL: a REPEATABLE
    READ transaction; SQLite: one deferred transaction, which also drops the report's
    temporary tables with it."""
    if conn.dialect.name == "postgresql":
        conn.execution_options(isolation_level="REPEATABLE READ")
    else:
        conn.exec_driver_sql("BEGIN")


# The read models' SQLite writer's page caches, the database's and its temporary tables',
# in KiB (SQLite's default is 2,000): a catch-up's batch writes its rows into five or six
# B-trees a table, and the settling's snapshot folds every Stripe payment into temporary
# tables. At the default, a batch of 20,000 Stripe events spilled its pages to the WAL and read
# them back, and the snapshot wrote its tables to a temporary file and read them again: a
# third of the process's writes and reads of files, in a catch-up of 70,000 events. Memory is
# taken only as pages are cached.
WRITER_CACHE_KIB = 65_536
_WRITER_PRAGMAS = (
    f"PRAGMA main.cache_size = -{WRITER_CACHE_KIB}",
    f"PRAGMA temp.cache_size = -{WRITER_CACHE_KIB}",
    # The temporary tables' rollback journal (the original pages a transaction changes) in
    # memory, not written to a file and dropped at its end: nothing but this connection
    # reads them, and they die with it.
    "PRAGMA temp.journal_mode = MEMORY",
    # A commit appends to the WAL without waiting for it to reach the disk (NORMAL; the WAL
    # is synced at a checkpoint, or by the next commit of a connection at FULL, the ledger's
    # own, whose sync covers every frame before its own). As PostgreSQL's catch-up does
    # (`runner._commit_unflushed`): a power loss can only undo the last batches committed,
    # each whole, its rows with its position, which the next catch-up applies again; the
    # read model never gets ahead of the log, whose frames come first in the WAL.
    "PRAGMA synchronous = NORMAL",
)


def _writer_engine(config: StoreConfig) -> Engine:
    """SQLite connections whose transactions take the write lock at BEGIN (IMMEDIATE), with
    larger page caches (`WRITER_CACHE_KIB`).

    A deferred transaction that read a position and then tries to write after another
    runner committed cannot upgrade its snapshot and fails at once; taking the lock first
    makes a second runner wait, then read the moved position.
    """
    assert config.sqlalchemy_url is not None
    engine = create_engine(config.sqlalchemy_url, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _manual_transactions(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None  # pysqlite must not BEGIN on its own
        for pragma in _WRITER_PRAGMAS:
            dbapi_connection.execute(pragma)

    @event.listens_for(engine, "checkin")
    def _give_back_cached_pages(dbapi_connection: Any, record: Any) -> None:
        # What a connection's larger caches hold is given back as it returns to the pool: a
        # pooled connection lives as long as the process (a server's), and after a long
        # catch-up its caches held about 120 MiB. A batch reads its pages again from the
        # system's file cache.
        if dbapi_connection is not None:
            dbapi_connection.execute("PRAGMA shrink_memory")

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection: Connection) -> None:
        # A snapshot to settle from only reads the database (`projections.runner._settle`).
        deferred = connection.info.get(SNAPSHOT, False)
        connection.exec_driver_sql("BEGIN" if deferred else "BEGIN IMMEDIATE")

    return engine
