"""The Stripe observations read model: per PaymentIntent (or charge), Stripe's latest word.

PaymentIntent snapshots (API, webhooks, JSON files) set its amounts and status; money
movements (report rows, webhook refunds and disputes) are kept once each in
`stripe_movements`, whichever stream and report type they came by; what links a charge, a
balance transaction, a refund or a dispute to its PaymentIntent goes to `stripe_links`; charge
and dispute snapshots to `stripe_charges` and `stripe_disputes`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from sqlalchemy import Connection, Table

from ledger.fields import StoredFields
from ledger.observations import movement_key
from ledger.stripe_object import StripeObject
from projections.runner import (
    EMPTY_READ_MODEL,
    Moment,
    SettlingProjection,
    load_rows,
    replace_rows,
    stored_moments,
)
from projections.stripe_fold import (
    BatchFold,
    SnapshotFold,
    discard,
    fold_all,
    fold_snapshot,
    swap_in,
)
from projections.tables import (
    stripe_charges,
    stripe_disputes,
    stripe_keys,
    stripe_links,
    stripe_movements,
    stripe_objects,
    stripe_payments,
)

# Stripe's reporting categories for money collected from a customer, and given back.
CHARGE_CATEGORIES = frozenset({"charge", "payment"})
REFUND_CATEGORIES = frozenset(
    {"refund", "payment_refund", "charge_failure", "refund_failure", "dispute", "dispute_reversal"}
)
_MOVEMENT_FIELDS = (
    "balance_transaction_id",
    "payment_intent_id",
    "charge_id",
    "source_id",
    "offline_id",
    "currency",
    "gross",
    "fee",
    "net",
    "customer_facing_amount",
    "customer_facing_currency",
    "payout_id",
)
# A PaymentIntent's or a charge's row when first seen, before its stream id and key.
_NEW_OBJECT: dict[str, Any] = {
    **dict.fromkeys(column.name for column in stripe_objects.columns),
    "charged_gross": 0,
    "refunded_gross": 0,
    "balance_transactions": 0,
}


class StripeObservationsProjection(SettlingProjection):
    name = "stripe_observations"
    topics = (
        StripeObject.FirstSeen.TOPIC,
        StripeObject.PaymentIntentObserved.TOPIC,
        StripeObject.BalanceTransactionObserved.TOPIC,
    )
    tables = (
        stripe_objects,
        stripe_links,
        stripe_movements,
        stripe_charges,
        stripe_disputes,
        stripe_keys,
        stripe_payments,
    )

    def apply(self, conn: Connection, events: Sequence[StoredFields]) -> None:
        built = _build(conn, _loader(conn, None), events, folding=True)
        assert built.named is not None
        # Every id the batch may move a Stripe payment by: the keys they resolve to before
        # and after its writes are folded again (`projections.stripe_fold`).
        fold = BatchFold(conn, built.named)
        fold.moved(built.batch.first_links())
        built.write(conn)
        fold.finish()

    def build_unsettled(
        self, conn: Connection, events: Sequence[StoredFields], before: object | None
    ) -> _Built:
        """The observations' rows of the batch: `stripe_keys` and `stripe_payments` are left
        as they were, for `settle`."""
        assert before is None or before is EMPTY_READ_MODEL or isinstance(before, _Built)
        return _build(conn, _loader(conn, before), events, folding=False)

    def write_built(self, conn: Connection, built: object) -> None:
        assert isinstance(built, _Built), built
        built.write(conn)

    def settle(self, conn: Connection) -> None:
        """Fold every Stripe payment at once, as a rebuild would."""
        fold_all(conn)

    def prepare(self, conn: Connection) -> SnapshotFold:
        """`fold_all`'s rows made from what `conn` reads, in its temporary tables."""
        return fold_snapshot(conn)

    def settle_prepared(self, conn: Connection, prepared: object) -> None:
        assert isinstance(prepared, SnapshotFold), prepared
        swap_in(conn, prepared)

    def discard(self, conn: Connection, prepared: object) -> None:
        assert isinstance(prepared, SnapshotFold), prepared
        discard(conn, prepared)


# The rows of `table` whose `key` column is in `ids`, by that key (`runner.load_rows`).
_Loader = Callable[[Table, str, Iterable[str]], dict[str, dict[str, Any]]]


