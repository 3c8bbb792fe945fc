"""What the watch remembers between runs, in a small SQLite file of its own: the conditions
already raised, and the alerts not yet delivered (a bounded queue that survives restarts).

One evaluation is one transaction (`raise_new`): a condition seen for the first time is
remembered and its alert queued together, a condition gone is forgotten (it alerts again if
it comes back). An alert leaves the queue only when the webhook acknowledged it
(`delivered`); a failed try moves its next attempt later, doubling the wait each time. When
more than `max_pending` alerts wait, the oldest are dropped and counted (`dropped`), so a
receiver down for days cannot grow the file without bound.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from adapters.alerts.conditions import Condition

BACKOFF_MAX_SECONDS = 3600.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS raised (key TEXT PRIMARY KEY, alert_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS pending (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id TEXT NOT NULL UNIQUE,
    body BLOB NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL,
    last_error TEXT
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(frozen=True)
class Pending:
    alert_id: str
    body: bytes  # the JSON the webhook receives
    attempts: int


class Outbox:
    def __init__(self, path: Path, max_pending: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.max_pending = max_pending
        with closing(sqlite3.connect(self.path, timeout=30)) as db:
            db.executescript(_SCHEMA)  # a script commits on its own

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One connection, one transaction taken for writing at once (BEGIN IMMEDIATE): two
        watches on the same file take turns instead of raising a condition twice."""
        with closing(sqlite3.connect(self.path, timeout=30, isolation_level=None)) as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def raise_new(
        self, conditions: Iterable[Condition], now: datetime, queued: bool = True
    ) -> list[dict[str, Any]]:
        """Remember the conditions that hold now, forget the others, and make one alert for
        each condition not raised before, queued for the webhook when `queued`; return
        those alerts."""
        holding = {condition.key: condition for condition in conditions}
        raised: list[dict[str, Any]] = []
        with self._transaction() as db:
            known = {key for (key,) in db.execute("SELECT key FROM raised")}
            db.executemany(
                "DELETE FROM raised WHERE key = ?", [(key,) for key in known - holding.keys()]
            )
            for key in sorted(holding.keys() - known):
                alert = {
                    "id": str(uuid.uuid4()),
                    "raised_at": now.isoformat(),
                    **holding[key].to_dict(),
                }
                db.execute("INSERT INTO raised VALUES (?, ?)", (key, alert["id"]))
                if queued:
                    db.execute(
                        "INSERT INTO pending (alert_id, body, next_attempt) VALUES (?, ?, ?)",
                        (alert["id"], orjson.dumps(alert), now.timestamp()),
                    )
                raised.append(alert)
            self._bound(db)
        return raised

    def _bound(self, db: sqlite3.Connection) -> None:
        (count,) = db.execute("SELECT COUNT(*) FROM pending").fetchone()
        over = count - self.max_pending
        if over > 0:
            db.execute(
                "DELETE FROM pending WHERE seq IN (SELECT seq FROM pending ORDER BY seq LIMIT ?)",
                (over,),
            )
            db.execute(
                "INSERT INTO counters VALUES ('dropped', ?) "
                "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
                (over,),
            )

    def due(self, now: datetime) -> list[Pending]:
        """The alerts whose next attempt has come, oldest first."""
        with self._transaction() as db:
            rows = db.execute(
                "SELECT alert_id, body, attempts FROM pending WHERE next_attempt <= ? ORDER BY seq",
                (now.timestamp(),),
            ).fetchall()
        return [Pending(alert_id, bytes(body), attempts) for alert_id, body, attempts in rows]

    def delivered(self, alert_id: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM pending WHERE alert_id = ?", (alert_id,))

    def failed(self, alert_id: str, error: str, now: datetime, backoff_seconds: float) -> None:
        """Count a failed try and put the next one `backoff_seconds` later, doubled for each
        try before (at most an hour)."""
        with self._transaction() as db:
            (attempts,) = db.execute(
                "SELECT attempts FROM pending WHERE alert_id = ?", (alert_id,)
            ).fetchone()
            wait = min(backoff_seconds * 2**attempts, BACKOFF_MAX_SECONDS)
            db.execute(
                "UPDATE pending SET attempts = attempts + 1, next_attempt = ?, last_error = ? "
                "WHERE alert_id = ?",
                (now.timestamp() + wait, error, alert_id),
            )

    def counts(self) -> tuple[int, int]:
        """(alerts waiting, alerts dropped since the file was made)."""
        with self._transaction() as db:
            (pending,) = db.execute("SELECT COUNT(*) FROM pending").fetchone()
            dropped = db.execute("SELECT value FROM counters WHERE name = 'dropped'").fetchone()
        return pending, 0 if dropped is None else dropped[0]
