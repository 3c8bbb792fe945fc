"""The read models' tables (SQLAlchemy Core), on the same database as the event store.

Times are stored as naive UTC (SQLite has no time zone type); `projections` converts at the
edges. Amounts are integers in minor units. Each projection's position in the event log lives in
`projection_positions`, written in the same transaction as its rows.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    false,
    text,
)

metadata = MetaData()


def stripe_id(length: int = 255) -> String:
    """A Stripe id's column (or a key made of one, a stream's id beside them): on PostgreSQL
    in collation "C". The database's own (C.UTF-8 here) orders ids the same way, code point
    by code point, but PostgreSQL compares under it through `strcoll`, with no `memcmp` fast
    path and no abbreviated keys in its sorts: about a sixth of the writing backend's CPU in
    a catch-up of Stripe's observations (a profile) went into comparing ids in their
    indexes, sorts and joins.
    SQLite's default collation (BINARY) already compares bytes (migration 0018)."""
    return String(length).with_variant(String(length, collation="C"), "postgresql")


def naive_utc(moment: datetime) -> datetime:
    """An aware time as the tables store it."""
    return moment.astimezone(UTC).replace(tzinfo=None)


projection_positions = Table(
    "projection_positions",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("position", BigInteger, nullable=False),  # last notification id applied
    # Its batches up to `position` left their step over the whole read model to the end of
    # the catch-up (`runner.SettlingProjection`): its tables are not to be read until then.
    Column("unsettled", Boolean, nullable=False, default=False, server_default=false()),
    # How many times its read model was emptied (`runner.reset`, an audit's swap): the same
    # position in another generation is another read model.
    Column("generation", BigInteger, nullable=False, default=0, server_default=text("0")),
)

