"""Reconciliation on data shaped like what Stripe really sends (tests/support/stripe_corpus/, whose
README cites the source of each shape): report CSVs of both report types with default and
optional columns, PaymentIntents of old and new API versions, webhook events. Each case of the
report that finance acts on is checked on it, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from adapters.stripe.files import read_payment_intents_json, read_report_csv
from adapters.stripe.problems import StripeFileError
from ledger import Ledger
from projections.formats import FORMATS, render
from projections.read_models import ReadModels
from projections.report import Category, Report, Row
from tests.support import records as r
from tests.support.serve import running

CORPUS = Path(__file__).parents[1] / "support" / "stripe_corpus"
AS_OF = datetime(2026, 11, 26, tzinfo=UTC)


def oid(n: int) -> str:
    return f"5a0c6c1e-0b1f-4c61-9a55-00000000000{n}"


def pi(n: int) -> str:
    return f"pi_3QcrpsP{n}000000001"


# The ledger's side of the corpus: (amount, currency, captured, capture_method).
SALES: dict[int, tuple[int, str, int | None, str]] = {
    1: (1250, "usd", None, "automatic"),
    2: (12000, "usd", None, "automatic"),
    3: (5000, "usd", None, "automatic"),
    4: (2500, "usd", None, "automatic"),
    5: (1250, "usd", 1000, "manual"),  # a partial capture
    6: (4999, "eur", None, "automatic"),
    7: (2000, "usd", 2000, "manual"),  # the ledger captured all; Stripe received 15.00
    9: (1250, "usd", None, "automatic"),
}


@pytest.fixture
def ledger(database: str) -> Iterator[Ledger]:
    with Ledger.open(database) as opened:
        limits = {"stored_amount_max": {"usd": 100_000, "eur": 100_000}, "stored_count_max": 40}
        opened.record(r.location(device_limits=limits))
        opened.record(r.device())
        for n, (amount, currency, captured, method) in SALES.items():
            for record in r.stored_payment(
                oid(n), amount=amount, currency=currency, capture_method=method
            ):
                opened.record(record)
            status = "requires_capture" if captured is not None else "succeeded"
            opened.record(r.forwarded(oid(n), pi(n), status))
            if captured is not None:
                opened.record(r.captured(oid(n), pi(n), amount_captured=captured))
        yield opened


def report(ledger: Ledger) -> Report:
    with ReadModels(ledger) as read_models:
        return read_models.report(AS_OF)


def rows(ledger: Ledger) -> dict[str | None, Row]:
    return {row.offline_id: row for row in report(ledger).rows}


def import_report(ledger: Ledger, name: str, zone: ZoneInfo | None = None) -> tuple[int, int]:
    summary = ledger.observe_file(read_report_csv(CORPUS / name, zone))
    return summary.recorded, summary.repeats


def import_json(ledger: Ledger, name: str) -> None:
    ledger.observe_file(read_payment_intents_json(CORPUS / name))


def event(name: str) -> dict[str, Any]:
    return dict(json.loads((CORPUS / "events" / f"{name}.json").read_text()))


def test_a_balance_report_naming_charges_only_counts_each_sale_once(ledger: Ledger) -> None:
    import_report(ledger, "balance_without_payment_intent.csv")
    seen = rows(ledger)
    # ch_ rows and the ledger's pi_ are one payment: no advice to refund a customer who paid once
    assert seen[oid(1)].category is Category.MATCHED
    assert seen[oid(1)].amount_at_risk == 0
    assert (seen[oid(2)].category, seen[oid(2)].refunded_amount) == (
        Category.PARTIALLY_REFUNDED,
        6000,
    )
    # From the report alone a dispute is open (no reversal): its amount is at risk.
    assert (seen[oid(3)].category, seen[oid(3)].disputed_amount) == (Category.DISPUTED, 5000)
    assert (seen[oid(3)].amount_at_risk, seen[oid(3)].dispute_status) == (5000, "open")
    assert (seen[oid(4)].category, seen[oid(4)].dispute_status) == (Category.DISPUTE_WON, "won")
    assert seen[oid(4)].amount_at_risk == 0
    # charge 12.50 + partial_capture_reversal -2.50 = the 10.00 the ledger captured
    assert (seen[oid(5)].category, seen[oid(5)].stripe_amount) == (Category.MATCHED, 1000)
    assert not any(row.category is Category.DUPLICATE for row in seen.values())


def test_the_same_balance_transactions_from_other_reports_and_columns_are_one_fact(
    ledger: Ledger,
) -> None:
    assert import_report(ledger, "balance_without_payment_intent.csv") == (11, 0)
    before = rows(ledger)
    # Another report type, other optional columns: P1's and P2's rows again, with payouts.
    import_report(ledger, "payout_reconciliation_full_columns.csv")
    assert import_report(ledger, "payout_reconciliation_full_columns.csv")[0] == 0
    # The same charge again in local time, and saved by a decimal-comma spreadsheet.
    import_report(ledger, "balance_local_time.csv", ZoneInfo("Europe/Paris"))
    assert import_report(ledger, "balance_bom_crlf_decimal_comma.csv")[0] == 0
    after = rows(ledger)
    for n in (1, 2, 5):
        assert after[oid(n)].stripe_amount == before[oid(n)].stripe_amount
    assert (after[oid(1)].category, after[oid(1)].stripe_amount) == (Category.MATCHED, 1250)
    assert after[oid(1)].stripe_fee == 66  # one fee, not one per report
    assert after[oid(2)].refunded_amount == 6000
    assert (after[oid(1)].payout_id, after[oid(1)].payout_at) == (
        "po_1QcrpsPayout000001",
        datetime(2026, 11, 24, tzinfo=UTC),
    )


def test_a_default_column_report_is_matched_through_its_balance_transactions(
    ledger: Ledger,
) -> None:
    import_json(ledger, "payment_intents_latest_charge.json")
    recorded, _ = import_report(ledger, "balance_default_columns.csv")
    assert recorded == 1  # the payout row names no payment
    row = rows(ledger)[oid(9)]
    assert (row.category, row.stripe_fee, row.stripe_net) == (Category.MATCHED, 66, 1184)


def test_partial_captures_are_read_by_amount_received(ledger: Ledger) -> None:
    import_json(ledger, "payment_intents_latest_charge.json")
    seen = rows(ledger)
    assert (seen[oid(5)].category, seen[oid(5)].stripe_amount) == (Category.MATCHED, 1000)
    # The ledger captured 20.00; Stripe received 15.00: flagged, the shortfall at risk.
    assert (seen[oid(7)].category, seen[oid(7)].stripe_amount) == (Category.AMOUNT_MISMATCH, 1500)
    assert seen[oid(7)].amount_at_risk == 500


def test_a_settlement_in_another_currency_is_matched_and_both_amounts_shown(
    ledger: Ledger,
) -> None:
    import_report(ledger, "payout_reconciliation_full_columns.csv")
    row = rows(ledger)[oid(6)]
    assert (row.category, row.stripe_amount, row.stripe_currency) == (
        Category.MATCHED,
        4999,
        "eur",
    )
    assert (row.settlement_amount, row.settlement_currency) == (5449, "usd")


def test_payouts_are_totalled_for_the_bank_deposit(ledger: Ledger) -> None:
    import_report(ledger, "balance_without_payment_intent.csv")
    import_report(ledger, "payout_reconciliation_full_columns.csv")
    payouts = {(p.payout_id, p.currency): p for p in report(ledger).payouts()}
    first = payouts["po_1QcrpsPayout000001", "usd"]
    assert (first.payments, first.gross, first.refunds, first.disputes) == (3, 18699, -3000, 0)
    assert first.fees == 66 + 378 + 188
    assert first.net == 1184 + 11622 - 3000 + 5261
    second = payouts["po_1QcrpsPayout000002", "usd"]
    assert (second.payments, second.disputes, second.fees, second.net) == (1, -5000, 1500, -6500)


def test_an_old_api_version_charges_list_shows_an_offline_orphan(ledger: Ledger) -> None:
    import_json(ledger, "payment_intents_charges_list_2020-08-27.json")
    orphans = [row for row in report(ledger).rows if row.category is Category.ORPHAN_IN_STRIPE]
    assert [(o.payment_intent_ids, o.stripe_amount, o.offline_id) for o in orphans] == [
        ((pi(8),), 3000, None)
    ]
    (seen,) = read_payment_intents_json(CORPUS / "payment_intents_charges_list_2020-08-27.json")
    # The charge that succeeded, with the failed attempt and its balance transaction linked.
    assert (seen.charge_id, seen.offline_collected) == ("ch_3QcrpsP800000000b", True)
    assert set(seen.related_ids) == {"ch_3QcrpsP800000000a", "txn_3QcrpsP8chg0000001"}


def test_a_local_time_report_is_refused_without_its_time_zone() -> None:
    with pytest.raises(StripeFileError) as refused:
        read_report_csv(CORPUS / "balance_local_time.csv")
    (problem,) = refused.value.problems
    assert (problem.code, problem.field) == ("INVALID_TIMESTAMP", "created")
    assert "--timezone" in problem.message
    (row,) = read_report_csv(CORPUS / "balance_local_time.csv", ZoneInfo("Europe/Paris"))
    assert row.created_at == datetime(2026, 11, 22, 10, tzinfo=UTC)


def test_a_spreadsheet_saved_report_reads_the_same() -> None:
    (row,) = read_report_csv(CORPUS / "balance_bom_crlf_decimal_comma.csv")
    assert (row.balance_transaction_id, row.gross, row.fee, row.net) == (
        "txn_3QcrpsP1chg0000001",
        1250,
        66,
        1184,
    )


def test_refunds_and_disputes_by_webhook_count_once_with_the_reports(
    ledger: Ledger, database: str, tmp_path: Path
) -> None:
    with running(database, tmp_path) as server:
        for name in ("refund.created", "charge.refunded", "charge.dispute.created"):
            status, answer = server.send(event(name))
            assert (status, answer["duplicate"]) == (200, False), answer
        seen = rows(ledger)
        assert (seen[oid(2)].category, seen[oid(2)].refunded_amount) == (
            Category.PARTIALLY_REFUNDED,
            3000,
        )
        assert (seen[oid(3)].category, seen[oid(3)].dispute_status) == (
            Category.DISPUTED,
            "needs_response",
        )
        # The report lists refund A again (same re_) and refund B: 60.00 in all, not 90.00.
        import_report(ledger, "balance_without_payment_intent.csv")
        import_report(ledger, "payout_reconciliation_full_columns.csv")
        assert rows(ledger)[oid(2)].refunded_amount == 6000
        assert server.send(event("charge.dispute.closed"))[0] == 200
    lost = rows(ledger)[oid(3)]
    assert (lost.category, lost.disputed_amount, lost.amount_at_risk) == (
        Category.DISPUTE_LOST,
        5000,
        5000,
    )


def test_every_format_shows_the_payouts(ledger: Ledger) -> None:
    import_report(ledger, "payout_reconciliation_full_columns.csv")
    shown = {fmt: render(report(ledger), fmt) for fmt in FORMATS}
    assert json.loads(shown["json"])["payouts"][0] == {
        "payout_id": "po_1QcrpsPayout000001",
        "payout_date": "2026-11-24",
        "currency": "usd",
        "payments": 3,
        "gross": 18699,
        "fees": 66 + 378 + 188,
        "refunds": -3000,
        "disputes": 0,
        "net": 1184 + 11622 - 3000 + 5261,
    }
    for name in ("html", "table"):
        assert "po_1QcrpsPayout000001" in shown[name] and "186.99 USD" in shown[name], name
    assert "po_1QcrpsPayout000001" in shown["csv"]  # each row's payout_id column
