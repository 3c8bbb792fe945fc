"""Audit rebuild: replay the whole log into fresh read models, compare them with the live ones
row by row, and swap them in only when asked.

The fresh read models are built in a scratch SQLite file by the same projection code, so the
live tables are never touched by a rebuild; `swap` replaces the live rows and positions with
the rebuilt ones in one transaction.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, create_engine, delete, insert, select

from ledger import Ledger
from projections.runner import BATCH_SIZE_DEFAULT, Progress, catch_up
from projections.tables import metadata, projection_positions

DIFFERENCES_SHOWN_MAX = 20
COPY_BATCH = 5_000


@dataclass
class TableDrift:
    table: str
    live_rows: int
    rebuilt_rows: int
    only_live: list[str] = field(default_factory=list)  # keys, at most DIFFERENCES_SHOWN_MAX
    only_rebuilt: list[str] = field(default_factory=list)
    differing: list[str] = field(default_factory=list)
    differing_count: int = 0

    @property
    def clean(self) -> bool:
        return not (self.only_live or self.only_rebuilt or self.differing_count)


@contextmanager
def scratch_read_models(
    ledger: Ledger, projections: tuple[Any, ...], progress: Progress | None = None
) -> Iterator[Engine]:
    """The read models rebuilt from the whole log in a scratch SQLite file."""
    with tempfile.TemporaryDirectory(prefix="offline-ledger-rebuild-") as folder:
        engine = create_engine(f"sqlite:///{Path(folder) / 'rebuilt.db'}")
        try:
            metadata.create_all(engine)
            catch_up(ledger, engine, projections, batch_size=BATCH_SIZE_DEFAULT, progress=progress)
            yield engine
        finally:
            engine.dispose()


def compare(live: Connection, rebuilt: Engine, tables: list[Table]) -> list[TableDrift]:
    """Row by row, keyed by each table's primary key; the live rows read on `live` (one
    snapshot of every table)."""
    drifts = []
    for table in tables:
        live_rows = _rows(live, table)
        with rebuilt.connect() as conn:
            rebuilt_rows = _rows(conn, table)
        drift = TableDrift(table.name, len(live_rows), len(rebuilt_rows))
        for key in sorted(live_rows.keys() - rebuilt_rows.keys())[:DIFFERENCES_SHOWN_MAX]:
            drift.only_live.append(key)
        for key in sorted(rebuilt_rows.keys() - live_rows.keys())[:DIFFERENCES_SHOWN_MAX]:
            drift.only_rebuilt.append(key)
        for key in sorted(live_rows.keys() & rebuilt_rows.keys()):
            if live_rows[key] != rebuilt_rows[key]:
                drift.differing_count += 1
                if len(drift.differing) < DIFFERENCES_SHOWN_MAX:
                    drift.differing.append(key)
        drifts.append(drift)
    return drifts


def swap(live: Engine, rebuilt: Engine, tables: list[Table], names: list[str]) -> None:
    """Replace the live rows and the projections' positions with the rebuilt ones, in one
    transaction. The live read models are emptied as a reset empties them: each position
    row takes the next of the live generations (`projections.runner.reset`), not the
    scratch file's."""
    p = projection_positions
    with live.begin() as conn:
        # The rows locked one by one in the projections' order, as a catch-up and a reset
        # take them (`projections.runner`): in another order, two of them could each hold a
        # row the other waits for.
        generations: dict[str, int] = {}
        for name in names:
            query = select(p.c.generation).where(p.c.name == name).with_for_update()
            found = conn.execute(query).scalar()
            if found is not None:
                generations[name] = int(found)
        for table in [*tables, projection_positions]:
            only_ours = (
                projection_positions.c.name.in_(names) if table is projection_positions else None
            )
            conn.execute(delete(table) if only_ours is None else delete(table).where(only_ours))
            query = select(table) if only_ours is None else select(table).where(only_ours)
            with rebuilt.connect() as source:
                batch: list[dict[str, Any]] = []
                for row in source.execute(query).mappings():
                    batch.append(dict(row))
                    if table is projection_positions:
                        batch[-1]["generation"] = generations.get(row["name"], 0) + 1
                    if len(batch) == COPY_BATCH:
                        conn.execute(insert(table), batch)
                        batch = []
                if batch:
                    conn.execute(insert(table), batch)


def _rows(conn: Connection, table: Table) -> dict[str, tuple[Any, ...]]:
    key_columns = [column.name for column in table.primary_key.columns]
    return {
        "/".join(str(row[name]) for name in key_columns): tuple(
            _normal(row[column.name]) for column in table.columns
        )
        for row in conn.execute(select(table)).mappings()
    }


def _normal(value: Any) -> Any:
    """Values as both stores give them back (SQLite has no boolean type)."""
    return int(value) if isinstance(value, bool) else value