# One row per offline_id: the payment's current state and key timestamps.
payments = Table(
    "payments",
    metadata,
    Column("stream_id", String(32), primary_key=True),  # uuid hex of the payment's stream
    Column("offline_id", String(36), nullable=False, unique=True),
    Column("location_id", String(255), nullable=False),
    Column("device_id", String(255), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("capture_method", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("card_brand", String(64)),
    Column("payment_intent_id", String(255)),
    Column("duplicate_payment_intent_ids", String(2048), nullable=False, default=""),  # ";"
    Column("duplicate_refund_amount", BigInteger, nullable=False, default=0),
    Column("stripe_status", String(64)),
    Column("decline_code", String(128)),
    Column("amount_captured", BigInteger, nullable=False, default=0),
    Column("created_at", DateTime, nullable=False),
    Column("stored_at", DateTime),
    Column("forwarded_at", DateTime),
    Column("declined_at", DateTime),
    Column("captured_at", DateTime),
    Column("canceled_at", DateTime),
    # The codes of the rules its facts broke, sorted, ";"-joined ("" when none).
    Column("breaches", String(1024), nullable=False, default=""),
    Column("reported_late", Boolean, nullable=False, default=False),
    Index("payments_location_idx", "location_id"),
    Index("payments_payment_intent_idx", "payment_intent_id"),
)

# Which payment each PaymentIntent the ledger recorded belongs to (forwarded, declined,
# duplicate): the ledger's side of the match with Stripe.
payment_intent_links = Table(
    "payment_intent_links",
    metadata,
    Column("payment_intent_id", String(255), primary_key=True),
    Column("offline_id", String(36), primary_key=True),
)

# Offline status: one row per stored payment (confirmed offline, not yet released); totals per
# location, device and currency are sums over it.
offline_stored = Table(
    "offline_stored",
    metadata,
    Column("offline_id", String(36), primary_key=True),
    Column("location_id", String(255), nullable=False),
    Column("device_id", String(255), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("stored_at", DateTime, nullable=False),
    Index("offline_stored_location_idx", "location_id", "device_id", "currency"),
)

# The location streams' ids, so location events (which carry no location_id) can be placed.
offline_locations = Table(
    "offline_locations",
    metadata,
    Column("stream_id", String(32), primary_key=True),
    Column("location_id", String(255), nullable=False),
)

# Every sale attempt of a location (what `what-if` replays): a sale it stored offline, as its
# stream recorded it, or a reservation it refused; moments in whole microseconds since the
# epoch (UTC), the codes it was finally recorded with (";"-joined), its order of arrival.
# Kept in the order `what-if` reads them, (location, arrival): on SQLite without a rowid, so
# reading a location's rows in order is one range of the table, not a lookup per row.
offline_sales = Table(
    "offline_sales",
    metadata,
    Column("offline_id", String(36), nullable=False),
    Column("location_id", String(255), primary_key=True),
    Column("arrival", BigInteger, primary_key=True),
    # The device and currency as their index in the location's `devices` and `currencies`
    # (offline_sale_locations), how it was released as its index in `what_if.RELEASES`:
    # `what-if` reads every row, and a small integer is read and compared for less than a
    # string.
    Column("device", Integer, nullable=False),
    Column("currency", Integer, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("stored_us", BigInteger, nullable=False),
    Column("breaches", String(1024), nullable=False),
    Column("released_us", BigInteger),
    Column("released_as", Integer),
    # Of a reservation refused (never stored: the sale went online), what it saw used, ";"-
    # joined: the location's stored amount and count, the device's ("" where no limit was
    # set). NULL for a sale stored. One column, not four: `what-if` reads every row.
    Column("seen", String(96)),
    Index("offline_sales_offline_idx", "offline_id", unique=True),
    sqlite_with_rowid=False,
)

# Each location's configurations (JSON: [moment in microseconds, configuration], in the
# order they were recorded), how many sales it stored so far, and the devices and currencies
# its sales name (JSON lists, in the order first met: a sale's codes index them).
offline_sale_locations = Table(
    "offline_sale_locations",
    metadata,
    Column("stream_id", String(32), primary_key=True),
    Column("location_id", String(255), nullable=False, unique=True),
    Column("configured_us", BigInteger, nullable=False),
    Column("configs", Text, nullable=False),
    Column("sales", BigInteger, nullable=False),
    Column("devices", Text, nullable=False),
    Column("currencies", Text, nullable=False),
)

# Stripe observations: one row per PaymentIntent (or charge), Stripe's latest word on it.
stripe_objects = Table(
    "stripe_objects",
    metadata,
    Column("stream_id", stripe_id(32), primary_key=True),
    Column("key", stripe_id(), nullable=False, unique=True),  # pi_... or ch_...
    Column("payment_intent_id", stripe_id()),
    Column("charge_id", stripe_id()),
    Column("offline_id", String(255)),  # metadata.offline_id, lowercased (UUIDs are matched so)
    Column("amount", BigInteger),  # the PaymentIntent's amount (API/JSON)
    Column("amount_received", BigInteger),
    Column("amount_capturable", BigInteger),
    Column("currency", String(3)),
    Column("status", String(64)),  # the PaymentIntent's status (API/JSON)
    Column("offline_collected", Boolean),
    Column("card_brand", String(64)),
    Column("decline_code", String(128)),
    Column("created_at", DateTime),
    Column("observed_at", DateTime),  # as of when Stripe showed the status and amounts
    Column("charged_gross", BigInteger, nullable=False, default=0),  # report rows: charges
    Column("refunded_gross", BigInteger, nullable=False, default=0),  # refunds (negative)
    Column("balance_transactions", BigInteger, nullable=False, default=0),
    Index("stripe_objects_offline_idx", "offline_id"),
    Index("stripe_objects_payment_intent_idx", "payment_intent_id"),
)

# Which PaymentIntent (or charge) a Stripe object belongs to: a charge (`ch_`, `py_`), a
# balance transaction (`txn_`), a refund (`re_`) or a dispute (`dp_`), learnt from any source
# (an expanded PaymentIntent, a report row naming both, a webhook's refund or dispute). A report
# row that names only a charge or a balance transaction is matched through it.
stripe_links = Table(
    "stripe_links",
    metadata,
    Column("object_id", stripe_id(), primary_key=True),
    Column("target_id", stripe_id(), nullable=False),  # pi_..., else the charge's ch_...
    # The objects that link to an id: what a new link moves from one Stripe payment to another.
    Index("stripe_links_target_idx", "target_id"),
)

# Every money movement once (report rows of any type, webhook refunds and disputes), keyed by
# `ledger.observations.movement_key`: the same balance transaction from two report types, or a
# refund from a webhook and a report, is one row, completed by each sighting.
stripe_movements = Table(
    "stripe_movements",
    metadata,
    Column("movement_key", stripe_id(), primary_key=True),
    Column("balance_transaction_id", stripe_id(), nullable=False),
    Column("payment_intent_id", stripe_id()),
    Column("charge_id", stripe_id()),
    Column("source_id", stripe_id()),
    Column("offline_id", String(255)),
    Column("currency", String(3), nullable=False),
    Column("gross", BigInteger, nullable=False),
    Column("fee", BigInteger),
    Column("net", BigInteger),
    Column("category", String(64)),
    Column("created_at", DateTime),
    Column("customer_facing_amount", BigInteger),
    Column("customer_facing_currency", String(3)),
    Column("payout_id", String(255)),
    Column("payout_at", DateTime),
    # A Stripe payment's movements, by each id that may name it (`projections.stripe_fold`).
    Index("stripe_movements_payment_intent_idx", "payment_intent_id"),
    Index("stripe_movements_charge_idx", "charge_id"),
    Index("stripe_movements_source_idx", "source_id"),
    Index("stripe_movements_balance_transaction_idx", "balance_transaction_id"),
)

# Charges as `charge.*` webhooks showed them: the cumulative amount refunded (the latest).
stripe_charges = Table(
    "stripe_charges",
    metadata,
    Column("charge_id", stripe_id(), primary_key=True),
    Column("payment_intent_id", stripe_id()),
    Column("currency", String(3), nullable=False),
    Column("amount_refunded", BigInteger, nullable=False),
    Column("observed_at", DateTime),
    Index("stripe_charges_payment_intent_idx", "payment_intent_id"),
)

# Disputes as `charge.dispute.*` webhooks showed them: the latest status.
stripe_disputes = Table(
    "stripe_disputes",
    metadata,
    Column("dispute_id", stripe_id(), primary_key=True),
    Column("charge_id", stripe_id(), nullable=False),
    Column("payment_intent_id", stripe_id()),
    Column("currency", String(3), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("status", String(64), nullable=False),
    Column("observed_at", DateTime),
    Index("stripe_disputes_payment_intent_idx", "payment_intent_id"),
    Index("stripe_disputes_charge_idx", "charge_id"),
)

# Each linked object's Stripe payment (its *key*): its link in `stripe_links` followed while it
# names no PaymentIntent (`projections.stripe_fold.LINK_HOPS` hops at most).
stripe_keys = Table(
    "stripe_keys",
    metadata,
    Column("object_id", stripe_id(), primary_key=True),
    Column("key", stripe_id(), nullable=False),
)

# Stripe's side folded per Stripe payment (its key: the PaymentIntent, else the charge or the
# id no link resolves): its snapshot, refunds, disputes, settlement, fees and payout, as the
# report reads them (`projections.stripe_fold`), kept up to date batch by batch with the
# observations it is folded from.
stripe_payments = Table(
    "stripe_payments",
    metadata,
    Column("key", stripe_id(), primary_key=True),
    Column("offline_id", String(255)),
    Column("offline_collected", Boolean),
    Column("created_at", DateTime),
    Column("card_brand", String(64)),
    Column("currency", String(3)),
    Column("status", String(64)),
    Column("amount", BigInteger),
    Column("declined", Boolean),
    Column("refunded", BigInteger),
    Column("disputed", BigInteger),
    Column("dispute_status", String(64)),
    Column("settled", BigInteger),
    Column("settled_currency", String(3)),
    Column("fees", BigInteger),
    Column("net", BigInteger),
    Column("payout_id", String(255)),
    Column("payout_at", DateTime),
    Index("stripe_payments_offline_idx", "offline_id"),
)
