"""The reconciliation report as SQL: every category, age, deadline and amount at risk computed
by the database over the read models (SQLAlchemy Core, the same statements on SQLite and
PostgreSQL), so that a report of a million payments streams from one cursor and its totals are
`GROUP BY`s instead of a million Python objects.

The rules are those of the docstrings below, step by step:

1. `stripe_payments`: Stripe's side folded onto its PaymentIntents. Stripe names one payment
   by several ids (the PaymentIntent, its charges, balance transactions, refunds, disputes);
   `stripe_links` ties each to its PaymentIntent (at most `LINK_HOPS` hops: refund -> charge ->
   PaymentIntent), and every snapshot, movement, charge and dispute is counted under the id it
   resolves to, its *key*.
2. The Stripe payments each ledger payment sees (`_per_payment`): those keyed by a
   PaymentIntent the ledger recorded for it (its own, or a duplicate's), and those whose
   `metadata.offline_id` is its offline_id.
3. Per payment, the *primary* Stripe payment (the one of the ledger's PaymentIntent, else the
   first seen) and how many took money (`live`), then the category (`_category`).
4. Orphans: Stripe payments taken offline (by metadata or by `offline_collected`) that no ledger
   payment claims.

Times compare as naive UTC (`projections.tables`); a threshold is turned into the moment it
falls at (`as_of - stale_after`) in Python, so the database never does arithmetic on dates.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ColumnElement,
    CompoundSelect,
    Connection,
    DateTime,
    Index,
    Integer,
    Over,
    Select,
    String,
    Subquery,
    Table,
    and_,
    case,
    cast,
    exists,
    func,
    literal,
    literal_column,
    not_,
    null,
    or_,
    select,
    union,
    union_all,
)
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.schema import CreateTableAs
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from ledger.payment import Status
from projections.report import EXCEPTIONS, Category
from projections.stripe_side import CHARGED, DISPUTE_LOST, DISPUTE_WON, DISPUTED, REFUNDED
from projections.tables import (
    payment_intent_links,
    payments,
    stripe_charges,
    stripe_disputes,
    stripe_keys,
    stripe_links,
    stripe_movements,
    stripe_objects,
)
from projections.tables import stripe_payments as stripe_payments_table

LINK_HOPS = 4  # refund -> charge -> PaymentIntent needs two
# The memory for each sort or hash of the report's stages and of Stripe's fold on PostgreSQL
# (the report's CSV may take more): at 64 MB the sort of a million payments' ids went to
# disk (≈ 190 MB, an external merge).
STAGES_WORK_MEM_MB = 256

# Stripe statuses in which a PaymentIntent holds or took no money.
NO_MONEY = ("canceled", "requires_payment_method", "requires_action")
# ...and in which it waits for the cardholder (to authenticate, to confirm): not forwarded.
AWAITING_CUSTOMER = ("requires_action", "requires_confirmation")


@dataclass(frozen=True)
class Moments:
    """The report's moment and the thresholds as the moments they fall at: a payment began at
    or before `stale_from` is stale; an authorization of brand b made at or before
    `overdue_from[b]` (else `overdue_default`) is overdue."""

    now: datetime
    stale_from: datetime
    overdue_from: Mapping[str, datetime]
    overdue_default: datetime
    age_bounds: tuple[tuple[str, datetime | None], ...]  # (bucket, began after this)


# -- functions each dialect spells its own way -------------------------------------------------


class _ListHolds(FunctionElement[bool]):
    """Whether a ";"-joined list (a column) holds an id (another column), exactly."""

    type = Boolean()
    inherit_cache = True


@compiles(_ListHolds, "sqlite")
def _list_holds_sqlite(element: _ListHolds, compiler: SQLCompiler, **kw: Any) -> str:
    listed, wanted = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"instr(';' || {listed} || ';', ';' || {wanted} || ';') > 0"


@compiles(_ListHolds, "postgresql")
def _list_holds_postgresql(element: _ListHolds, compiler: SQLCompiler, **kw: Any) -> str:
    listed, wanted = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"strpos(';' || {listed} || ';', ';' || {wanted} || ';') > 0"


class _JoinedIds(FunctionElement[str]):
    """The ids of a group, ";"-joined: sorted on PostgreSQL, in no order on SQLite (whose
    `group_concat` takes no ORDER BY before 3.44: the reader sorts them)."""

    type = String()
    inherit_cache = True


@compiles(_JoinedIds, "sqlite")
def _joined_ids_sqlite(element: _JoinedIds, compiler: SQLCompiler, **kw: Any) -> str:
    return f"group_concat({compiler.process(element.clauses, **kw)}, ';')"


@compiles(_JoinedIds, "postgresql")
def _joined_ids_postgresql(element: _JoinedIds, compiler: SQLCompiler, **kw: Any) -> str:
    # Sorted as Python sorts strings (by code point: the bytes of UTF-8, collation "C"). Not
    # by `string_agg(... ORDER BY ...)`, which sorts every group, a million sorts of one id in
    # a report of a million payments: a payment names one id, and only a list of several is
    # split and sorted (the ids hold no ";").
    ids = compiler.process(element.clauses, **kw)
    return (
        f"CASE WHEN count({ids}) = 1 THEN min({ids}) ELSE (SELECT string_agg(named_id, ';' "
        f"ORDER BY named_id COLLATE \"C\") FROM string_to_table(string_agg({ids}, ';'), ';') "
        "AS named_id) END"
    )


class _Bytewise(FunctionElement[Any]):
    """A text ordered by its bytes (its code points in UTF-8), as Python orders strings: on
    PostgreSQL `COLLATE "C"`, whose comparisons are `memcmp` and whose sorts take abbreviated
    keys (a sort of 100,000 ids about twice as fast as under the database's own "C.UTF-8",
    whose order is the same); SQLite's default collation already is."""

    inherit_cache = True

    def __init__(self, text: ColumnElement[Any]) -> None:
        super().__init__(text)
        self.type = text.type


@compiles(_Bytewise, "sqlite")
def _bytewise_sqlite(element: _Bytewise, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.clauses, **kw)


@compiles(_Bytewise, "postgresql")
def _bytewise_postgresql(element: _Bytewise, compiler: SQLCompiler, **kw: Any) -> str:
    return f'({compiler.process(element.clauses, **kw)} COLLATE "C")'


class _FirstOf(FunctionElement[Any]):
    """An aggregate picking one row's value (its first argument), of the value's type."""

    inherit_cache = True

    def __init__(self, value: ColumnElement[Any], *rest: ColumnElement[Any]) -> None:
        super().__init__(value, *rest)
        self.type = value.type


class _FirstCreated(_FirstOf):
    """The value of the group's first row where a condition holds, rows ordered by their
    creation (NULL first), then by id; NULL without such a row. Arguments: the value (an id
    or an integer), the condition, the time, the id."""

    inherit_cache = True


@compiles(_FirstCreated, "sqlite")
def _first_created_sqlite(element: _FirstCreated, compiler: SQLCompiler, **kw: Any) -> str:
    # Ordered by "0" (no time) or "1" and the time: times are stored in one width
    # ('YYYY-MM-DD HH:MM:SS.ffffff'), so the text's order is (time, id)'s.
    value, when, created, key = (compiler.process(arg, **kw) for arg in element.clauses)
    order = f"CASE WHEN {created} IS NULL THEN '0' ELSE '1' || {created} END"
    picked = _smallest_after(when, order, key, value)
    if isinstance(element.type, (BigInteger, Integer)):
        return f"CAST({picked} AS INTEGER)"
    return picked


@compiles(_FirstCreated, "postgresql")
def _first_created_postgresql(element: _FirstCreated, compiler: SQLCompiler, **kw: Any) -> str:
    value, when, created, key = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"(array_agg({value} ORDER BY {created} NULLS FIRST, {key}) FILTER (WHERE {when}))[1]"


