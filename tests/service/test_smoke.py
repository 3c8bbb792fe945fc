"""The basic path on every store: configure, store, forward, capture; state and status agree."""

from ledger import Ledger
from tests.support import records as r


def test_a_stored_payment_counts_at_its_location_until_forwarded(ledger: Ledger) -> None:
    ledger.record(r.location())
    ledger.record(r.device())
    oid = "2f1c7d36-5d7b-4b43-9b8a-1f2d2e0b6c11"
    for record in r.stored_payment(oid):
        ledger.record(record)

    (status,) = ledger.status()
    assert status.offline_payments_count == 1
    assert status.offline_payment_amounts_by_currency == {"usd": 1250}
    assert status.devices[0].device_id == "tmr_1"
    assert status.devices[0].offline_payment_amounts_by_currency == {"usd": 1250}

    result = ledger.record(r.forwarded(oid, status="requires_capture"))
    assert result.recorded and result.state is not None
    assert ledger.payment(oid).status == "forwarded"
    (status,) = ledger.status()
    assert status.offline_payments_count == 0
    assert status.offline_payment_amounts_by_currency == {}

    ledger.record(r.captured(oid, amount_captured=1000))
    payment = ledger.payment(oid)
    assert (payment.status, payment.amount_captured) == ("captured", 1000)
    assert [e.event for e in ledger.history(oid)] == [
        "Created",
        "PaymentMethodCollected",
        "ConfirmedOffline",
        "Forwarded",
        "Captured",
    ]
