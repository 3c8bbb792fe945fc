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

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    CompoundSelect,
    Connection,
    MetaData,
    Select,
    String,
    Table,
    and_,
    delete,
    exists,
    insert,
    literal_column,
    not_,
    select,
    union,
    union_all,
)

from projections.report_sql import (
    LINK_HOPS,
    MOVEMENT_OWNERS,
    Resolver,
    Stages,
    StripeSources,
    drop,
    is_payment_intent,
    materialize,
    movement_key,
    resolved_links,
    stripe_payments,
)
from projections.runner import insert_values
from projections.tables import (
    stripe_charges,
    stripe_disputes,
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
    """A temporary table of ids (the connection's own: it goes with the transaction)."""
    return Table(
        name, MetaData(), Column("id", String(255), primary_key=unique), prefixes=["TEMPORARY"]
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
    _read_back(conn)
    listed = select(_RESOLVING.c.id)
    conn.execute(delete(stripe_keys).where(stripe_keys.c.object_id.in_(listed)))
    linked = resolved_links()
    conn.execute(
        insert(stripe_keys).from_select(
            ["object_id", "key"], linked.where(linked.selected_columns[0].in_(listed))
        )
    )
    _fold_parts(conn, lambda key: key.in_(touched))
    _RESOLVING.drop(conn)


def _read_back(conn: Connection) -> None:
    """Add to `_RESOLVING` the ids whose links lead to one listed, `LINK_HOPS` deep: a
    superset of the ids that resolve to the keys, the fold keeps only the keys' rows."""
    conn.exec_driver_sql(f"ANALYZE {_RESOLVING.name}")
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


Keeping = Callable[[ColumnElement[Any]], ColumnElement[bool]]


def _fold_parts(conn: Connection, keeping: Keeping, within: Keeping | None = None) -> None:
    """Fold the Stripe payments whose key `keeping` holds for from copies of their parts:
    the rows naming an id listed in `_RESOLVING` (or one `within` holds for), every row of
    those keys (`stripe_keys` up to date for their ids)."""
    stages = Stages("fold")
    parts = (_copy(stages, table, columns, within) for table, columns in _NAMING)
    side = stripe_payments(stages, StripeSources(*parts), conn.dialect.name == "postgresql")
    materialize(conn, stages)
    conn.execute(delete(folded).where(keeping(folded.c.key)))
    names = [column.name for column in folded.columns]
    conn.execute(
        insert(folded).from_select(
            names, select(*(side.c[n] for n in names)).where(keeping(side.c.key))
        )
    )
    drop(conn, stages)


def _copy(stages: Stages, table: Table, columns: tuple[str, ...], within: Keeping | None) -> Table:
    """A stage holding the table's rows one of `columns` of which names an id resolving to
    a folded key, each once (copied by the database: no row goes through Python). Each row
    is taken once by its primary key among those the columns' joins (and ranges) find: a
    UNION of whole rows sorted every row's every column to drop the repeats."""
    key = next(column for column in table.columns if column.primary_key)
    arms: list[Select[Any]] = [
        select(key).join(_RESOLVING, table.c[column] == _RESOLVING.c.id) for column in columns
    ]
    if within is not None:
        # An id in the range is its own key only unlinked (a linked one is listed if its key
        # is in the range): a row is copied once, not once per range its ids fall in.
        arms += [
            select(key).where(within(table.c[column]), _unlinked(table.c[column]))
            for column in columns
        ]
    return stages.add(table.name, select(table).where(key.in_(union_all(*arms))))


def fold_all(conn: Connection) -> None:
    """Fold the whole read model at once: every linked object's key, every Stripe payment's
    row (after the observations' tables were filled without their fold)."""
    conn.execute(delete(stripe_keys))
    conn.execute(delete(folded))
    conn.execute(insert(stripe_keys).from_select(["object_id", "key"], resolved_links()))
    stages = Stages("fold")
    side = stripe_payments(stages, StripeSources(), conn.dialect.name == "postgresql")
    try:
        materialize(conn, stages)
        names = [column.name for column in folded.columns]
        conn.execute(insert(folded).from_select(names, select(*(side.c[n] for n in names))))
    finally:
        drop(conn, stages)


# The columns whose ids, in order, cut a chunked fold's key space into chunks: a Stripe
# payment's key is its PaymentIntent, the target of a link, or an id a movement names that no
# link resolves (each column indexed: a chunk's bound is read by index, not by a sort).
_BOUNDING = (
    stripe_objects.c.key,
    stripe_links.c.target_id,
    stripe_movements.c.payment_intent_id,
    stripe_movements.c.charge_id,
)


# A store holding at most this many chunks' ids is folded at once (`fold_all`): the chunks
# copy each payment's parts and read its links backwards, which `fold_all` does not (1.3 to
# 2 times its CPU); at the default batch size 500,000 ids, about 90,000 payments, a fold of a
# second or two on SQLite.
FOLD_ALL_CHUNKS_MAX = 25


class ChunkedFold:
    """`fold_all` in steps of a bounded size, each run in a transaction of its own
    (`projections.runner.SettlingProjection`): the end of a long catch-up holds a store's
    write lock (SQLite's is the whole database's) for one chunk at a time, not for the
    fold of every Stripe payment at once.

    First `stripe_keys`, by ranges of the linked objects' ids, `size` a step; then
    `stripe_payments`, by ranges of their keys holding about `size` ids of `_BOUNDING` each,
    each folded from copies of its parts (`_fold_parts`: the rows naming an id in the range,
    or one the links lead from to an id in it, as a batch's fold reads them). Every range is
    bounded by ids read at its step, in order, so the ranges cover every id once whatever
    was written between the steps. A store holding fewer than `FOLD_ALL_CHUNKS_MAX` times
    `size` of either is folded by `fold_all` in one step, and so is any on PostgreSQL: a
    transaction there locks only the rows it writes, none an ingest writes, and its chunks
    took nine times `fold_all`'s time (its server's statements, 50,000 payments)."""

    def __init__(self, size: int) -> None:
        assert size > 0, size
        self.size = size
        self.started = False
        self.keys_done = False
        self.after: str | None = None  # the last id of the ranges folded (None: none yet)

    def step(self, conn: Connection) -> bool:
        """Fold the next chunk in `conn`'s transaction; True when the last one is folded."""
        links = (stripe_links.c.object_id,)
        if not self.started:
            self.started = True
            whole = self.size * FOLD_ALL_CHUNKS_MAX
            if conn.dialect.name != "sqlite" or (
                whole and all(_bound(conn, c, None, whole) is None for c in (links, _BOUNDING))
            ):
                fold_all(conn)
                return True
        if not self.keys_done:
            last = _bound(conn, links, self.after, self.size)
            _fold_keys(conn, _within(self.after, last))
            self.keys_done, self.after = last is None, last
            return False
        last = _bound(conn, _BOUNDING, self.after, self.size)
        _fold_range(conn, _within(self.after, last))
        self.after = last
        return last is None


def _unlinked(column: ColumnElement[Any]) -> ColumnElement[bool]:
    """The id is its own key: a PaymentIntent, or an id no link resolves (`stripe_keys`)."""
    return ~exists().where(stripe_keys.c.object_id == column)


def _bound(
    conn: Connection, columns: Sequence[ColumnElement[Any]], after: str | None, size: int
) -> str | None:
    """The `size`-th id of `columns` (all together, in order) after `after`: the last of a
    range holding `size` of them; None when fewer are left."""
    arms = [
        select(column.label("id")).where(
            column > after if after is not None else column.is_not(None)
        )
        for column in columns
    ]
    ordered = union_all(*arms).order_by(literal_column("id")).limit(1).offset(size - 1)
    found = conn.execute(ordered).scalar()
    return None if found is None else str(found)


def _within(after: str | None, last: str | None) -> Keeping:
    """The test of an id in the range after `after` up to `last` (either end open: None)."""

    def holds(column: ColumnElement[Any]) -> ColumnElement[bool]:
        bounds: list[ColumnElement[bool]] = [column.is_not(None)]
        if after is not None:
            bounds.append(column > after)
        if last is not None:
            bounds.append(column <= last)
        return and_(*bounds)

    return holds


def _fold_keys(conn: Connection, within: Keeping) -> None:
    """`stripe_keys` again for the linked objects in a range."""
    conn.execute(delete(stripe_keys).where(within(stripe_keys.c.object_id)))
    linked = resolved_links()
    conn.execute(
        insert(stripe_keys).from_select(
            ["object_id", "key"], linked.where(within(linked.selected_columns[0]))
        )
    )


def _fold_range(conn: Connection, within: Keeping) -> None:
    """`stripe_payments` again for the keys in a range (`stripe_keys` up to date): their
    parts are the rows naming an id in the range or one the links lead from to an id in it."""
    _RESOLVING.create(conn)
    target = stripe_links.c.target_id
    leading = select(stripe_links.c.object_id).where(
        within(target),
        _unlinked(target),
        not_(is_payment_intent(stripe_links.c.object_id)),
    )
    conn.execute(insert(_RESOLVING).from_select(["id"], leading))
    _read_back(conn)
    _fold_parts(conn, within, within)
    _RESOLVING.drop(conn)