def _smallest_after(when: str, order: str, key: str, value: str) -> str:
    """SQLite: the value of the row where `when` holds with the smallest order then key, by
    `min()` of their texts joined with the value after a separator (char(1), which sorts
    before any character of an order or a key)."""
    first = f"min(CASE WHEN {when} THEN {order} || {key} || char(1) || {value} END)"
    return f"substr({first}, instr({first}, char(1)) + 1)"


class _WholeSeconds(FunctionElement[int]):
    """Whole seconds from a (naive UTC) time to a later one, truncated as Python's
    `int(timedelta.total_seconds())` does."""

    type = BigInteger()
    inherit_cache = True


@compiles(_WholeSeconds, "sqlite")
def _whole_seconds_sqlite(element: _WholeSeconds, compiler: SQLCompiler, **kw: Any) -> str:
    # Times are stored as 'YYYY-MM-DD HH:MM:SS.ffffff': whole seconds, less one when the
    # earlier time's microseconds are past the later one's.
    start, end = (compiler.process(arg, **kw) for arg in element.clauses)
    return (
        f"(CAST(strftime('%s', {end}) AS INTEGER) - CAST(strftime('%s', {start}) AS INTEGER)"
        f" - (substr({start}, 21) > substr({end}, 21)))"
    )


@compiles(_WholeSeconds, "postgresql")
def _whole_seconds_postgresql(element: _WholeSeconds, compiler: SQLCompiler, **kw: Any) -> str:
    start, end = (compiler.process(arg, **kw) for arg in element.clauses)
    return f"CAST(trunc(extract(epoch FROM ({end} - {start}))) AS BIGINT)"


class _Rfc3339(FunctionElement[str]):
    """A naive UTC time as `projections.formats.values.rfc3339` writes it: ISO 8601 with a
    "T", the microseconds only when not zero, "Z"; NULL stays NULL."""

    type = String()
    inherit_cache = True


@compiles(_Rfc3339, "sqlite")
def _rfc3339_sqlite(element: _Rfc3339, compiler: SQLCompiler, **kw: Any) -> str:
    # Stored as 'YYYY-MM-DD HH:MM:SS.ffffff'.
    t = compiler.process(element.clauses, **kw)
    return (
        f"(substr({t}, 1, 10) || 'T' || substr({t}, 12, 8) || CASE WHEN "
        f"coalesce(substr({t}, 21), '') IN ('', '000000') THEN '' ELSE '.' || substr({t}, 21) "
        "END || 'Z')"
    )


@compiles(_Rfc3339, "postgresql")
def _rfc3339_postgresql(element: _Rfc3339, compiler: SQLCompiler, **kw: Any) -> str:
    # An orphan's NULL times are untyped: cast, to_char needs a timestamp.
    # One to_char a time (the format picked by the microseconds), not one for the seconds
    # and one more for their fraction: to_char is most of the cost.
    t = f"CAST({compiler.process(element.clauses, **kw)} AS TIMESTAMP)"
    return (
        f"CASE WHEN CAST(date_part('microseconds', {t}) AS BIGINT) %% 1000000 = 0 "
        f'THEN to_char({t}, \'YYYY-MM-DD"T"HH24:MI:SS"Z"\') '
        f'ELSE to_char({t}, \'YYYY-MM-DD"T"HH24:MI:SS.US"Z"\') END'
    )


# -- small expressions ---------------------------------------------------------------------------


def is_payment_intent(column: ColumnElement[Any]) -> ColumnElement[bool]:
    return func.substr(column, 1, 3) == "pi_"


def _text(value: str) -> ColumnElement[str]:
    return literal(value, String)


def _larger(a: ColumnElement[Any], b: ColumnElement[Any]) -> ColumnElement[Any]:
    return case((a >= b, a), else_=b)


def _sum(values: ColumnElement[Any]) -> ColumnElement[int]:
    """SUM as an integer (PostgreSQL sums BIGINT into NUMERIC, read as Decimal)."""
    return cast(func.sum(values), BigInteger)


