"""Idempotency: the same fact recorded twice is a no-op, whichever source sends it
and however late; a changed repeat is an IDEMPOTENCY_CONFLICT naming the field that differs;
an idempotency key names one record; a batch keeps going past a refused record.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from ledger import Code, Ledger, LedgerError, Result
from tests.support import records as r

Record = dict[str, Any]
OID = "5d1c2a8e-7f3b-4c6e-a2d9-8e4b1f0c3a77"


def event_count(ledger: Ledger) -> int:
    return ledger.store.recorder.max_notification_id() or 0


def apply(ledger: Ledger, records: list[Record]) -> None:
    for record in records:
        ledger.record(record)


@pytest.fixture
def shop(ledger: Ledger) -> Ledger:
    ledger.record(r.location())
    ledger.record(r.device())
    return ledger


def assert_no_op(ledger: Ledger, record: Record) -> Result:
    """Recording `record` again returns recorded=False and stores no event anywhere."""
    events_before, status_before = event_count(ledger), ledger.status()
    result = ledger.record(record)
    assert result.recorded is False
    assert event_count(ledger) == events_before
    assert ledger.status() == status_before
    return result


def assert_conflict(ledger: Ledger, record: Record, field: str) -> LedgerError:
    events_before = event_count(ledger)
    with pytest.raises(LedgerError) as refused:
        ledger.record(record)
    assert refused.value.code is Code.IDEMPOTENCY_CONFLICT, refused.value
    assert refused.value.field == field
    assert field in refused.value.message
    assert event_count(ledger) == events_before
    return refused.value


# -- the same fact twice -----------------------------------------------------------------------

# For each record type: the records before it, then the record that is sent twice.
REPEATS: dict[str, tuple[list[Record], Record]] = {
    "location.configured": ([], r.location()),
    "device.connected_online": ([r.location()], r.device()),
    "payment.created": ([r.location(), r.device()], r.created(OID)),
    "payment.payment_method_collected": (
        [r.location(), r.device(), r.created(OID)],
        r.collected(OID),
    ),
    "payment.confirmed_offline": (
        [r.location(), r.device(), r.created(OID), r.collected(OID)],
        r.confirmed(OID),
    ),
    "payment.forwarded": ([r.location(), r.device(), *r.stored_payment(OID)], r.forwarded(OID)),
    "payment.forward_failed": (
        [r.location(), r.device(), *r.stored_payment(OID)],
        r.forward_failed(OID),
    ),
    "payment.declined": ([r.location(), r.device(), *r.stored_payment(OID)], r.declined(OID)),
    "payment.captured": (
        [
            r.location(),
            r.device(),
            *r.stored_payment(OID, capture_method="manual"),
            r.forwarded(OID, status="requires_capture"),
        ],
        r.captured(OID, amount_captured=1000),
    ),
    "payment.canceled": (
        [r.location(), r.device(), *r.stored_payment(OID)],
        r.canceled(OID, occurred_at=r.at(5)),
    ),
}


@pytest.mark.parametrize(("before", "record"), REPEATS.values(), ids=REPEATS.keys())
def test_the_same_fact_twice_is_a_no_op(
    ledger: Ledger, before: list[Record], record: Record
) -> None:
    apply(ledger, before)
    first = ledger.record(record)
    assert first.recorded is True

    again = assert_no_op(ledger, record)

    assert again.key == first.key
    assert again.state == first.state  # the existing state is returned
    if record["type"].startswith("payment."):
        assert len(ledger.history(OID)) == first.state.version  # type: ignore[union-attr]


@pytest.mark.parametrize(("before", "record"), REPEATS.values(), ids=REPEATS.keys())
def test_the_same_fact_twice_in_one_batch_is_recorded_once(
    memory_ledger: Ledger, before: list[Record], record: Record
) -> None:
    apply(memory_ledger, before)

    first, second = memory_ledger.record_many([record, record])

    assert isinstance(first, Result) and isinstance(second, Result)
    assert (first.recorded, second.recorded) == (True, False)


@pytest.fixture(params=["sqlite", "postgres"])
def shared_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{request.param}_url"))


def test_the_same_fact_from_another_process_is_a_no_op(shared_url: str) -> None:
    """A webhook receiver and a POS sync process both report the forward."""
    with Ledger.open(shared_url) as pos, Ledger.open(shared_url) as webhooks:
        apply(pos, [r.location(), r.device(), *r.stored_payment(OID)])
        assert webhooks.record(r.forwarded(OID, "pi_1")).recorded is True
        history = len(webhooks.history(OID))

        assert pos.record(r.forwarded(OID, "pi_1")).recorded is False
        assert pos.record(r.confirmed(OID)).recorded is False
        assert webhooks.record(r.created(OID)).recorded is False

        assert len(pos.history(OID)) == history
        assert pos.payment(OID).status == "captured"
        assert pos.payment(OID).duplicate_payment_intent_ids == []


# A fact that arrives again after the payment moved on is still the same fact.
LATE_REPEATS: dict[str, tuple[list[Record], Record]] = {
    "created after capture": ([*r.stored_payment(OID), r.forwarded(OID)], r.created(OID)),
    "collected after confirmation": (r.stored_payment(OID), r.collected(OID)),
    "confirmed after forwarding": ([*r.stored_payment(OID), r.forwarded(OID)], r.confirmed(OID)),
    "confirmed after cancel": (
        [*r.stored_payment(OID), r.canceled(OID, occurred_at=r.at(5))],
        r.confirmed(OID),
    ),
    "forward failure after forwarding": (
        [*r.stored_payment(OID), r.forward_failed(OID), r.forwarded(OID)],
        r.forward_failed(OID),
    ),
    "forwarded after capture": (
        [*r.stored_payment(OID), r.forwarded(OID, status="requires_capture"), r.captured(OID)],
        r.forwarded(OID, status="requires_capture"),
    ),
    "forwarded after decline": (
        [*r.stored_payment(OID), r.forwarded(OID, status="requires_capture"), r.declined(OID)],
        r.forwarded(OID, status="requires_capture"),
    ),
    "forwarded after void": (
        [
            *r.stored_payment(OID),
            r.forwarded(OID, status="requires_capture"),
            r.canceled(OID, reason="voided", occurred_at=r.at(150)),
        ],
        r.forwarded(OID, status="requires_capture"),
    ),
    "device connection older than the last": (
        [r.device(occurred_at=r.at(-10))],
        r.device(occurred_at=r.at(-30)),
    ),
}


@pytest.mark.parametrize(("before", "record"), LATE_REPEATS.values(), ids=LATE_REPEATS.keys())
def test_a_fact_reported_again_after_later_steps_is_a_no_op(
    shop: Ledger, before: list[Record], record: Record
) -> None:
    apply(shop, before)

    assert_no_op(shop, record)


# -- changed repeats ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"amount": 1251}, "amount"),
        ({"currency": "eur"}, "currency"),
        ({"capture_method": "manual"}, "capture_method"),
        ({"offline_behavior": "require_online"}, "offline_behavior"),
        ({"payment_intent_id": "pi_online"}, "payment_intent_id"),
        ({"metadata": {"order": "A-18"}}, "metadata"),
        ({"metadata": {}}, "metadata"),
    ],
    ids=lambda value: value if isinstance(value, str) else ",".join(value),
)
def test_a_repeated_creation_with_different_content_is_a_conflict(
    shop: Ledger, change: Record, field: str
) -> None:
    shop.record(r.created(OID))

    assert_conflict(shop, r.created(OID) | change, field)

    payment = shop.payment(OID)
    assert (payment.amount, payment.currency, payment.metadata) == (1250, "usd", {"order": "A-17"})
    assert len(shop.history(OID)) == 1


def test_a_repeated_creation_from_another_device_is_a_conflict(shop: Ledger) -> None:
    shop.record(r.device("tmr_2"))
    shop.record(r.created(OID))

    assert_conflict(shop, r.created(OID, device_id="tmr_2"), "device_id")


def test_a_repeated_creation_at_a_later_time_is_the_same_fact(shop: Ledger) -> None:
    shop.record(r.created(OID))

    assert_no_op(shop, r.created(OID, occurred_at=r.at(1)))


def test_a_repeated_confirmation_with_another_stored_at_is_a_conflict(shop: Ledger) -> None:
    apply(shop, r.stored_payment(OID))

    assert_conflict(shop, r.confirmed(OID, stored_at=r.at(3)), "stored_at")

    assert shop.payment(OID).stored_at.isoformat() == r.at(2)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("before", "changed", "field"),
    [
        ([r.declined(OID)], r.declined(OID, decline_code="do_not_honor"), "decline_code"),
        ([r.canceled(OID, occurred_at=r.at(5))], r.canceled(OID, reason="abandoned"), "reason"),
        (
            [r.forwarded(OID, status="requires_capture"), r.captured(OID, amount_captured=1000)],
            r.captured(OID, amount_captured=900),
            "amount_captured",
        ),
    ],
    ids=["declined", "canceled", "captured"],
)
def test_a_repeated_outcome_with_different_content_is_a_conflict(
    shop: Ledger, before: list[Record], changed: Record, field: str
) -> None:
    apply(shop, [*r.stored_payment(OID), *before])
    history = len(shop.history(OID))

    assert_conflict(shop, changed, field)

    assert len(shop.history(OID)) == history


# -- idempotency keys --------------------------------------------------------------------------


def keyed(record: Record, key: str = "key-1") -> Record:
    return {**record, "idempotency_key": key}


def test_the_same_key_with_the_same_content_is_a_no_op(shop: Ledger) -> None:
    assert shop.record(keyed(r.created(OID))).recorded is True

    assert_no_op(shop, keyed(r.created(OID)))

    assert len(shop.history(OID)) == 1


@pytest.mark.parametrize(
    ("first", "second", "field"),
    [
        (r.created(OID), r.created(OID, amount=1300), "amount"),
        (r.created(OID), r.created(OID, metadata={"order": "A-18"}), "metadata.order"),
        (r.created(OID), r.created(str(uuid.uuid4())), "offline_id"),
        (r.created(OID), r.created(OID, occurred_at=r.at(1)), "occurred_at"),
    ],
    ids=["amount", "metadata value", "another payment", "another time"],
)
def test_the_same_key_with_different_content_is_a_conflict_naming_the_field(
    shop: Ledger, first: Record, second: Record, field: str
) -> None:
    shop.record(keyed(first))

    assert_conflict(shop, keyed(second), field)

    if second["offline_id"] != OID:
        with pytest.raises(LedgerError) as unknown:
            shop.payment(second["offline_id"])
        assert unknown.value.code is Code.UNKNOWN_PAYMENT


def test_a_key_reused_for_a_different_card_names_the_card_field(shop: Ledger) -> None:
    shop.record(r.created(OID))
    shop.record(keyed(r.collected(OID), "collect-1"))

    assert_conflict(shop, keyed(r.collected(OID, last4="1111"), "collect-1"), "card.last4")

    assert shop.payment(OID).card["last4"] == "4242"  # type: ignore[index]


def test_a_key_reused_for_another_payment_intent_names_it(shop: Ledger) -> None:
    apply(shop, r.stored_payment(OID))
    shop.record(keyed(r.forwarded(OID, "pi_1"), "fwd"))

    assert_conflict(shop, keyed(r.forwarded(OID, "pi_2"), "fwd"), "payment_intent_id")

    assert shop.payment(OID).duplicate_payment_intent_ids == []


def test_a_key_whose_record_was_refused_can_be_used_again(shop: Ledger) -> None:
    with pytest.raises(LedgerError) as refused:
        shop.record(keyed(r.collected(OID), "retry-me"))
    assert refused.value.code is Code.UNKNOWN_PAYMENT

    shop.record(r.created(OID))
    assert shop.record(keyed(r.collected(OID, last4="1111"), "retry-me")).recorded is True
    assert shop.payment(OID).status == "collected"


def test_the_same_key_twice_in_one_batch_is_recorded_once(shop: Ledger) -> None:
    results = shop.record_many(
        [
            keyed(r.created(OID)),
            keyed(r.created(OID)),
            keyed(r.created(OID, amount=1)),
        ]
    )

    first, second, third = results
    assert isinstance(first, Result) and isinstance(second, Result)
    assert (first.recorded, second.recorded) == (True, False)
    assert isinstance(third, LedgerError)
    assert (third.code, third.field) == (Code.IDEMPOTENCY_CONFLICT, "amount")
    assert len(shop.history(OID)) == 1


# -- batches -----------------------------------------------------------------------------------


def test_a_batch_keeps_going_after_a_refused_record(shop: Ledger) -> None:
    other = str(uuid.uuid4())
    batch: list[Record | LedgerError] = [
        r.created(OID),
        r.created(other) | {"amount": 0},  # invalid record
        r.collected(other),  # unknown payment
        r.created(OID) | {"amount": 999},  # contradicts the recorded creation
        r.collected(OID),
        r.confirmed(OID),
        r.created(OID),  # repeat
        LedgerError(Code.MALFORMED_JSON, "line 8 was not JSON"),  # passed through upstream
        r.forwarded(OID, "pi_9"),
    ]
    events_before = event_count(shop)

    results = shop.record_many(batch)

    assert len(results) == len(batch)
    outcome: list[Any] = [
        result.code if isinstance(result, LedgerError) else result.recorded for result in results
    ]
    assert outcome == [
        True,
        Code.INVALID_AMOUNT,
        Code.UNKNOWN_PAYMENT,
        Code.IDEMPOTENCY_CONFLICT,
        True,
        True,
        False,
        Code.MALFORMED_JSON,
        True,
    ]
    assert results[7] is batch[7]
    kinds = [result.record_type for result in results if isinstance(result, Result)]
    assert kinds == [
        "payment.created",
        "payment.payment_method_collected",
        "payment.confirmed_offline",
        "payment.created",
        "payment.forwarded",
    ]
    assert event_count(shop) - events_before == 4 + 2  # payment events + location store/release
    assert shop.payment(OID).status == "captured"
    assert [e.event for e in shop.history(OID)] == [
        "Created",
        "PaymentMethodCollected",
        "ConfirmedOffline",
        "Forwarded",
    ]
    with pytest.raises(LedgerError):
        shop.payment(other)


def test_a_batch_gives_the_same_outcomes_as_one_record_at_a_time(ledger: Ledger) -> None:
    records = [
        r.location(),
        r.device(),
        *r.stored_payment(OID),
        r.forwarded(OID, "pi_1"),
        r.forwarded(OID, "pi_2"),
        r.forwarded(OID, "pi_2"),
        r.captured(OID, "pi_9"),
        r.created(OID, amount=5),
    ]

    with Ledger.open("memory://") as alone:
        expected: list[Any] = []
        for record in records:
            try:
                expected.append(alone.record(record).recorded)
            except LedgerError as error:
                expected.append(error.code)

    results = ledger.record_many(records)

    assert [x.code if isinstance(x, LedgerError) else x.recorded for x in results] == expected
    assert expected == [
        True,
        True,
        True,
        True,
        True,
        True,
        True,
        False,
        Code.PAYMENT_INTENT_MISMATCH,
        Code.IDEMPOTENCY_CONFLICT,
    ]
    assert ledger.payment(OID).duplicate_payment_intent_ids == ["pi_2"]