def _loader(conn: Connection, before: object | None) -> _Loader:
    """The tables' rows as `conn` reads them, and, for those the batch `before` wrote, as
    it wrote them (copies: it may be writing them still). Read so while that batch is not
    yet committed, or after: either way what its rows did not replace is as it was. None
    from tables known to be empty (`EMPTY_READ_MODEL`)."""
    if before is None:
        return partial(load_rows, conn)
    if before is EMPTY_READ_MODEL:
        return _none
    assert isinstance(before, _Built), before
    written = before.written()

    def load(table: Table, key: str, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        known = written[table.name]
        found = {i: dict(known[i]) for i in ids if i in known}
        found.update(load_rows(conn, table, key, [i for i in ids if i not in known]))
        return found

    return load


def _none(table: Table, key: str, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """No row (`_loader` of an empty read model)."""
    return {}


def _build(
    conn: Connection, load: _Loader, events: Sequence[StoredFields], *, folding: bool
) -> _Built:
    """The batch's rows, made from those `load` gives; with the ids a fold needs
    (`folding`), noted before the batch changed its rows."""
    first_seen, observed = (
        StripeObject.FirstSeen.TOPIC,
        StripeObject.PaymentIntentObserved.TOPIC,
    )
    # A stream first seen in the batch has no row before it (its FirstSeen is its first
    # event): only the other streams' rows are read. In a long catch-up most streams begin
    # in the batch that observes them, each id looked up for nothing.
    streams = {stream for _, stream, _, _ in events}
    streams.difference_update(stream for _, stream, topic, _ in events if topic == first_seen)
    rows = load(stripe_objects, "stream_id", streams)
    batch = _Batch(load, stored_moments(conn), events)
    existing = list(rows)
    named = _named([*rows.values(), *batch.loaded(), *_observed(events)]) if folding else None
    time, link, movement = batch.time, batch.link, batch.movement
    for _, stream, topic, fields in events:
        if topic == first_seen:
            rows[stream] = {**_NEW_OBJECT, "stream_id": stream, "key": fields["key"]}
        elif topic == observed:
            seen = fields["observation"]
            kind = seen.get("kind", "payment_intent")
            if kind == "payment_intent":
                _payment_intent(rows[stream], seen, time)
                pi = seen["payment_intent_id"]
                for related in seen.get("related_ids", ()):
                    link(related, pi)
                if seen["charge_id"] is not None:
                    link(seen["charge_id"], pi)
            elif kind == "charge":
                batch.charge(seen)
            else:
                batch.dispute(seen)
        else:
            assert topic == StripeObject.BalanceTransactionObserved.TOPIC, topic
            seen = fields["observation"]
            if movement(seen):
                _balance_transaction(rows[stream], seen, time)
    return _Built(rows, existing, batch, named)


@dataclass(frozen=True)
class _Built:
    """A batch's rows of the observations' tables, made and not yet written."""

    objects: dict[str, dict[str, Any]]
    existing: list[str]  # the objects' rows that were there before the batch
    batch: _Batch
    named: set[str] | None  # the ids the batch names, for its fold

    def write(self, conn: Connection) -> None:
        objects = list(self.objects.values())
        replace_rows(conn, stripe_objects, "stream_id", self.existing, objects, typed=True)
        self.batch.write(conn)

    def written(self) -> dict[str, dict[str, dict[str, Any]]]:
        """The rows `write` writes, by table name and key."""
        return {stripe_objects.name: self.objects, **self.batch.tables()}


# The fields of an observation or a row that name a Stripe object.
_ID_FIELDS = (
    "key",
    "payment_intent_id",
    "charge_id",
    "source_id",
    "balance_transaction_id",
    "dispute_id",
    "object_id",
    "target_id",
)


def _named(found: Iterable[dict[str, Any]], names: Sequence[str] = _ID_FIELDS) -> set[str]:
    """The ids observations or rows name in `names` (a PaymentIntent's related ids too)."""
    named: set[Any] = set()
    for fields in found:
        # Every field's value, absent ones too, dropped at the end: a test per value cost
        # more than the ids themselves.
        named.update(map(fields.get, names))
        named.update(fields.get("related_ids", ()))
    return {value for value in named if isinstance(value, str)}


def _snapshots(seen: Sequence[dict[str, Any]], kind: str) -> set[str]:
    """The ids of the charges or disputes (`kind`) the observations are snapshots of."""
    return {o[f"{kind}_id"] for o in seen if o.get("kind") == kind}


def _observed(events: Sequence[StoredFields]) -> Iterator[dict[str, Any]]:
    for _, _, _, fields in events:
        yield fields.get("observation") or fields


class _Batch:
    """The link, movement, charge and dispute rows a batch touches, loaded once, written
    once."""

    def __init__(self, load: _Loader, moment: Moment, events: Sequence[StoredFields]) -> None:
        self.time = _time(moment)
        seen = [fields["observation"] for _, _, _, fields in events if "observation" in fields]
        ids = _named(seen, ("charge_id", "source_id", "balance_transaction_id", "dispute_id"))
        keys = {movement_key(o) for o in seen if o.get("kind") == "balance_transaction"}
        self.links = load(stripe_links, "object_id", ids)
        self.movements = load(stripe_movements, "movement_key", keys)
        # A charge's and a dispute's rows change only by their own snapshots: only those the
        # batch observes are loaded (and written again), not one per id it names.
        self.charges = load(stripe_charges, "charge_id", _snapshots(seen, "charge"))
        self.disputes = load(stripe_disputes, "dispute_id", _snapshots(seen, "dispute"))
        self.linked = set(self.links)
        self.existing = {
            "links": list(self.links),
            "movements": list(self.movements),
            "charges": list(self.charges),
            "disputes": list(self.disputes),
        }

    def loaded(self) -> Iterator[dict[str, Any]]:
        """The rows as they were before the batch."""
        for rows in (self.links, self.movements, self.charges, self.disputes):
            yield from rows.values()

    def first_links(self) -> set[str]:
        """The objects the batch links for the first time."""
        return {object_id for object_id in self.links if object_id not in self.linked}

    def link(self, object_id: str | None, target: str | None) -> None:
        """Tie an object to its PaymentIntent; a charge is kept only until one is known."""
        if object_id is None or target is None or object_id == target:
            return
        known = self.links.get(object_id)
        if known is None or not known["target_id"].startswith("pi_"):
            self.links[object_id] = {"object_id": object_id, "target_id": target}

    def movement(self, seen: dict[str, Any]) -> bool:
        """Keep a movement once; True when it is new (not only completed)."""
        key = movement_key(seen)
        pi, charge, source = seen["payment_intent_id"], seen["charge_id"], seen["source_id"]
        owner = pi or charge  # a charge named with its PaymentIntent is tied to it here
        if owner is not None:
            self.link(charge, owner)
            if source != charge:  # a charge's own movement names it twice
                self.link(source, owner)
            self.link(seen["balance_transaction_id"], owner)
        row = self.movements.get(key)
        if row is not None:
            self._complete(row, seen)
            return False
        # A new row takes every field as observed: no test per column of what it held.
        get, time = seen.get, self.time
        offline_id = get("offline_id")
        self.movements[key] = {
            "movement_key": key,
            "balance_transaction_id": seen["balance_transaction_id"],
            "payment_intent_id": pi,
            "charge_id": charge,
            "source_id": source,
            "offline_id": None if offline_id is None else offline_id.lower(),
            "currency": get("currency"),
            "gross": get("gross"),
            "fee": get("fee"),
            "net": get("net"),
            "category": seen["reporting_category"],
            "created_at": time(get("created_at")),
            "customer_facing_amount": get("customer_facing_amount"),
            "customer_facing_currency": get("customer_facing_currency"),
            "payout_id": get("payout_id"),
            "payout_at": time(get("payout_at")),
        }
        return True

    def _complete(self, row: dict[str, Any], seen: dict[str, Any]) -> None:
        """A movement seen again (another report type, a webhook and a report): what the
        row lacks, and a balance transaction's own id over a refund's or a dispute's."""
        for name in _MOVEMENT_FIELDS:
            value = seen.get(name)
            if value is not None and (
                row[name] is None or (name == "balance_transaction_id" and value.startswith("txn_"))
            ):
                row[name] = value.lower() if name == "offline_id" else value
        if row["category"] is None:
            row["category"] = seen["reporting_category"]
        for name in ("created_at", "payout_at"):
            if row[name] is None and seen.get(name) is not None:
                row[name] = self.time(seen[name])

    def charge(self, seen: dict[str, Any]) -> None:
        self.link(seen["charge_id"], seen["payment_intent_id"])
        as_of = self.time(seen["as_of"])
        row = self.charges.get(seen["charge_id"])
        if row is None or row["amount_refunded"] < seen["amount_refunded"]:
            self.charges[seen["charge_id"]] = {
                "charge_id": seen["charge_id"],
                "payment_intent_id": seen["payment_intent_id"],
                "currency": seen["currency"],
                "amount_refunded": seen["amount_refunded"],  # cumulative: it only grows
                "observed_at": as_of,
            }

    def dispute(self, seen: dict[str, Any]) -> None:
        self.link(seen["dispute_id"], seen["payment_intent_id"] or seen["charge_id"])
        self.link(seen["charge_id"], seen["payment_intent_id"])
        as_of = self.time(seen["as_of"])
        row = self.disputes.get(seen["dispute_id"])
        if row is None or row["observed_at"] is None or (as_of and as_of >= row["observed_at"]):
            self.disputes[seen["dispute_id"]] = {
                "dispute_id": seen["dispute_id"],
                "charge_id": seen["charge_id"],
                "payment_intent_id": seen["payment_intent_id"],
                "currency": seen["currency"],
                "amount": seen["amount"],
                "status": seen["status"],
                "observed_at": as_of,
            }

    def write(self, conn: Connection) -> None:
        for name, table, key, rows in (
            ("links", stripe_links, "object_id", self.links),
            ("movements", stripe_movements, "movement_key", self.movements),
            ("charges", stripe_charges, "charge_id", self.charges),
            ("disputes", stripe_disputes, "dispute_id", self.disputes),
        ):
            replace_rows(conn, table, key, self.existing[name], list(rows.values()), typed=True)

    def tables(self) -> dict[str, dict[str, dict[str, Any]]]:
        """The rows `write` writes, by table name and key."""
        return {
            stripe_links.name: self.links,
            stripe_movements.name: self.movements,
            stripe_charges.name: self.charges,
            stripe_disputes.name: self.disputes,
        }


def _payment_intent(row: dict[str, Any], seen: dict[str, Any], time: _Time) -> None:
    as_of = time(seen.get("as_of"))  # absent before observations carried it
    # Webhooks arrive out of order: a snapshot older than the one shown keeps only what it
    # adds (an offline_id, a charge), never its status or amounts.
    newer = as_of is None or row["observed_at"] is None or as_of >= row["observed_at"]
    if newer:
        row.update(
            payment_intent_id=seen["payment_intent_id"],
            amount=seen["amount"],
            amount_received=seen["amount_received"],
            amount_capturable=seen["amount_capturable"],
            currency=seen["currency"],
            status=seen["status"],
            decline_code=seen["decline_code"],
            observed_at=as_of or row["observed_at"],
        )
    if seen["offline_id"] is not None:
        row["offline_id"] = seen["offline_id"].lower()
    for name in ("charge_id", "offline_collected", "card_brand"):
        if seen[name] is not None:
            row[name] = seen[name]
    if seen["created_at"] is not None:
        row["created_at"] = time(seen["created_at"])


_Time = Callable[[str | None], Any]


def _time(moment: Moment) -> _Time:
    """A moment's ISO text as the tables store it (`runner.stored_moments`), None kept."""

    def stored(text: str | None) -> Any:
        return None if text is None else moment(text)

    return stored


def _balance_transaction(row: dict[str, Any], seen: dict[str, Any], time: _Time) -> None:
    row["balance_transactions"] += 1
    category = seen["reporting_category"]
    if category in REFUND_CATEGORIES or (category is None and seen["gross"] < 0):
        row["refunded_gross"] += seen["gross"]
    elif category in CHARGE_CATEGORIES or category is None:
        row["charged_gross"] += seen["gross"]
    if row["offline_id"] is None and seen["offline_id"] is not None:
        row["offline_id"] = seen["offline_id"].lower()
    for name in ("payment_intent_id", "charge_id", "currency"):
        if row[name] is None and seen[name] is not None:
            row[name] = seen[name]
    if row["created_at"] is None and seen["created_at"] is not None:
        row["created_at"] = time(seen["created_at"])