def _count_if(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.coalesce(_sum(case((condition, 1), else_=0)), 0)


def _age(began: ColumnElement[Any], now: datetime) -> ColumnElement[int]:
    """`max(0, int((now - began).total_seconds()))`; NULL without a time."""
    at = literal(now, DateTime)
    return case((began > at, 0), else_=_WholeSeconds(began, at))


# -- the intermediate sets -----------------------------------------------------------------------


@dataclass(frozen=True)
class Stage:
    """One intermediate set: a temporary table made from a query, the columns indexed, and
    the planner's settings it is made under on PostgreSQL (name, value)."""

    created: CreateTableAs
    indexes: tuple[tuple[str, ...], ...]
    planner: tuple[tuple[str, str], ...] = ()

    @property
    def table(self) -> Table:
        return self.created.table


class Stages:
    """The report's intermediate sets, in the order each can be made from those before it.

    Each becomes a temporary table, indexed and analyzed (`materialize`) before the report's
    statements read it: the planners then know how many rows each holds (a CTE is a guess,
    on PostgreSQL a few hundred rows for a million), and the rows, the orphans and the totals
    read the same sets instead of computing them again, statement after statement. A stage's
    query is written with its values inline (a DDL statement takes no parameters): only ids,
    statuses and the filters' moments, never a money amount read from the user.
    """

    def __init__(self, prefix: str = "report") -> None:
        self.prefix = prefix
        self.made: list[Stage] = []

    def add(
        self,
        name: str,
        query: Select[Any] | CompoundSelect[Any],
        *indexes: str,
        planner: Mapping[str, str] | None = None,
    ) -> Table:
        """The stage's table; `indexes`: a column, or columns joined by "," for one index."""
        stage = Stage(
            CreateTableAs(query, f"{self.prefix}_{name}", temporary=True),
            tuple(tuple(columns.split(",")) for columns in indexes),
            tuple(sorted((planner or {}).items())),
        )
        self.made.append(stage)
        return stage.table


def materialize(conn: Connection, stages: Stages) -> None:
    """Make every stage's table, in order, in `conn`'s transaction (they go with it).

    Indexed on SQLite only, which joins by looking rows up; PostgreSQL joins them by hash or
    merge (the report's transaction turns nested loops off), where an index is only time
    spent building it."""
    indexed = conn.dialect.name == "sqlite"
    for stage in stages.made:
        if indexed:
            conn.execute(stage.created)
        else:
            _planned(conn, stage)
        table = stage.table
        for n, columns in enumerate(stage.indexes if indexed else ()):
            Index(f"{table.name}_{n}", *(table.c[name] for name in columns)).create(conn)
        conn.exec_driver_sql(f"ANALYZE {table.name}")


def _planned(conn: Connection, stage: Stage) -> None:
    """Make the stage's table under its planner settings (PostgreSQL)."""
    with settings(conn, stage.planner):
        conn.execute(stage.created)


@contextmanager
def settings(conn: Connection, chosen: Iterable[tuple[str, str]]) -> Iterator[None]:
    """PostgreSQL's settings `chosen` (name, value) for the statements run within, the
    transaction's own restored after: the rest of it (another read model's statements in a
    catch-up's batch) runs as it would have."""
    chosen = list(chosen)
    before = [(name, str(conn.exec_driver_sql(f"SHOW {name}").scalar())) for name, _ in chosen]
    for name, value in chosen:
        conn.exec_driver_sql(f"SET LOCAL {name} = {value}")
    yield
    for name, was in before:
        conn.exec_driver_sql(f"SET LOCAL {name} = '{was}'")


def drop(conn: Connection, stages: Stages) -> None:
    """Drop every stage's table: a connection kept in a pool keeps its temporary tables."""
    for stage in reversed(stages.made):
        conn.exec_driver_sql(f"DROP TABLE {stage.table.name}")


# -- 1. Stripe's side, per PaymentIntent --------------------------------------------------------


def resolved_links() -> Select[Any]:
    """Each linked object's key: its link followed while it names no PaymentIntent (the rows
    of `stripe_keys`; a PaymentIntent's own link is never followed, so it has none)."""
    hops = [stripe_links.alias(f"hop{n}") for n in range(LINK_HOPS)]
    joined: Any = hops[0]
    for before, after in pairwise(hops):
        joined = joined.outerjoin(
            after,
            and_(
                after.c.object_id == before.c.target_id, not_(is_payment_intent(before.c.target_id))
            ),
        )
    key = func.coalesce(*(hop.c.target_id for hop in reversed(hops)))
    return (
        select(hops[0].c.object_id, key.label("key"))
        .select_from(joined)
        .where(not_(is_payment_intent(hops[0].c.object_id)))
    )


class Resolver:
    """`resolve(id)`: the PaymentIntent an id belongs to, as far as the links know (else the
    id), as an outer join per use on the resolved links (`stripe_keys`, or a table of the
    same columns)."""

    def __init__(self, keys: Table = stripe_keys) -> None:
        self.uses = 0
        self.keys = keys

    def __call__(self, source: Any, column: ColumnElement[Any]) -> tuple[Any, ColumnElement[Any]]:
        self.uses += 1
        link = self.keys.alias(f"link{self.uses}")
        joined = source.outerjoin(link, link.c.object_id == column)
        return joined, case(
            (is_payment_intent(column), column), else_=func.coalesce(link.c.key, column)
        )


@dataclass(frozen=True)
class StripeSources:
    """The observations a fold reads: the read model's tables, or a batch's share of them
    (copies of the same columns); and the resolved links it reads them by (`stripe_keys`, or
    a copy a fold made from a snapshot). Each movement once, as in its table, whose key
    `movement_key` is: on SQLite `stripe_payments` looks a key's first movements up by it."""

    objects: Table = stripe_objects
    movements: Table = stripe_movements
    charges: Table = stripe_charges
    disputes: Table = stripe_disputes
    keys: Table = stripe_keys


def stripe_payments(stages: Stages, sources: StripeSources, ranked: bool) -> Select[Any]:
    """One row per Stripe payment (its key) with what the report reads of it: the rows of
    the `stripe_payments` read model (`projections.stripe_fold` keeps them), the columns
    named as the table's. The query, not a stage: a fold writes its rows straight into the
    table (a stage of every row, analyzed, then copied once by a scan, cost PostgreSQL a
    fifth of `fold_all`'s statements).

    Its snapshot is that of its object with the smallest key: `DISTINCT ON` on PostgreSQL
    (`ranked`), on SQLite a `GROUP BY` with `min()`, whose other columns SQLite takes from the
    row that holds the minimum (a documented rule of SQLite's): each one sort, without a
    window's rank over every object and a pass keeping the first."""
    resolve = Resolver(sources.keys)
    o = sources.objects.alias("o")
    owner = func.coalesce(o.c.payment_intent_id, o.c.key)
    joined, key = resolve(o, owner)
    snapshot = (
        select(
            key.label("key"),
            o.c.offline_id,
            o.c.amount,
            o.c.amount_received,
            o.c.currency,
            o.c.status,
            o.c.offline_collected,
            o.c.card_brand,
            o.c.decline_code,
            o.c.created_at,
        )
        .select_from(joined)
        .where(o.c.status.is_not(None))
    )
    if ranked:
        snapshot = snapshot.ext(distinct_on(_Bytewise(key))).order_by(
            _Bytewise(key), _Bytewise(o.c.key)
        )
    else:
        snapshot = snapshot.add_columns(func.min(o.c.key).label("first_object")).group_by(key)
    snap = stages.add("snap", snapshot, "key")

    m = sources.movements.alias("m")
    joined, key = movement_key(resolve, m)
    is_charge = or_(m.c.category.in_(sorted(CHARGED)), and_(m.c.category.is_(None), m.c.gross >= 0))
    is_refund = or_(m.c.category.in_(sorted(REFUNDED)), and_(m.c.category.is_(None), m.c.gross < 0))
    converted = and_(
        m.c.customer_facing_currency.is_not(None),
        m.c.customer_facing_currency != m.c.currency,
    )
    customer = case(
        (and_(converted, m.c.customer_facing_amount.is_not(None)), m.c.customer_facing_amount),
        else_=m.c.gross,
    )
    charge_first = case((is_charge, 0), else_=1)

    # Each key's first movement, charges first, then by movement_key; and its first paid out
    # in the same order: on PostgreSQL by one window in that order, the row numbers and the
    # running count of the movements paid out (the first paid out is the one where it reaches
    # 1), whose ordered aggregates sort each group apart (a second window, ordered by paid
    # out first, cost a second sort: an eighth of the statement); on SQLite by the smallest
    # of the texts "0" or "1" and movement_key in the per-key sums below, each such
    # movement's columns then looked up by its key (the two windows' sorts were two thirds
    # of the movements' statement there; the columns carried through the `min()` of texts
    # holding them too, `_First`, 45 % of its instructions). The movements are read by the
    # sums alone, as a subquery: a stage of them was written, indexed and analyzed for one
    # scan.
    def in_order(function: FunctionElement[Any]) -> Over[Any]:
        return function.over(
            partition_by=_Bytewise(key),
            order_by=(charge_first, _Bytewise(m.c.movement_key)),
            rows=(None, 0),
        )

    ranks = (
        [
            in_order(func.row_number()).label("currency_nth"),
            in_order(func.count(m.c.payout_id)).label("paid_so_far"),
        ]
        if ranked
        else []
    )
    movement = (
        select(
            key.label("key"),
            m.c.movement_key,
            m.c.currency,
            m.c.gross,
            m.c.fee,
            m.c.net,
            m.c.category,
            m.c.offline_id,
            m.c.created_at,
            m.c.payout_id,
            m.c.payout_at,
            m.c.customer_facing_currency,
            case((is_charge, 1), else_=0).label("is_charge"),
            case((is_refund, 1), else_=0).label("is_refund"),
            case((converted, 1), else_=0).label("converted"),
            customer.label("customer"),
            *ranks,
        )
        .select_from(joined)
        .subquery("movement")
    )
    mv = movement.c
    charge, refund = mv.is_charge == 1, mv.is_refund == 1
    shown_currency = func.coalesce(mv.customer_facing_currency, mv.currency)
    paid = mv.payout_id.is_not(None)
    firsts: tuple[ColumnElement[Any], ...]
    if ranked:
        firsts = (
            func.max(case((mv.currency_nth == 1, shown_currency))).label("currency"),
            func.max(case((mv.paid_so_far == 1, mv.payout_id))).label("payout_id"),
            func.max(case((and_(mv.paid_so_far == 1, paid), mv.payout_at))).label("payout_at"),
        )
    else:
        # "0" or "1" and the movement's key: the smallest names the first movement.
        ordered = case((charge, "0"), else_="1").concat(mv.movement_key)
        firsts = (
            func.min(ordered).label("first_movement"),
            func.min(case((paid, ordered))).label("first_paid"),
        )
    moved = stages.add(
        "moved",
        select(
            mv.key,
            _sum(case((charge, mv.customer))).label("charged"),
            func.coalesce(_sum(case((refund, mv.customer), else_=0)), 0).label("refunds"),
            _count_if(mv.category == "dispute").label("dispute_rows"),
            func.coalesce(_sum(case((mv.category == "dispute", mv.customer), else_=0)), 0).label(
                "dispute_sum"
            ),
            _count_if(mv.category == "dispute_reversal").label("reversals"),
            _sum(case((and_(charge, mv.converted == 1), mv.gross))).label("settled"),
            func.min(case((and_(charge, mv.converted == 1), mv.currency))).label(
                "settled_currency"
            ),
            _sum(mv.fee).label("fees"),
            _sum(mv.net).label("net"),
            func.min(mv.offline_id).label("offline_id"),
            func.min(mv.created_at).label("created_at"),
            *firsts,
        ).group_by(mv.key),
        "key",
    )
    first_currency: ColumnElement[Any]
    firsts_of: tuple[tuple[Any, ColumnElement[bool]], ...]
    if ranked:
        first_currency = moved.c.currency
        first_payout: tuple[ColumnElement[Any], ColumnElement[Any]] = (
            moved.c.payout_id,
            moved.c.payout_at,
        )
        firsts_of = ()
    else:
        first, first_paid = sources.movements.alias("first"), sources.movements.alias("first_paid")
        first_currency = func.coalesce(first.c.customer_facing_currency, first.c.currency)
        first_payout = (first_paid.c.payout_id, first_paid.c.payout_at)
        firsts_of = (
            (first, first.c.movement_key == func.substr(moved.c.first_movement, 2)),
            (first_paid, first_paid.c.movement_key == func.substr(moved.c.first_paid, 2)),
        )

    c = sources.charges.alias("c")
    joined, key = resolve(c, func.coalesce(c.c.payment_intent_id, c.c.charge_id))
    keyed = select(key.label("key"), c.c.amount_refunded).select_from(joined).subquery()
    charges = stages.add(
        "charges",
        select(keyed.c.key, func.max(keyed.c.amount_refunded).label("refunded")).group_by(
            keyed.c.key
        ),
        "key",
    )
    d = sources.disputes.alias("d")
    joined, key = resolve(d, func.coalesce(d.c.payment_intent_id, d.c.charge_id))
    keyed = select(key.label("key"), d.c.amount, d.c.status).select_from(joined).subquery()
    disputes = stages.add(
        "disputes",
        select(
            keyed.c.key,
            _sum(keyed.c.amount).label("amount"),
            _count_if(keyed.c.status == DISPUTE_LOST).label("lost"),
            func.min(case((keyed.c.status.not_in(sorted(DISPUTE_WON)), keyed.c.status))).label(
                "open"
            ),
        ).group_by(keyed.c.key),
        "key",
    )
    has_snapshot = snap.c.key.is_not(None)
    status = case(
        (has_snapshot, snap.c.status),
        (moved.c.charged > 0, _text("succeeded")),
        else_=null(),
    )
    amount = case(
        (
            has_snapshot,
            case(
                (
                    and_(snap.c.status == "succeeded", snap.c.amount_received.is_not(None)),
                    snap.c.amount_received,
                ),
                else_=snap.c.amount,
            ),
        ),
        else_=moved.c.charged,
    )
    refunded = _larger(
        _larger(-func.coalesce(moved.c.refunds, 0), func.coalesce(charges.c.refunded, 0)),
        literal(0, BigInteger),
    )
    has_disputes = disputes.c.key.is_not(None)
    disputed = case(
        (has_disputes, disputes.c.amount),
        (moved.c.dispute_rows > 0, -moved.c.dispute_sum),
        else_=0,
    )
    dispute_status = case(
        (
            has_disputes,
            case(
                (disputes.c.lost > 0, _text(DISPUTE_LOST)),
                else_=func.coalesce(disputes.c.open, _text("won")),
            ),
        ),
        (
            moved.c.dispute_rows > 0,
            case((moved.c.reversals > 0, _text("won")), else_=_text("open")),
        ),
        else_=null(),
    )
    if ranked:
        parts, side_key = _fully_joined(snap, moved, charges, disputes)
    else:
        keys = union(
            select(snap.c.key),
            select(moved.c.key),  # not the movements' subquery: it would be joined again
            select(charges.c.key),
            select(disputes.c.key),
        ).subquery("keys")
        side_key = keys.c.key
        parts = keys.outerjoin(snap, snap.c.key == side_key).outerjoin(
            moved, moved.c.key == side_key
        )
        for table, on in firsts_of:
            parts = parts.outerjoin(table, on)
        parts = parts.outerjoin(charges, charges.c.key == side_key).outerjoin(
            disputes, disputes.c.key == side_key
        )
    side = select(
        side_key.label("key"),
        func.coalesce(snap.c.offline_id, moved.c.offline_id).label("offline_id"),
        func.coalesce(snap.c.offline_collected, False).label("offline_collected"),
        func.coalesce(snap.c.created_at, moved.c.created_at).label("created_at"),
        snap.c.card_brand,
        case((has_snapshot, snap.c.currency), else_=first_currency).label("currency"),
        status.label("status"),
        amount.label("amount"),
        and_(
            has_snapshot,
            or_(snap.c.decline_code.is_not(None), snap.c.status == "requires_payment_method"),
        ).label("declined"),
        refunded.label("refunded"),
        disputed.label("disputed"),
        dispute_status.label("dispute_status"),
        moved.c.settled,
        moved.c.settled_currency,
        moved.c.fees,
        moved.c.net,
        first_payout[0].label("payout_id"),
        first_payout[1].label("payout_at"),
    )
    return side.select_from(parts)


def _fully_joined(*stages: Table) -> tuple[Any, ColumnElement[Any]]:
    """PostgreSQL: the stages (each one row per key, never NULL) joined on their keys by FULL
    JOINs, every key once, and that key: each key of a stage that the ones before did not
    hold added as it goes. The UNION of their keys joined with each stage (SQLite's, whose
    FULL JOIN came in 3.39) hashed every key once more and joined one stage more: a quarter
    of the statement's time."""
    joined: Any = stages[0]
    for n, stage in enumerate(stages[1:], start=1):
        before = func.coalesce(*(s.c.key for s in stages[:n])) if n > 1 else stages[0].c.key
        joined = joined.outerjoin(stage, stage.c.key == before, full=True)
    return joined, func.coalesce(*(stage.c.key for stage in stages))


# A movement's ids in the order they own it: the first one not NULL is its owner (the balance
# transaction's never is).
MOVEMENT_OWNERS = ("payment_intent_id", "charge_id", "source_id", "balance_transaction_id")


def movement_key(resolve: Resolver, m: Any) -> tuple[Any, ColumnElement[Any]]:
    """A movement's key: that of the first id it names (its PaymentIntent, charge, source,
    balance transaction), else, when no link resolves that id, its balance transaction's."""
    owner = func.coalesce(*(m.c[column] for column in MOVEMENT_OWNERS))
    joined, first_key = resolve(m, owner)
    joined, by_txn = resolve(joined, m.c.balance_transaction_id)
    return joined, case((first_key == owner, by_txn), else_=first_key)


# -- 2 and 3. The ledger's payments ---------------------------------------------------------------


@dataclass(frozen=True)
class ReportQueries:
    """The statements of one report: the sets they read (made first, `materialize`), its rows
    in order (payments by offline_id, then orphans by creation), and the movements the payout
    totals read."""

    stages: Stages
    payment_rows: Select[Any]
    orphan_rows: Select[Any]
    movements: Subquery  # those paid out, with their key
    # Whether the report has a row at all, without computing its rows.
    any_row: Select[Any]


def report_queries(
    moments: Moments,
    location_id: str | None,
    since: datetime | None,
    until: datetime | None,
    ranked: bool = False,
) -> ReportQueries:
    """`ranked` (PostgreSQL): the first ids of a payment by a window (PostgreSQL's ordered
    aggregates sort each group once per aggregate) and a Stripe payment's snapshot by
    `DISTINCT ON`, and the ledger's PaymentIntents read once (below); else (SQLite) both by
    aggregates."""
    stages = Stages()
    resolve = Resolver()
    side = stripe_payments_table
    m = stripe_movements.alias("m")
    joined, movement = movement_key(resolve, m)
    movements = (
        select(
            movement.label("key"),
            *(m.c[name] for name in ("payout_id", "payout_at", "currency", "category")),
            *(m.c[name] for name in ("gross", "fee", "net")),
        )
        .select_from(joined)
        .where(m.c.payout_id.is_not(None))
        .subquery("paid_out")
    )
    p = payments.alias("p")
    links = payment_intent_links.alias("l")
    joined, key = resolve(
        links.join(p, p.c.offline_id == links.c.offline_id), links.c.payment_intent_id
    )
    # The PaymentIntents the ledger holds for each payment: its own and its duplicates'.
    # On PostgreSQL only `ledger_beyond` reads them, as a subquery: a temporary table of
    # every one (a million at a million payments) would be written and analyzed for one
    # read. SQLite looks the orphans' keys up in them (indexed).
    ledger_pis_query = (
        select(
            p.c.offline_id,
            links.c.payment_intent_id.label("pi"),
            key.label("key"),
            p.c.amount.label("payment_amount"),
            p.c.payment_intent_id.label("payment_pi"),
        )
        .select_from(joined)
        .where(
            or_(
                links.c.payment_intent_id == p.c.payment_intent_id,
                _ListHolds(p.c.duplicate_payment_intent_ids, links.c.payment_intent_id),
            )
        )
    )
    ledger_pis = (
        ledger_pis_query.subquery("ledger_pis")
        if ranked
        else stages.add("ledger_pis", ledger_pis_query, "key")
    )
    beyond = _ledger_beyond(stages, side, ledger_pis)
    # A Stripe payment some ledger PaymentIntent resolves to is no orphan. An orphan carries
    # no offline_id or one no payment has, so the ledger's PaymentIntents that resolve to it
    # are all in `ledger_beyond` (their Stripe payment carries another offline_id than
    # their payment's): on PostgreSQL the anti-join hashes those (tens of thousands at a
    # million payments), not every one.
    claimed = beyond.c.key if ranked else ledger_pis.c.key
    per_payment = _per_payment(stages, side, beyond, ranked)
    filtered = _admitted(
        p.c.location_id, func.coalesce(p.c.stored_at, p.c.created_at), location_id, since, until
    )
    # A payment that names several ids: what `_per_payment` folded, its primary Stripe payment
    # joined by key.
    primary = side.alias("primary_payment")
    folded = select(
        *_payment_columns(p),
        per_payment.c.live,
        per_payment.c.live_pis,
        per_payment.c.live_unlinked,
        (per_payment.c.live_taken - per_payment.c.first_taken).label("extra"),
        case((p.c.status == Status.DECLINED.value, 0), else_=per_payment.c.unseen).label("unseen"),
        per_payment.c.ids,
        primary.c.key.label("primary_key"),
        *_primary_columns(primary),
    ).select_from(
        p.join(per_payment, per_payment.c.offline_id == p.c.offline_id).outerjoin(
            primary, primary.c.key == per_payment.c.primary_key
        )
    )
    # Every other payment names at most one id, the Stripe payment that carries its
    # offline_id (`_per_payment`): the same facts, without a fold.
    alone = side.alias("alone")
    live = and_(
        alone.c.key.is_not(None), or_(alone.c.status.is_(None), alone.c.status.not_in(NO_MONEY))
    )
    single = select(
        *_payment_columns(p),
        case((live, 1), else_=0).label("live"),
        case((and_(live, is_payment_intent(alone.c.key)), 1), else_=0).label("live_pis"),
        case((and_(live, not_(is_payment_intent(alone.c.key))), 1), else_=0).label("live_unlinked"),
        _zero().label("extra"),
        _zero().label("unseen"),
        alone.c.key.label("ids"),
        alone.c.key.label("primary_key"),
        *_primary_columns(alone),
    ).select_from(p.outerjoin(alone, alone.c.offline_id == p.c.offline_id))
    single = single.where(~exists().where(per_payment.c.offline_id == p.c.offline_id))
    facts = union_all(folded.where(*filtered), single.where(*filtered)).subquery("facts")
    f = facts.c
    began = func.coalesce(f.stored_at, f.created_at)
    category, at_risk = _category(f, moments)
    payment_rows = select(
        category.label("category"),
        f.offline_id,
        f.location_id,
        f.device_id,
        f.amount,
        f.currency,
        f.status.label("ledger_status"),
        f.ids,
        f.stored_at,
        f.forwarded_at,
        _age(began, moments.now).label("age_seconds"),
        at_risk.label("amount_at_risk"),
        *_stripe_columns(f, "s_"),
        f.breaches,
        began.label("began"),
        f.primary_key.label("stripe_key"),
    ).order_by(_Bytewise(f.offline_id))

    orphan = side.alias("orphan")
    orphan_rows = select(
        _text(Category.ORPHAN_IN_STRIPE.value).label("category"),
        orphan.c.offline_id,
        null().label("location_id"),
        null().label("device_id"),
        null().label("amount"),
        null().label("currency"),
        null().label("ledger_status"),
        orphan.c.key.label("ids"),
        null().label("stored_at"),
        null().label("forwarded_at"),
        _age(orphan.c.created_at, moments.now).label("age_seconds"),
        literal(0, BigInteger).label("amount_at_risk"),
        *_stripe_columns(orphan.c, ""),
        _text("").label("breaches"),
        orphan.c.created_at.label("began"),
        orphan.c.key.label("stripe_key"),
    ).where(
        or_(orphan.c.offline_id.is_not(None), orphan.c.offline_collected.is_(True)),
        ~exists().where(claimed == orphan.c.key),
        or_(
            orphan.c.offline_id.is_(None),
            ~exists().where(payments.c.offline_id == orphan.c.offline_id),
        ),
        *_admitted(None, orphan.c.created_at, None, since, until),
    )
    if location_id is not None:  # an orphan has no location
        orphan_rows = orphan_rows.where(literal(False))
    orphan_rows = orphan_rows.order_by(orphan.c.created_at.nulls_first(), _Bytewise(orphan.c.key))
    admitted = select(payments.c.offline_id).where(
        *_admitted(
            payments.c.location_id,
            func.coalesce(payments.c.stored_at, payments.c.created_at),
            location_id,
            since,
            until,
        )
    )
    any_row = select(or_(exists(admitted), exists(orphan_rows.order_by(None))))
    return ReportQueries(stages, payment_rows, orphan_rows, movements, any_row)


# What the report reads of a payment's primary Stripe payment (as s_<name>).
_PRIMARY = (
    "created_at",
    "card_brand",
    "currency",
    "status",
    "amount",
    "declined",
    "refunded",
    "disputed",
    "dispute_status",
    "settled",
    "settled_currency",
    "fees",
    "net",
    "payout_id",
    "payout_at",
)


# What the report reads of a ledger payment.
_PAYMENT = (
    "offline_id",
    "location_id",
    "device_id",
    "amount",
    "currency",
    "status",
    "card_brand",
    "payment_intent_id",
    "duplicate_refund_amount",
    "amount_captured",
    "created_at",
    "stored_at",
    "forwarded_at",
    "breaches",
)


def _payment_columns(p: Any) -> list[ColumnElement[Any]]:
    return [p.c[name] for name in _PAYMENT]


def _primary_columns(primary: Any) -> list[ColumnElement[Any]]:
    return [primary.c[name].label(f"s_{name}") for name in _PRIMARY]


def _per_payment(stages: Stages, side: Table, beyond: Table, ranked: bool) -> Table:
    """Per payment, what the category needs of the Stripe payments it sees and of the
    ledger's PaymentIntents, in one pass over every id it names.

    A payment names an id when it sees the Stripe payment of that key (through a
    PaymentIntent the ledger recorded for it, or through its offline_id: `seen`) or when the
    ledger recorded it (`ledger`): each (payment, id) once, with what the seen Stripe payment
    took and whether it is the ledger's PaymentIntent carried from the join that found it
    (the offline_id join, then what only the ledger's ids name: `_ledger_beyond`). In
    the order they were created, the seen ids give the primary Stripe payment (the ledger's
    PaymentIntent, else the first seen) and the first that took money (what the others took
    is the `extra`); the recorded ones no Stripe payment shows are `unseen`.
    """
    p = payments.alias("p")
    one, zero = literal(1, BigInteger), literal(0, BigInteger)

    def found(
        owner: Any, stripe: Any, amount: ColumnElement[Any], own: ColumnElement[Any]
    ) -> Select[Any]:
        live = or_(stripe.c.status.is_(None), stripe.c.status.not_in(NO_MONEY))
        taken = case(
            (or_(stripe.c.amount.is_(None), stripe.c.amount == 0), amount), else_=stripe.c.amount
        )
        return select(
            owner.c.offline_id,
            stripe.c.key.label("id"),
            one.label("seen"),
            zero.label("ledger"),
            case((live, 1), else_=0).label("live"),
            taken.label("taken"),
            case((stripe.c.key == own, 1), else_=0).label("own"),
            stripe.c.created_at,
        )

    # The ids only `ledger_beyond` names, each (payment, id) once (two of the ledger's ids
    # may resolve to one Stripe payment); a recorded id the offline_id join sees is left to
    # it (that it was recorded matters only while no Stripe payment shows it). An id that is
    # its own key and that no Stripe payment shows cannot be seen by that join: only an
    # aliased one is looked up, so that PostgreSQL, whose anti-join hashes the Stripe
    # payments (all of them, for a few thousand ids), skips the hash when none is aliased.
    again = side.alias("again")
    recorded = select(beyond.c.offline_id, beyond.c.pi, zero, one, zero, null(), zero, null())
    beyond_named = union_all(
        found(beyond, beyond, beyond.c.payment_amount, beyond.c.payment_pi).where(
            beyond.c.key.is_not(None), beyond.c.elsewhere == 1
        ),
        recorded.where(beyond.c.key.is_(None), beyond.c.aliased == 0),
        recorded.where(
            beyond.c.aliased == 1,
            ~exists().where(again.c.key == beyond.c.pi, again.c.offline_id == beyond.c.offline_id),
        ),
    ).subquery("beyond_named")
    b = beyond_named.c
    # The payments that may name several ids: those of several Stripe payments by offline_id,
    # and those `ledger_beyond` names ids for. Every other payment names at most one, the
    # Stripe payment of its offline_id, whose facts need no fold (`report_queries`): most of
    # a report's payments are left out here.
    shared = side.alias("shared")
    several = stages.add(
        "several",
        union(
            select(shared.c.offline_id)
            .where(shared.c.offline_id.is_not(None))
            .group_by(shared.c.offline_id)
            .having(func.count() > 1),
            select(beyond.c.offline_id),
        ),
        "offline_id",
        # Counted in the order of the read model's index on offline_id (an index-only scan
        # where its pages are all visible), not in a hash of every offline_id: the planner,
        # which guessed 325,000 offline_ids where there were a million, picked the hash,
        # which took four times as long at a million Stripe payments.
        planner={"enable_hashagg": "off"},
    )
    # The offline_id join names each (payment, id) once, and none of those above.
    named = union_all(
        found(p, side, p.c.amount, p.c.payment_intent_id)
        .join_from(p, several, several.c.offline_id == p.c.offline_id)
        .join(side, side.c.offline_id == p.c.offline_id),
        select(b.offline_id, b.id, *(func.max(b[name]).label(name) for name in _NAMED)).group_by(
            b.offline_id, b.id
        ),
    ).subquery("named")
    n: Any = named.c
    first_taken: ColumnElement[Any]
    first_seen: ColumnElement[Any]
    if ranked:
        # One window: the rank among the payment's seen (or unseen) ids, and how many of them
        # up to this one took money (a running count: (created_at, id) has no ties).
        partition = (_Bytewise(n.offline_id), n.seen)
        order = (n.created_at.nulls_first(), _Bytewise(n.id))
        windowed = select(
            named,
            func.row_number().over(partition_by=partition, order_by=order).label("nth"),
            func.sum(n.live).over(partition_by=partition, order_by=order).label("lives_so_far"),
        ).subquery("ranked")
        n = windowed.c
        first_taken = _sum(case((and_(n.live == 1, n.lives_so_far == 1), n.taken), else_=0))
        first_seen = func.max(case((and_(n.seen == 1, n.nth == 1), n.id)))
    else:
        # The same firsts as aggregates of the payment's GROUP BY: one sort fewer.
        first_taken = _FirstCreated(n.taken, n.live == 1, n.created_at, n.id)
        first_seen = _FirstCreated(n.id, n.seen == 1, n.created_at, n.id)
    is_live, is_pi = n.live == 1, is_payment_intent(n.id)
    # Grouped as the window partitioned them, so that its sort serves the GROUP BY too.
    payment = _Bytewise(n.offline_id)
    return stages.add(
        "per_payment",
        select(
            payment.label("offline_id"),
            _count_if(is_live).label("live"),
            _count_if(and_(is_live, is_pi)).label("live_pis"),
            _count_if(and_(is_live, not_(is_pi))).label("live_unlinked"),
            func.coalesce(_sum(case((is_live, n.taken), else_=0)), 0).label("live_taken"),
            func.coalesce(first_taken, 0).label("first_taken"),
            func.coalesce(func.max(case((n.own == 1, n.id))), first_seen).label("primary_key"),
            _count_if(and_(n.ledger == 1, n.seen == 0)).label("unseen"),
            _JoinedIds(n.id).label("ids"),
        ).group_by(payment),
        "offline_id",
    )


def _ledger_beyond(stages: Stages, side: Table, ledger_pis: Table | Subquery) -> Table:
    """The ledger's PaymentIntents with the Stripe payment each resolves to (`key`, NULL when
    Stripe shows none), but for those the offline_id join finds again under the same id.

    A ledger PaymentIntent that is its own key (the usual case: a "pi_" id) and whose Stripe
    payment carries the payment's offline_id names nothing the offline_id join does not: the
    same (payment, id), the same Stripe payment, the same amounts. Left out here, they are
    most of a report's payments; what is left (Stripe shows no such payment, it carries
    another offline_id or none, or the id resolved to another key) is what `_per_payment`
    adds to the offline_id join: the seen ids (`elsewhere`) and the recorded ids that may be
    unseen (no key, or `aliased`)."""
    lp = ledger_pis.c
    elsewhere = side.c.offline_id.is_distinct_from(lp.offline_id)
    aliased = lp.key != lp.pi
    return stages.add(
        "ledger_beyond",
        select(
            *(lp[name] for name in ("offline_id", "pi", "payment_amount", "payment_pi")),
            *(side.c[name] for name in ("key", "status", "amount", "created_at")),
            case((elsewhere, 1), else_=0).label("elsewhere"),
            case((aliased, 1), else_=0).label("aliased"),
        )
        .select_from(ledger_pis.outerjoin(side, side.c.key == lp.key))
        .where(or_(side.c.key.is_(None), elsewhere, aliased)),
    )


# What `_per_payment` keeps of each (payment, id), folded over the joins that found it.
_NAMED = ("seen", "ledger", "live", "taken", "own", "created_at")


def _admitted(
    location: ColumnElement[Any] | None,
    when: ColumnElement[Any],
    location_id: str | None,
    since: datetime | None,
    until: datetime | None,
) -> list[ColumnElement[bool]]:
    """The filters' conditions (`Filters`): times as naive UTC, `since` inclusive."""
    conditions: list[ColumnElement[bool]] = []
    if location_id is not None and location is not None:
        conditions.append(location == location_id)
    if since is not None:
        conditions.append(when >= literal(since, DateTime))
    if until is not None:
        conditions.append(when < literal(until, DateTime))
    return conditions


def _stripe_columns(c: Any, prefix: str) -> list[ColumnElement[Any]]:
    """What Stripe holds, as the row's columns: amounts, refunds, disputes, settlement, fees,
    payout (NULL, or 0 for the sums, without a Stripe payment)."""
    return [
        c[f"{prefix}amount"].label("stripe_amount"),
        c[f"{prefix}currency"].label("stripe_currency"),
        c[f"{prefix}status"].label("stripe_status"),
        func.coalesce(c[f"{prefix}refunded"], 0).label("refunded_amount"),
        func.coalesce(c[f"{prefix}disputed"], 0).label("disputed_amount"),
        c[f"{prefix}dispute_status"].label("dispute_status"),
        c[f"{prefix}settled"].label("settlement_amount"),
        c[f"{prefix}settled_currency"].label("settlement_currency"),
        c[f"{prefix}fees"].label("stripe_fee"),
        c[f"{prefix}net"].label("stripe_net"),
        c[f"{prefix}payout_id"].label("payout_id"),
        c[f"{prefix}payout_at"].label("payout_at"),
    ]


def _category(f: Any, moments: Moments) -> tuple[ColumnElement[str], ColumnElement[int]]:
    """The payment's category and the money it puts at risk, rule by rule in order.

    A PaymentIntent Stripe shows but that waits for the cardholder holds nothing yet: as if
    Stripe had not seen the payment. What Stripe took is compared with what the ledger expects
    it to have taken: the authorization while it awaits capture, else the capture (partial or
    whole) once the ledger knows of one. Only a refund or a dispute seen so far says nothing
    of the amount taken: no mismatch.
    """
    status, amount = f.status, f.amount
    # A charge no link ties to its PaymentIntent yet (a report without payment_intent_id) may
    # be the charge of a PaymentIntent the ledger holds and Stripe's data does not show: it
    # counts as a second payment only beyond those.
    taken = f.live_pis + _larger(f.live_unlinked, f.unseen)
    has_primary = and_(
        f.primary_key.is_not(None),
        or_(f.s_status.is_(None), f.s_status.not_in(AWAITING_CUSTOMER)),
    )
    began = func.coalesce(f.stored_at, f.created_at)
    stale = began <= literal(moments.stale_from, DateTime)
    expected = case(
        (f.s_status == "requires_capture", amount),
        (f.amount_captured != 0, f.amount_captured),
        else_=amount,
    )
    differs = and_(f.s_amount.is_not(None), f.s_amount != expected)
    authorized = func.coalesce(f.forwarded_at, f.s_created_at, f.created_at)
    brand = func.coalesce(f.card_brand, f.s_card_brand)
    overdue_default: ColumnElement[Any] = literal(moments.overdue_default, DateTime)
    by_brand = [
        (brand == name, literal(moment, DateTime))
        for name, moment in sorted(moments.overdue_from.items())
    ]
    overdue_from = case(*by_brand, else_=overdue_default) if by_brand else overdue_default
    other_currency = or_(f.s_currency.is_(None), f.s_currency != f.currency)
    stored = status == Status.STORED.value
    # The rules in order as a tree: a condition shared by several consecutive rules is tested
    # once, and the rules under it only when it holds (each group ends with a rule that always
    # fires, so the order is the flat list's).
    no_primary = _Decision(
        [
            (f.payment_intent_id.is_not(None), (Category.MISSING_IN_STRIPE, amount)),
            # Never confirmed offline (e.g. refused by an offline rule): still being sold, or
            # abandoned once stale. Nothing was stored, so nothing is at risk.
            (and_(not_(stored), stale), (Category.CANCELED, _zero())),
            (not_(stored), (Category.PENDING_FORWARD, _zero())),
            (stale, (Category.STALE_FORWARD, amount)),
        ],
        (Category.PENDING_FORWARD, amount),
    )
    capture = _Decision(
        [(authorized <= overdue_from, (Category.CAPTURE_OVERDUE, amount))],
        (Category.AWAITING_CAPTURE, _zero()),
    )
    # Taken in full: what happened to the money since (a dispute first, since it puts money
    # at risk; then refunds, which the merchant chose).
    dispute = _Decision(
        [
            (f.s_dispute_status == DISPUTE_LOST, (Category.DISPUTE_LOST, f.s_disputed)),
            (f.s_dispute_status == "won", (Category.DISPUTE_WON, _zero())),
        ],
        (Category.DISPUTED, f.s_disputed),
    )
    rules = _Decision(
        [
            (and_(status == Status.CANCELED.value, f.live == 0), (Category.CANCELED, _zero())),
            (
                or_(taken > 1, f.duplicate_refund_amount != 0),
                (Category.DUPLICATE, _larger(f.duplicate_refund_amount, f.extra)),
            ),
            (
                or_(
                    status == Status.DECLINED.value, and_(f.primary_key.is_not(None), f.s_declined)
                ),
                (Category.DECLINED, amount),
            ),
            (not_(has_primary), no_primary),
            (other_currency, (Category.AMOUNT_MISMATCH, amount)),
            (differs, (Category.AMOUNT_MISMATCH, func.abs(expected - f.s_amount))),
            (f.s_status == "canceled", (Category.CANCELED, _zero())),
            (f.s_status == "requires_capture", capture),
            (f.s_dispute_status.is_not(None), dispute),
            (and_(f.s_refunded >= expected, expected > 0), (Category.REFUNDED, _zero())),
            (f.s_refunded != 0, (Category.PARTIALLY_REFUNDED, _zero())),
        ],
        (Category.MATCHED, _zero()),
    )
    category = rules.case(lambda outcome: _text(outcome[0].value))
    at_risk = rules.case(lambda outcome: outcome[1])
    return category, at_risk


_Outcome = tuple[Category, ColumnElement[int]]  # a category and the money it puts at risk


@dataclass(frozen=True)
class _Decision:
    """The outcome of the first branch whose condition holds (a branch may decide further),
    else `otherwise`."""

    branches: list[tuple[ColumnElement[bool], _Outcome | _Decision]]
    otherwise: _Outcome

    def case(self, pick: Callable[[_Outcome], ColumnElement[Any]]) -> ColumnElement[Any]:
        return case(
            *(
                (when, then.case(pick) if isinstance(then, _Decision) else pick(then))
                for when, then in self.branches
            ),
            else_=pick(self.otherwise),
        )


def _zero() -> ColumnElement[int]:
    return literal(0, BigInteger)


# -- the CSV ---------------------------------------------------------------------------------------


def csv_queries(queries: ReportQueries) -> tuple[Select[Any], Select[Any]]:
    """The report's rows as the CSV's cells (`projections.report.COLUMNS`), in the report's
    order, written by the database as `projections.formats.csv` writes a `Row`: times in RFC
    3339, ages in hours with one decimal, the payout's date; "" as NULL (PostgreSQL's CSV
    quotes an empty string, Python's does not). On SQLite a payment's PaymentIntents come
    unsorted (`_JoinedIds`)."""
    payment_rows = queries.payment_rows.order_by(None).subquery("payment_cells")
    orphan_rows = queries.orphan_rows.order_by(None).subquery("orphan_cells")
    return (
        select(*_cells(payment_rows.c)).order_by(_Bytewise(payment_rows.c.offline_id)),
        select(*_cells(orphan_rows.c)).order_by(
            orphan_rows.c.began.nulls_first(), _Bytewise(orphan_rows.c.stripe_key)
        ),
    )


def _cells(r: Any) -> list[ColumnElement[Any]]:
    # The tenths of an hour, rounded half up, as hours with one decimal: read once (a flattened
    # subquery computes its column wherever it is read), and exact (a tenth is a numeric
    # literal; SQLite's real prints the nearest one-decimal number).
    tenths = (r.age_seconds * 10 + 1800) // 3600
    age_hours = cast(func.round(tenths / literal_column("10.0"), 1), String)
    return [
        _blank(r.offline_id),
        _blank(r.location_id),
        _blank(r.device_id),
        r.amount,
        _blank(r.currency),
        _blank(r.category),
        _blank(r.ledger_status),
        _blank(r.ids),
        r.stripe_amount,
        _blank(r.stripe_currency),
        _blank(r.stripe_status),
        _Rfc3339(r.stored_at),
        _Rfc3339(r.forwarded_at),
        age_hours,
        r.amount_at_risk,
        r.refunded_amount,
        r.disputed_amount,
        _blank(r.dispute_status),
        r.settlement_amount,
        _blank(r.settlement_currency),
        r.stripe_fee,
        r.stripe_net,
        _blank(r.payout_id),
        func.substr(_Rfc3339(r.payout_at), 1, 10),  # the date
        _blank(r.breaches),
    ]


def _blank(text: ColumnElement[Any]) -> ColumnElement[Any]:
    return func.nullif(text, "")


# -- totals ----------------------------------------------------------------------------------------


def totals_query(queries: ReportQueries, moments: Moments) -> CompoundSelect[Any]:
    """Every total of the report in one statement, one line per (kind, group, currency):
    kind is summary, location, device, day, age, beyond (stored beyond policy), flagged or
    payout; the payout lines carry their own columns."""
    rows = union_all(
        queries.payment_rows.order_by(None), queries.orphan_rows.order_by(None)
    ).subquery("report_rows")
    r = rows.c
    row_amount = case((r.amount.is_not(None), r.amount), else_=func.coalesce(r.stripe_amount, 0))
    bucket = case(
        *(
            (r.began > literal(after, DateTime), _text(label))
            for label, after in moments.age_bounds
            if after is not None
        ),
        else_=_text(next(label for label, after in moments.age_bounds if after is None)),
    )
    # The day the sale was stored, else forwarded, else began (an orphan's or a sale canceled
    # before it was stored): every row has a day.
    day = cast(func.date(func.coalesce(r.stored_at, r.forwarded_at, r.began)), String)
    # Each row's groups as plain columns (PostgreSQL groups by columns, not by expressions
    # that hold parameters). A row without a time counts as age 0: the youngest bucket.
    facts = (
        select(
            r.category,
            func.coalesce(r.currency, r.stripe_currency, _text("")).label("currency"),
            func.coalesce(r.currency, _text("")).label("ledger_currency"),
            func.coalesce(r.location_id, _text("(unknown)")).label("location"),
            func.coalesce(r.device_id, _text("(unknown)")).label("device"),
            func.coalesce(day, _text("(unknown)")).label("day"),
            case((r.began.is_(None), _text(moments.age_bounds[0][0])), else_=bucket).label(
                "bucket"
            ),
            case((r.breaches != "", 1), else_=0).label("flagged"),
            case((and_(r.stored_at.is_not(None), r.amount.is_not(None)), 1), else_=0).label(
                "stored"
            ),
            r.amount,
            row_amount.label("row_amount"),
            case((r.category.in_([c.value for c in EXCEPTIONS]), 1), else_=0).label("exception"),
            case((r.category == Category.MATCHED.value, row_amount), else_=0).label("matched"),
            r.amount_at_risk,
        )
        .cte("report_facts")
        .prefix_with("MATERIALIZED")
    )
    f = facts.c

    def grouped(kind: str, group: ColumnElement[Any], *where: ColumnElement[bool]) -> Select[Any]:
        return (
            select(
                _text(kind).label("kind"),
                group.label("grouping"),
                f.currency,
                func.count().label("count"),
                _sum(f.row_amount).label("amount"),
                _sum(f.exception).label("exceptions"),
                _sum(f.matched).label("matched"),
                _sum(f.amount_at_risk).label("at_risk"),
            )
            .where(*where)
            .group_by(group, f.currency)
        )

    beyond = (
        select(
            _text("beyond").label("kind"),
            f.ledger_currency.label("grouping"),
            f.ledger_currency.label("currency"),
            func.count().label("count"),
            _sum(f.amount).label("amount"),
            _zero().label("exceptions"),
            _zero().label("matched"),
            _zero().label("at_risk"),
        )
        .where(f.flagged == 1, f.stored == 1)
        .group_by(f.ledger_currency)
    )
    return union_all(
        grouped("summary", f.category),
        grouped("location", f.location),
        grouped("device", f.device),
        grouped("day", f.day),
        grouped("age", f.bucket, f.amount_at_risk > 0),
        grouped("flagged", cast(f.flagged, String), f.flagged == 1),
        beyond,
    )


def payouts_query(queries: ReportQueries) -> Select[Any]:
    """Per payout and settlement currency, what the report's rows (their primary Stripe
    payment's movements) put in it: how many rows, gross, fees, refunds, disputes, net."""
    payment_rows = queries.payment_rows.order_by(None).subquery("payment_keys")
    orphan_rows = queries.orphan_rows.order_by(None).subquery("orphan_keys")
    rows = union_all(
        select(
            _text("p").label("kind"),
            payment_rows.c.offline_id.label("row_id"),
            payment_rows.c.stripe_key,
        ),
        select(
            _text("o").label("kind"),
            orphan_rows.c.stripe_key.label("row_id"),
            orphan_rows.c.stripe_key,
        ),
    ).subquery("report_keys")
    mv = queries.movements.c
    refund = mv.category.in_(sorted(REFUNDED))
    dispute = and_(mv.category.in_(sorted(DISPUTED)), not_(refund))
    fee = func.coalesce(mv.fee, 0)
    parts = (
        select(
            mv.payout_id,
            mv.currency,
            func.min(mv.payout_at).label("payout_at"),
            _sum(case((or_(refund, dispute), 0), else_=mv.gross)).label("gross"),
            _sum(fee).label("fees"),
            _sum(case((refund, mv.gross), else_=0)).label("refunds"),
            _sum(case((dispute, mv.gross), else_=0)).label("disputes"),
            _sum(func.coalesce(mv.net, mv.gross - fee)).label("net"),
        )
        .join_from(rows, queries.movements, mv.key == rows.c.stripe_key)
        .where(mv.payout_id.is_not(None))
        .group_by(rows.c.kind, rows.c.row_id, mv.payout_id, mv.currency)
        .subquery("parts")
    )
    return (
        select(
            parts.c.payout_id,
            parts.c.currency,
            func.min(parts.c.payout_at).label("payout_at"),
            func.count().label("payments"),
            *(
                _sum(parts.c[name]).label(name)
                for name in ("gross", "fees", "refunds", "disputes", "net")
            ),
        )
        .group_by(parts.c.payout_id, parts.c.currency)
        .order_by(parts.c.payout_id, parts.c.currency)
    )


def moments_of(
    now: datetime,
    stale_after: timedelta,
    capture_windows: Mapping[str, timedelta],
    capture_window_default: timedelta,
    capture_warning: timedelta,
    age_buckets: tuple[tuple[str, int | None], ...],
) -> Moments:
    return Moments(
        now=now,
        stale_from=now - stale_after,
        overdue_from={
            brand: now - window + capture_warning for brand, window in capture_windows.items()
        },
        overdue_default=now - capture_window_default + capture_warning,
        age_bounds=tuple(
            (label, None if hours is None else now - timedelta(hours=hours))
            for label, hours in age_buckets
        ),
    )
