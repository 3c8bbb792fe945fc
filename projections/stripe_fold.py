"""Stripe's side folded per Stripe payment once, as its observations are projected, not by
every report: `stripe_keys` (each linked object's key) and `stripe_payments` (each key's row,
`projections.report_sql.stripe_payments`), kept in the transaction of the batch that changed
them, with the projection's position.

A batch changes the row of every key that one of the ids it names resolves to, before or
after its links are written: a new link (a charge tied to its PaymentIntent) moves whatever
resolved through it from the key it had to the new one. Those keys are folded again from all
their parts: the ids that resolve to them (the links read backwards), and the snapshots,
movements, charges and disputes those ids name (each looked up by index), copied into
temporary tables for the same statements that fold the whole read model at once
(`fold_all`). A rebuild from the log and a catch-up batch by batch give the same rows.

Every step is a statement over the whole batch, joined with temporary tables of its ids and
of the keys it touches (`BatchFold`): no id goes through Python but the batch's own, once,
so a batch of twenty thousand events costs a dozen statements, not one per few hundred ids.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Column,
    CompoundSelect,
    Connection,
    MetaData,
    Select,
    Table,
    delete,
    insert,
    not_,
    select,
    union,
    union_all,
)

from projections.report_sql import (
    LINK_HOPS,
    MOVEMENT_OWNERS,
    STAGES_WORK_MEM_MB,
    Resolver,
    Stages,
    StripeSources,
    drop,
    is_payment_intent,
    materialize,
    movement_key,
    resolved_links,
    settings,
    stripe_payments,
)
from projections.runner import insert_values
from projections.tables import (
    stripe_charges,
    stripe_disputes,
    stripe_id,
    stripe_keys,
    stripe_links,
    stripe_movements,
    stripe_objects,
)
from projections.tables import stripe_payments as folded

# The columns of each part that may name a Stripe payment's id (each indexed).
_NAMING = (
    (stripe_objects, ("payment_intent_id", "key")),
    (stripe_movements, MOVEMENT_OWNERS),
    (stripe_charges, ("payment_intent_id", "charge_id")),
    (stripe_disputes, ("payment_intent_id", "charge_id")),
)


def _listing(name: str, *, unique: bool = True) -> Table:
    """A temporary table of ids (the connection's own: it goes with the transaction), in the
    collation of the ids it is joined with (`tables.stripe_id`)."""
    return Table(
        name, MetaData(), Column("id", stripe_id(), primary_key=unique), prefixes=["TEMPORARY"]
    )


_NAMED_BY_BATCH = _listing("fold_batch")  # the ids the batch's observations and rows name
_FIRST_LINKED = _listing("fold_first")  # the objects the batch links for the first time
_TOUCHED = _listing("fold_keys", unique=False)  # the keys to fold again (repeats allowed)
_RESOLVING = _listing("fold_named")  # the touched keys and every id leading to one


class BatchFold:
    """The fold of one batch, told what it names before its writes (`moved` too) and folding
    the keys touched after them (`finish`)."""

    def __init__(self, conn: Connection, named: Iterable[str]) -> None:
        """Note the batch's ids and the keys they resolve to as the links stand (each id is
        its own key too: an unlinked id, or one whose stale row a new link must remove)."""
        self.conn = conn
        for table in (_NAMED_BY_BATCH, _TOUCHED):
            table.create(conn)
        insert_values(conn, _NAMED_BY_BATCH, [(i,) for i in set(named)])
        conn.exec_driver_sql(f"ANALYZE {_NAMED_BY_BATCH.name}")
        ids = select(_NAMED_BY_BATCH.c.id)
        self._touch(
            ids.union_all(select(stripe_keys.c.key).where(stripe_keys.c.object_id.in_(ids)))
        )

    def moved(self, first_linked: set[str]) -> None:
        """Before the writes: the keys of the movements that name an object the batch links
        for the first time (`projections.report_sql.movement_key`'s rule).

        A movement whose first id has no link counts under its balance transaction's key: a
        first link of that id moves it to the id's key, from a key the batch may not name."""
        if not first_linked:
            return
        conn = self.conn
        _FIRST_LINKED.create(conn)
        insert_values(conn, _FIRST_LINKED, [(i,) for i in first_linked])
        conn.exec_driver_sql(f"ANALYZE {_FIRST_LINKED.name}")
        naming = union(
            *(
                select(stripe_movements.c.movement_key).join(
                    _FIRST_LINKED, stripe_movements.c[column] == _FIRST_LINKED.c.id
                )
                for column in MOVEMENT_OWNERS
            )
        ).subquery()
        m = stripe_movements.alias("m")
        joined, key = movement_key(Resolver(), m)
        self._touch(
            select(key)
            .select_from(joined)
            .where(m.c.movement_key.in_(select(naming.c.movement_key)))
        )
        _FIRST_LINKED.drop(conn)

    def finish(self) -> None:
        """After the writes: add the keys the batch's ids resolve to now, fold every touched
        key again."""
        linked = resolved_links()
        object_id, key = linked.selected_columns
        self._touch(
            linked.with_only_columns(key).where(object_id.in_(select(_NAMED_BY_BATCH.c.id)))
        )
        _NAMED_BY_BATCH.drop(self.conn)
        _refold(self.conn)
        _TOUCHED.drop(self.conn)

    def _touch(self, keys: Select[Any] | CompoundSelect[Any]) -> None:
        self.conn.execute(insert(_TOUCHED).from_select(["id"], keys))


def _refold(conn: Connection) -> None:
    """Fold again the Stripe payments of the touched keys (and the resolved links of every
    id that resolves to one of them) from all their parts."""
    _RESOLVING.create(conn)
    touched = select(_TOUCHED.c.id)
    conn.execute(insert(_RESOLVING).from_select(["id"], touched.distinct()))
    conn.exec_driver_sql(f"ANALYZE {_RESOLVING.name}")
    # The links read backwards, `LINK_HOPS` deep: a superset of the ids that resolve to the
    # keys, the fold keeps only the keys' rows.
    listed = select(_RESOLVING.c.id)
    for _ in range(LINK_HOPS):
        leading = (
            select(stripe_links.c.object_id)
            .join(_RESOLVING, stripe_links.c.target_id == _RESOLVING.c.id)
            .where(
                not_(is_payment_intent(stripe_links.c.object_id)),
                stripe_links.c.object_id.not_in(listed),
            )
        )
        if not conn.execute(insert(_RESOLVING).from_select(["id"], leading)).rowcount:
            break
    conn.exec_driver_sql(f"ANALYZE {_RESOLVING.name}")
    conn.execute(delete(stripe_keys).where(stripe_keys.c.object_id.in_(listed)))
    linked = resolved_links()
    conn.execute(
        insert(stripe_keys).from_select(
            ["object_id", "key"], linked.where(linked.selected_columns[0].in_(listed))
        )
    )
    stages = Stages("fold")
    parts = (_copy(stages, table, columns) for table, columns in _NAMING)
    side = stripe_payments(stages, StripeSources(*parts), conn.dialect.name == "postgresql")
    materialize(conn, stages)
    conn.execute(delete(folded).where(folded.c.key.in_(touched)))
    _write(conn, side, touched)
    drop(conn, stages)
    _RESOLVING.drop(conn)


def _copy(stages: Stages, table: Table, columns: tuple[str, ...]) -> Table:
    """A stage holding the table's rows one of `columns` of which names an id resolving to
    a touched key, each once (copied by the database: no row goes through Python). Each row
    is taken once by its primary key among those the columns' joins find: a UNION of whole
    rows sorted every row's every column to drop the repeats."""
    key = next(column for column in table.columns if column.primary_key)
    found = union_all(
        *(select(key).join(_RESOLVING, table.c[column] == _RESOLVING.c.id) for column in columns)
    )
    # The movements' copy indexed by its key (on SQLite): a Stripe payment's first movement
    # is looked up by it (`report_sql.stripe_payments`).
    indexed = (key.name,) if table is stripe_movements else ()
    return stages.add(table.name, select(table).where(key.in_(found)), *indexed)


def fold_all(conn: Connection) -> None:
    """Fold the whole read model at once: every linked object's key, every Stripe payment's
    row (after the observations' tables were filled without their fold)."""
    postgres = conn.dialect.name == "postgresql"
    with settings(conn, _FOLD_ALL_SETTINGS if postgres else ()):
        conn.execute(delete(stripe_keys))
        conn.execute(delete(folded))
        conn.execute(insert(stripe_keys).from_select(["object_id", "key"], resolved_links()))
        stages = Stages("fold")
        side = stripe_payments(stages, StripeSources(), postgres)
        try:
            materialize(conn, stages)
            _write(conn, side)
        finally:
            drop(conn, stages)


# PostgreSQL's settings for `fold_all`, as the report's for its stages: the sorts and hashes
# of every Stripe payment in memory (at the default 4 MB the movements' windows and sums went
# to disk at 20,000 payments), and ANALYZE of its stages sampling 3,000 rows, not 30,000 (the
# planner needs their sizes: 36 ms of the backend's CPU for the movements' stage alone).
_FOLD_ALL_SETTINGS = (
    ("work_mem", f"'{STAGES_WORK_MEM_MB}MB'"),
    ("default_statistics_target", "10"),
)


def _write(conn: Connection, rows: Select[Any], keys: Select[Any] | None = None) -> None:
    """Insert the folded rows of `rows` (`report_sql.stripe_payments`' columns, by name),
    those of `keys` only if given."""
    names = [column.name for column in folded.columns]
    side = rows.subquery("side")
    chosen = select(*(side.c[name] for name in names))
    if keys is not None:
        chosen = chosen.where(side.c.key.in_(keys))
    conn.execute(insert(folded).from_select(names, chosen))


# The resolved links of a fold made from a snapshot (`fold_snapshot`), `stripe_keys`'s columns;
# on SQLite without a rowid: one B-tree to fill, and each id's key read in one lookup, not its
# index's then the table's.
_SNAPSHOT_KEYS = Table(
    "fold_snapshot_keys",
    MetaData(),
    Column("object_id", stripe_id(), primary_key=True),
    Column("key", stripe_id(), nullable=False),
    prefixes=["TEMPORARY"],
    sqlite_with_rowid=False,
)


@dataclass(frozen=True)
class SnapshotFold:
    """`fold_all`'s rows, made in temporary tables of one connection (`fold_snapshot`)."""

    stages: Stages
    side: Table


def fold_snapshot(conn: Connection) -> SnapshotFold:
    """Make `fold_all`'s rows from what `conn`'s transaction reads, into temporary tables of
    its connection, writing nothing else: in a read transaction on SQLite (WAL) no writer
    waits for it, and a later transaction of the same connection writes them in
    (`swap_in`), or drops them (`discard`)."""
    _SNAPSHOT_KEYS.create(conn)
    conn.execute(insert(_SNAPSHOT_KEYS).from_select(["object_id", "key"], resolved_links()))
    stages = Stages("snapshot")
    sources = StripeSources(keys=_SNAPSHOT_KEYS)
    # Staged (unindexed: `swap_in` copies it whole): the rows are written in later, by
    # another transaction.
    rows = stripe_payments(stages, sources, conn.dialect.name == "postgresql")
    made = SnapshotFold(stages, stages.add("stripe_payments", rows))
    try:
        materialize(conn, stages)
    except BaseException:
        discard(conn, made)
        raise
    return made


def swap_in(conn: Connection, made: SnapshotFold) -> None:
    """Replace the read model's `stripe_keys` and `stripe_payments` with the rows of
    `fold_snapshot` (valid only while the observations are those it read)."""
    conn.execute(delete(stripe_keys))
    conn.execute(delete(folded))
    conn.execute(insert(stripe_keys).from_select(["object_id", "key"], select(_SNAPSHOT_KEYS)))
    _write(conn, select(made.side))


def discard(conn: Connection, made: SnapshotFold) -> None:
    """Drop the temporary tables of `fold_snapshot` (those it made: it may have failed)."""
    for table in [*(stage.table for stage in reversed(made.stages.made)), _SNAPSHOT_KEYS]:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table.name}")
