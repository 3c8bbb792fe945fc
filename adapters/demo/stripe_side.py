"""Stripe's side of the simulated day, written as Stripe gives it: the itemized payout
reconciliation report (CSV), the PaymentIntents that moved no money and the disputes (JSON)."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from adapters.demo.merchant import NEW_YORK, STORES, Record, Sale, Store
from adapters.demo.scenario import TradingDay
from adapters.trading_day import random_offline_id
from ledger.money import exponent

REPORT_COLUMNS = (
    "balance_transaction_id",
    "created_utc",
    "available_on_utc",
    "currency",
    "gross",
    "fee",
    "net",
    "reporting_category",
    "source_id",
    "description",
    "payment_intent_id",
    "charge_id",
    "payment_metadata[offline_id]",
    "customer_facing_amount",
    "customer_facing_currency",
    "automatic_payout_id",
    "automatic_payout_effective_at_utc",
)
# A converted settlement: Canadian dollars paid out in US dollars, at this rate (per million).
CAD_TO_USD_PER_MILLION = 731_400
DISPUTE_FEE = {"usd": 1500, "cad": 1500, "eur": 1500, "jpy": 2000}


def write_balance_report(path: Path, day: TradingDay, sales: list[Sale]) -> int:
    """The itemized payout reconciliation report of the period as Stripe's Dashboard exports
    it, with the optional columns the ledger reads: every charge (online sales and forwarded
    offline payments), refunds, disputes (one won back), a partial capture (its charge and
    the reversal of the uncaptured part), a settlement converted to USD, the payout each
    movement landed in, and a charge for a sale the ledger never heard of; one forwarded
    payment is missing from it."""
    rng = day.rng
    rows: list[tuple[datetime, str, list[str]]] = []
    payouts: dict[tuple[str, datetime], str] = {}
    converted = {s.offline_id for s in sales if s.role == "converted"}

    def add(
        when: datetime,
        store: Store,
        gross: int,
        payment_intent_id: str,
        offline_id: str,
        category: str = "charge",
        source_id: str | None = None,
        fee: int | None = None,
    ) -> None:
        currency = store.currency
        customer_facing = gross
        if category == "charge" and fee is None:
            fee = (gross * store.fee_basis_points + 5_000) // 10_000 + store.fee_fixed
        fee = fee or 0
        if offline_id in converted:
            currency = "usd"
            gross = (gross * CAD_TO_USD_PER_MILLION + 500_000) // 1_000_000
            fee = (fee * CAD_TO_USD_PER_MILLION + 500_000) // 1_000_000
        txn = day.unique_id("txn_3Q")
        utc = when.astimezone(UTC)
        available = (utc + timedelta(days=2)).replace(hour=0, minute=0, second=0)
        payout = payouts.setdefault((currency, available), day.unique_id("po_1Q"))
        charge_id = "ch_" + payment_intent_id.removeprefix("pi_")
        description = {"charge": "Terminal payment", "refund": "Refund"}.get(
            category, f"Chargeback for {charge_id}" if category.startswith("dispute") else ""
        )
        rows.append(
            (
                utc,
                txn,
                [
                    txn,
                    _stripe_time(utc),
                    _stripe_time(available),
                    currency,
                    _major(gross, currency),
                    _major(fee, currency),
                    _major(gross - fee, currency),
                    category,
                    source_id or charge_id,
                    description,
                    payment_intent_id,
                    charge_id,
                    offline_id,
                    _major(customer_facing, store.currency),
                    store.currency,
                    payout,
                    _stripe_time(available),
                ],
            )
        )

    for sale in sales:
        if not sale.offline:
            payment_intent_id, _ = day.payment_intent_ids()
            add(
                sale.created_at + timedelta(seconds=rng.randint(15, 40)),
                sale.store,
                sale.amount,
                payment_intent_id,
                "",
            )
            continue
        if sale.payment_intent_id is None or sale.role in ("missing", "declined"):
            continue
        assert sale.forwarded_at is not None
        if sale.manual:
            if sale.captured_at is not None and sale.amount_captured is not None:
                # Stripe books the whole authorization, then reverses what was not captured.
                add(
                    sale.captured_at,
                    sale.store,
                    sale.amount,
                    sale.payment_intent_id,
                    sale.offline_id,
                )
                if sale.amount_captured < sale.amount:
                    add(
                        sale.captured_at,
                        sale.store,
                        sale.amount_captured - sale.amount,
                        sale.payment_intent_id,
                        sale.offline_id,
                        "partial_capture_reversal",
                        fee=0,
                    )
            continue
        add(
            sale.forwarded_at,
            sale.store,
            sale.stripe_amount,
            sale.payment_intent_id,
            sale.offline_id,
        )
        if sale.duplicate_payment_intent_id is not None and sale.duplicate_at is not None:
            add(
                sale.duplicate_at,
                sale.store,
                sale.amount,
                sale.duplicate_payment_intent_id,
                sale.offline_id,
            )
        if sale.refunded_at is not None and sale.refund_amount is not None:
            add(
                sale.refunded_at,
                sale.store,
                -sale.refund_amount,
                sale.payment_intent_id,
                sale.offline_id,
                "refund",
                day.unique_id("re_3Q"),
            )
        if sale.disputed_at is not None:
            dispute_id = _dispute_id(sale)
            fee = DISPUTE_FEE.get(sale.store.currency, 1500)
            add(
                sale.disputed_at,
                sale.store,
                -sale.amount,
                sale.payment_intent_id,
                sale.offline_id,
                "dispute",
                dispute_id,
                fee=fee,
            )
            if sale.role == "dispute_won":
                add(
                    sale.disputed_at + timedelta(days=1),
                    sale.store,
                    sale.amount,
                    sale.payment_intent_id,
                    sale.offline_id,
                    "dispute_reversal",
                    dispute_id,
                    fee=-fee,
                )
    # A payment collected offline on a reader the POS was never told about (brought over
    # from another shop): Stripe has it, the ledger does not.
    payment_intent_id, _ = day.payment_intent_ids()
    orphan_id = random_offline_id(rng)
    add(
        NEW_YORK.at(NEW_YORK.outage[1] + 0.25),
        NEW_YORK,
        rng.randint(20, 90) * 100 + 99,
        payment_intent_id,
        orphan_id,
    )
    # Each currency's payout of an earlier balance: rows about no payment, skipped on import.
    when = datetime(2026, 11, 21, 0, 0, tzinfo=UTC)
    for store in STORES:
        total = -sum(s.amount for s in sales if s.store is store) // 2
        txn = day.unique_id("txn_1Q")
        payout = day.unique_id("po_1Q")
        rows.append(
            (
                when,
                txn,
                [
                    txn,
                    _stripe_time(when),
                    _stripe_time(when),
                    store.currency,
                    _major(total, store.currency),
                    _major(0, store.currency),
                    _major(total, store.currency),
                    "payout",
                    payout,
                    "STRIPE PAYOUT",
                    "",
                    "",
                    "",
                    "",
                    "",
                    payout,
                    _stripe_time(when),
                ],
            )
        )
    rows.sort(key=lambda row: (row[0], row[1]))
    with path.open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(REPORT_COLUMNS)
        writer.writerows(row for _, _, row in rows)
    return len(rows)


def _dispute_id(sale: Sale) -> str:
    """The sale's dispute, as Stripe names it (derived from its PaymentIntent's suffix)."""
    assert sale.payment_intent_id is not None
    return "dp_1Q" + sale.payment_intent_id.removeprefix("pi_3Q")


def write_disputes(path: Path, sales: list[Sale]) -> int:
    """The disputes as GET /v1/disputes lists them (component `dispute` of Stripe's OpenAPI
    spec): their status tells an open dispute from a lost one, which the report cannot."""
    status = {"dispute_open": "needs_response", "dispute_lost": "lost", "dispute_won": "won"}
    data: list[Record] = [
        {
            "id": _dispute_id(sale),
            "object": "dispute",
            "amount": sale.amount,
            "charge": sale.charge_id,
            "created": _unix(sale.disputed_at),
            "currency": sale.store.currency,
            "livemode": False,
            "metadata": {},
            "payment_intent": sale.payment_intent_id,
            "reason": "fraudulent",
            "status": status[sale.role],
        }
        for sale in sales
        if sale.disputed_at is not None
    ]
    page = {"object": "list", "url": "/v1/disputes", "has_more": False, "data": data}
    path.write_text(json.dumps(page, indent=2) + "\n", encoding="utf-8")
    return len(data)


def write_payment_intents(path: Path, sales: list[Sale]) -> int:
    """The PaymentIntents that moved no money, as GET /v1/payment_intents lists them:
    authorizations awaiting capture, declined payments and voided authorizations (a balance
    report only holds money that moved)."""
    found: list[tuple[datetime, str, Record]] = []
    for sale in sales:
        if sale.payment_intent_id is None or sale.forwarded_at is None:
            continue
        if sale.role == "declined":
            status = "requires_payment_method"
        elif sale.manual and sale.voided_at is not None:
            status = "canceled"
        elif sale.manual and sale.captured_at is None:
            status = "requires_capture"
        else:
            continue
        found.append((sale.forwarded_at, sale.payment_intent_id, _payment_intent(sale, status)))
    found.sort(key=lambda item: (item[0], item[1]))
    page = {
        "object": "list",
        "url": "/v1/payment_intents",
        "has_more": False,
        "data": [item for _, _, item in found],
    }
    path.write_text(json.dumps(page, indent=2) + "\n", encoding="utf-8")
    return len(found)


def _payment_intent(sale: Sale, status: str) -> Record:
    assert sale.payment_intent_id is not None and sale.charge_id is not None
    assert sale.forwarded_at is not None and sale.confirmed_at is not None
    card = sale.card
    return {
        "id": sale.payment_intent_id,
        "object": "payment_intent",
        "amount": sale.amount,
        "amount_capturable": sale.amount if status == "requires_capture" else 0,
        "amount_received": 0,
        "capture_method": "manual" if sale.manual else "automatic",
        "currency": sale.store.currency,
        "created": _unix(sale.forwarded_at),
        "canceled_at": _unix(sale.voided_at) if sale.voided_at is not None else None,
        "livemode": False,
        "metadata": {"offline_id": sale.offline_id},
        "status": status,
        "last_payment_error": None
        if sale.decline_code is None
        else {"type": "card_error", "code": "card_declined", "decline_code": sale.decline_code},
        "latest_charge": {
            "id": sale.charge_id,
            "object": "charge",
            "amount": sale.amount,
            "captured": False,
            "status": "failed" if sale.decline_code else "succeeded",
            "payment_method_details": {
                "type": "card_present",
                "card_present": {
                    "brand": card["brand"],
                    "last4": card["last4"],
                    "exp_month": card["exp_month"],
                    "exp_year": card["exp_year"],
                    "read_method": card["read_method"],
                    "offline": {"stored_at": _unix(sale.confirmed_at), "type": "deferred"},
                },
            },
        },
    }


def _stripe_time(moment: datetime) -> str:
    """Stripe's report timestamps: UTC without an offset."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _unix(moment: datetime) -> int:
    return int(moment.timestamp())


def _major(amount_minor: int, currency: str) -> str:
    """Minor units as the report's decimal major units (`-1250` -> `-12.50`), exactly."""
    places = exponent(currency)
    sign = "-" if amount_minor < 0 else ""
    whole, fraction = divmod(abs(amount_minor), 10**places)
    return f"{sign}{whole}" if places == 0 else f"{sign}{whole}.{fraction:0{places}d}"
