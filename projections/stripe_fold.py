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
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Column, Connection, MetaData, String, Table, delete, insert, select, union

from projections.report_sql import (
    LINK_HOPS,
    Stages,
    StripeSources,
    drop,
    materialize,
    resolved_links,
    stripe_payments,
)
from projections.runner import delete_rows, insert_values, rows_among
from projections.tables import (
    stripe_charges,
    stripe_disputes,
    stripe_keys,
    stripe_links,
    stripe_movements,
    stripe_objects,
)
from projections.tables import stripe_payments as folded

# A movement's ids, the first one not NULL its owner (the balance transaction's never is).
_OWNERS = ("payment_intent_id", "charge_id", "source_id", "balance_transaction_id")
# The columns of each part that may name a Stripe payment's id (each indexed).
_NAMING = (
    (stripe_objects, ("payment_intent_id", "key")),
    (stripe_movements, _OWNERS),
    (stripe_charges, ("payment_intent_id", "charge_id")),
    (stripe_disputes, ("payment_intent_id", "charge_id")),
)


def _is_pi(object_id: str) -> bool:
    return object_id.startswith("pi_")


def keys_of(conn: Connection, ids: Iterable[str]) -> dict[str, str]:
    """Each id's key as the links stand: the id of a PaymentIntent or of an object without a
    link is its own; else its link followed while it names no PaymentIntent, `LINK_HOPS`
    links at most (as `projections.report_sql.resolved_links` follows them)."""
    wanted = set(ids)
    links = _links_of(conn, wanted)
    return {i: _followed(i, links) for i in wanted}


def _links_of(conn: Connection, ids: set[str]) -> dict[str, str]:
    """The links of the ids and of the ids they lead to, as far as they are followed."""
    links: dict[str, str] = {}
    asked: set[str] = set()
    frontier = {i for i in ids if not _is_pi(i)}
    for _ in range(LINK_HOPS):
        frontier -= asked
        if not frontier:
            break
        asked |= frontier
        found = dict(rows_among(conn, stripe_links, "object_id", frontier))
        links.update(found)
        frontier = {target for target in found.values() if not _is_pi(target)}
    return links


def _followed(object_id: str, links: dict[str, str]) -> str:
    if _is_pi(object_id) or object_id not in links:
        return object_id
    key = links[object_id]
    for _ in range(LINK_HOPS - 1):
        if _is_pi(key) or key not in links:
            break
        key = links[key]
    return key


def movement_keys(conn: Connection, ids: set[str]) -> set[str]:
    """The keys, as the links stand, of the movements that name one of `ids`
    (`projections.report_sql.movement_key`'s rule).

    A movement whose first id has no link counts under its balance transaction's key: a
    first link of that id moves it to the id's key, from a key the batch may not name (a
    link that points elsewhere moves it from the key of the id the batch names)."""
    if not ids:
        return set()
    names = [column.name for column in stripe_movements.columns]
    at = [names.index(name) for name in _OWNERS]
    firsts = [
        (next(row[i] for i in at if row[i] is not None), row[at[-1]])
        for row in _parts(conn, stripe_movements, _OWNERS, ids)
    ]
    keys = keys_of(conn, {i for pair in firsts for i in pair})
    return {keys[txn] if keys[owner] == owner else keys[owner] for owner, txn in firsts}


def refold(conn: Connection, keys: set[str]) -> None:
    """Fold again the Stripe payments of `keys` (and the resolved links of every id that
    resolves to one of them) from all their parts."""
    if not keys:
        return
    named = _resolving_to(conn, keys)
    links = _links_of(conn, named)
    listed = _listed(conn, named)
    conn.execute(delete(stripe_keys).where(stripe_keys.c.object_id.in_(select(listed.c.id))))
    insert_values(
        conn,
        stripe_keys,
        [(i, _followed(i, links)) for i in sorted(named) if i in links and not _is_pi(i)],
    )
    stages = Stages("fold")
    parts = (_copy(stages, table, columns, listed) for table, columns in _NAMING)
    side = stripe_payments(stages, StripeSources(*parts), conn.dialect.name == "postgresql")
    materialize(conn, stages)
    names = ", ".join(column.name for column in folded.columns)
    rows = [
        row for row in conn.exec_driver_sql(f"SELECT {names} FROM {side.name}") if row[0] in keys
    ]
    drop(conn, stages)
    conn.exec_driver_sql(f"DROP TABLE {listed.name}")
    delete_rows(conn, folded, "key", keys)
    insert_values(conn, folded, rows)


def _resolving_to(conn: Connection, keys: set[str]) -> set[str]:
    """The keys and every id whose links lead to one of them (read backwards, `LINK_HOPS`
    deep): a superset of what resolves to them, the fold keeps only their rows."""
    named = set(keys)
    frontier = set(keys)
    for _ in range(LINK_HOPS):
        if not frontier:
            break
        found = {
            object_id
            for object_id, _target in rows_among(conn, stripe_links, "target_id", frontier)
            if object_id not in named and not _is_pi(object_id)
        }
        named |= found
        frontier = found
    return named


def _parts(conn: Connection, table: Table, columns: tuple[str, ...], named: set[str]) -> list[Any]:
    """The table's rows one of `columns` of which names an id of `named`, each once."""
    key = next(column.name for column in table.columns if column.primary_key)
    at = [column.name for column in table.columns].index(key)
    found: dict[Any, Any] = {}
    for column in columns:
        for row in rows_among(conn, table, column, named):
            found[row[at]] = row
    return list(found.values())


def _listed(conn: Connection, ids: set[str]) -> Table:
    """A temporary table of the ids (analyzed: the planners then look each one up by
    index, one statement per part, not a statement per few hundred ids)."""
    listed = Table(
        "fold_named",
        MetaData(),
        Column("id", String(255), primary_key=True),
        prefixes=["TEMPORARY"],
    )
    listed.create(conn)
    insert_values(conn, listed, [(i,) for i in ids])
    conn.exec_driver_sql(f"ANALYZE {listed.name}")
    return listed


def _copy(stages: Stages, table: Table, columns: tuple[str, ...], listed: Table) -> Table:
    """A stage holding the table's rows one of `columns` of which names a listed id, each
    once (copied by the database: no row goes through Python)."""
    return stages.add(
        table.name,
        union(*(select(table).join(listed, table.c[column] == listed.c.id) for column in columns)),
    )


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
