"""The payment lifecycle: every step, its effect on the stored totals, and the
ordering rules (a step out of order is refused with STEP_OUT_OF_ORDER and stores nothing)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from ledger import Code, Ledger, LedgerError
from tests.support import records as r

Record = dict[str, Any]


@pytest.fixture
def shop(ledger: Ledger) -> Ledger:
    """A ledger with location tml_1 (offline enabled) and device tmr_1 connected there."""
    ledger.record(r.location())
    ledger.record(r.device())
    return ledger


def new_id() -> str:
    return str(uuid.uuid4())


def apply(ledger: Ledger, records: list[Record]) -> None:
    for record in records:
        ledger.record(record)


def stored_totals(ledger: Ledger) -> tuple[int, dict[str, int], int, dict[str, int]]:
    """(location count, location amounts, device count, device amounts) at tml_1 / tmr_1."""
    (status,) = ledger.status("tml_1")
    device = next((d for d in status.devices if d.device_id == "tmr_1"), None)
    assert device is not None
    return (
        status.offline_payments_count,
        status.offline_payment_amounts_by_currency,
        device.offline_payments_count,
        device.offline_payment_amounts_by_currency,
    )


def event_names(ledger: Ledger, oid: str) -> list[str]:
    return [entry.event for entry in ledger.history(oid)]


NOTHING_STORED = (0, {}, 0, {})
ONE_STORED = (1, {"usd": 1250}, 1, {"usd": 1250})


# -- the happy paths ---------------------------------------------------------------------------


def test_a_created_payment_is_not_stored_yet(shop: Ledger) -> None:
    oid = new_id()
    result = shop.record(r.created(oid))

    assert result.recorded is True
    assert result.key == oid
    payment = shop.payment(oid)
    assert (payment.status, payment.amount, payment.currency) == ("created", 1250, "usd")
    assert payment.metadata == {"order": "A-17"}
    assert payment.card is None and payment.stored_at is None
    assert stored_totals(shop) == NOTHING_STORED
    assert event_names(shop, oid) == ["Created"]


def test_collecting_the_payment_method_keeps_the_card_details_but_stores_nothing(
    shop: Ledger,
) -> None:
    oid = new_id()
    shop.record(r.created(oid))
    shop.record(r.collected(oid))

    payment = shop.payment(oid)
    assert payment.status == "collected"
    assert payment.card is not None
    assert (payment.card["brand"], payment.card["last4"]) == ("visa", "4242")
    assert (payment.card["exp_month"], payment.card["exp_year"]) == (12, 2028)
    assert stored_totals(shop) == NOTHING_STORED
    assert event_names(shop, oid) == ["Created", "PaymentMethodCollected"]


def test_confirming_offline_makes_the_amount_stored_at_the_location_and_device(
    shop: Ledger,
) -> None:
    oid = new_id()
    apply(shop, r.stored_payment(oid))

    payment = shop.payment(oid)
    assert payment.status == "stored"
    assert payment.stored_at is not None
    assert payment.stored_at.isoformat() == r.at(2)
    assert stored_totals(shop) == ONE_STORED
    assert event_names(shop, oid) == ["Created", "PaymentMethodCollected", "ConfirmedOffline"]


def test_a_payment_forwarded_as_succeeded_is_captured_and_released(shop: Ledger) -> None:
    oid = new_id()
    apply(shop, r.stored_payment(oid))

    result = shop.record(r.forwarded(oid, "pi_auto", status="succeeded"))

    assert result.recorded is True
    payment = shop.payment(oid)
    assert payment.status == "captured"
    assert payment.payment_intent_id == "pi_auto"
    assert payment.stripe_status == "succeeded"
    assert payment.amount_captured == 1250
    assert payment.forwarded_at is not None
    assert stored_totals(shop) == NOTHING_STORED
    assert event_names(shop, oid)[-1] == "Forwarded"


def test_a_payment_forwarded_as_requires_capture_waits_for_capture(shop: Ledger) -> None:
    oid = new_id()
    apply(shop, r.stored_payment(oid, capture_method="manual"))

    shop.record(r.forwarded(oid, "pi_manual", status="requires_capture"))

    payment = shop.payment(oid)
    assert (payment.status, payment.stripe_status) == ("forwarded", "requires_capture")
    assert payment.amount_captured == 0
    assert stored_totals(shop) == NOTHING_STORED  # Stripe has it: no longer at risk here

    shop.record(r.captured(oid, "pi_manual", amount_captured=1250))

    payment = shop.payment(oid)
    assert (payment.status, payment.amount_captured) == ("captured", 1250)
    assert payment.stripe_status == "succeeded"
    assert event_names(shop, oid)[-2:] == ["Forwarded", "Captured"]


def test_a_payment_forwarded_as_processing_is_forwarded_and_released(shop: Ledger) -> None:
    oid = new_id()
    apply(shop, r.stored_payment(oid))

    shop.record(r.forwarded(oid, "pi_proc", status="processing"))

    payment = shop.payment(oid)
    assert (payment.status, payment.stripe_status) == ("forwarded", "processing")
    assert stored_totals(shop) == NOTHING_STORED


def test_an_authorization_may_be_captured_partially(shop: Ledger) -> None:
    oid = new_id()
    apply(
        shop,
        [
            *r.stored_payment(oid, capture_method="manual"),
            r.forwarded(oid, status="requires_capture"),
        ],
    )

    shop.record(r.captured(oid, amount_captured=1000))

    payment = shop.payment(oid)
    assert (payment.status, payment.amount, payment.amount_captured) == ("captured", 1250, 1000)


def test_a_capture_above_the_authorized_amount_is_refused(shop: Ledger) -> None:
    oid = new_id()
    apply(
        shop,
        [
            *r.stored_payment(oid, capture_method="manual"),
            r.forwarded(oid, status="requires_capture"),
        ],
    )
    history_before = len(shop.history(oid))

    with pytest.raises(LedgerError) as refused:
        shop.record(r.captured(oid, amount_captured=1251))

    assert refused.value.code is Code.CAPTURE_EXCEEDS_AMOUNT
    assert refused.value.field == "amount_captured"
    assert len(shop.history(oid)) == history_before
    payment = shop.payment(oid)
    assert (payment.status, payment.amount_captured) == ("forwarded", 0)


def test_a_capture_naming_another_payment_intent_is_refused(shop: Ledger) -> None:
    oid = new_id()
    apply(
        shop,
        [
            *r.stored_payment(oid, capture_method="manual"),
            r.forwarded(oid, "pi_1", status="requires_capture"),
        ],
    )
    history_before = len(shop.history(oid))

    with pytest.raises(LedgerError) as refused:
        shop.record(r.captured(oid, "pi_someone_else"))

    assert refused.value.code is Code.PAYMENT_INTENT_MISMATCH
    assert refused.value.field == "payment_intent_id"
    assert len(shop.history(oid)) == history_before
    assert shop.payment(oid).status == "forwarded"


def test_a_payment_is_captured_once(shop: Ledger) -> None:
    oid = new_id()
    apply(
        shop,
        [
            *r.stored_payment(oid, capture_method="manual"),
            r.forwarded(oid, status="requires_capture"),
            r.captured(oid, amount_captured=1000),
        ],
    )

    with pytest.raises(LedgerError) as refused:
        shop.record(r.captured(oid, amount_captured=1250))

    assert refused.value.code is Code.IDEMPOTENCY_CONFLICT
    assert refused.value.field == "amount_captured"
    assert shop.payment(oid).amount_captured == 1000


# -- failed forwards ---------------------------------------------------------------------------


def test_a_failed_forward_leaves_the_payment_stored(shop: Ledger) -> None:
    oid = new_id()
    apply(shop, r.stored_payment(oid))

    result = shop.record(r.forward_failed(oid))

    assert result.recorded is True
    payment = shop.payment(oid)
    assert (payment.status, payment.forward_failures) == ("stored", 1)
    assert stored_totals(shop) == ONE_STORED
    assert event_names(shop, oid)[-1] == "ForwardFailed"


def test_the_same_failed_forward_reported_again_is_a_no_op(shop: Ledger) -> None:
    oid = new_id()
    apply(shop, [*r.stored_payment(oid), r.forward_failed(oid)])
    history_before = len(shop.history(oid))

    result = shop.record(r.forward_failed(oid))

    assert result.recorded is False
    assert len(shop.history(oid)) == history_before
    assert shop.payment(oid).forward_failures == 1


def test_each_new_failed_attempt_is_recorded_and_forwarding_can_still_succeed(
    shop: Ledger,
) -> None:
    oid = new_id()
    apply(shop, [*r.stored_payment(oid), r.forward_failed(oid)])

    assert shop.record(r.forward_failed(oid, occurred_at=r.at(90))).recorded is True
    assert shop.payment(oid).forward_failures == 2

    shop.record(r.forwarded(oid))
    assert shop.payment(oid).status == "captured"
    assert stored_totals(shop) == NOTHING_STORED


# -- declines ----------------------------------------------------------------------------------


def test_a_decline_of_a_stored_payment_releases_the_stored_amount(shop: Ledger) -> None:
    oid = new_id()
    apply(shop, r.stored_payment(oid))
    assert stored_totals(shop) == ONE_STORED

    result = shop.record(r.declined(oid, payment_intent_id=None))

    assert result.recorded is True
    payment = shop.payment(oid)
    assert (payment.status, payment.decline_code) == ("declined", "insufficient_funds")
    assert stored_totals(shop) == NOTHING_STORED
    assert event_names(shop, oid)[-1] == "Declined"


def test_a_decline_of_a_stored_payment_may_name_the_payment_intent(shop: Ledger) -> None:
    oid = new_id()
    apply(shop, r.stored_payment(oid))

    shop.record(r.declined(oid, payment_intent_id="pi_declined"))

    payment = shop.payment(oid)
    assert (payment.status, payment.payment_intent_id) == ("declined", "pi_declined")
    assert stored_totals(shop) == NOTHING_STORED


def test_a_forward_reported_after_the_decline_keeps_the_decline(shop: Ledger) -> None:
    oid = new_id()
    apply(shop, [*r.stored_payment(oid), r.declined(oid, payment_intent_id=None)])

    result = shop.record(r.forwarded(oid, "pi_late", status="requires_capture"))

    assert result.recorded is True
    payment = shop.payment(oid)
    assert (payment.status, payment.payment_intent_id) == ("declined", "pi_late")
    assert payment.duplicate_payment_intent_ids == []
    assert stored_totals(shop) == NOTHING_STORED


def test_a_forwarded_authorization_can_be_declined(shop: Ledger) -> None:
    oid = new_id()
    apply(
        shop,
        [
            *r.stored_payment(oid, capture_method="manual"),
            r.forwarded(oid, "pi_1", status="requires_capture"),
        ],
    )

    shop.record(r.declined(oid, payment_intent_id="pi_1", decline_code="do_not_honor"))

    payment = shop.payment(oid)
    assert (payment.status, payment.decline_code) == ("declined", "do_not_honor")
    assert stored_totals(shop) == NOTHING_STORED


def test_a_decline_naming_another_payment_intent_is_refused(shop: Ledger) -> None:
    oid = new_id()
    apply(
        shop,
        [
            *r.stored_payment(oid, capture_method="manual"),
            r.forwarded(oid, "pi_1", status="requires_capture"),
        ],
    )

    with pytest.raises(LedgerError) as refused:
        shop.record(r.declined(oid, payment_intent_id="pi_other"))

    assert refused.value.code is Code.PAYMENT_INTENT_MISMATCH
    assert shop.payment(oid).status == "forwarded"


# -- cancels -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "steps",
    [
        pytest.param(lambda oid: [r.created(oid)], id="created"),
        pytest.param(lambda oid: [r.created(oid), r.collected(oid)], id="collected"),
    ],
)
def test_a_payment_not_yet_stored_can_be_canceled(
    shop: Ledger, steps: Callable[[str], list[Record]]
) -> None:
    oid = new_id()
    apply(shop, steps(oid))

    result = shop.record(r.canceled(oid, reason="abandoned"))

    assert result.recorded is True
    payment = shop.payment(oid)
    assert (payment.status, payment.cancel_reason) == ("canceled", "abandoned")
    assert stored_totals(shop) == NOTHING_STORED
    assert event_names(shop, oid)[-1] == "Canceled"


def test_canceling_a_stored_payment_releases_the_stored_amount(shop: Ledger) -> None:
    oid = new_id()
    apply(shop, r.stored_payment(oid))
    assert stored_totals(shop) == ONE_STORED

    shop.record(r.canceled(oid, occurred_at=r.at(5)))

    assert shop.payment(oid).status == "canceled"
    assert stored_totals(shop) == NOTHING_STORED


def test_an_uncaptured_authorization_can_be_voided(shop: Ledger) -> None:
    oid = new_id()
    apply(
        shop,
        [
            *r.stored_payment(oid, capture_method="manual"),
            r.forwarded(oid, status="requires_capture"),
        ],
    )

    result = shop.record(r.canceled(oid, reason="voided", occurred_at=r.at(150)))

    assert result.recorded is True
    payment = shop.payment(oid)
    assert (payment.status, payment.cancel_reason) == ("canceled", "voided")
    assert payment.amount_captured == 0
    assert stored_totals(shop) == NOTHING_STORED


# -- steps out of order ------------------------------------------------------------------------


def _steps_to(state: str, oid: str) -> list[Record]:
    """The records that bring payment `oid` into `state`."""
    stored = r.stored_payment(oid)
    return {
        "created": [r.created(oid)],
        "collected": [r.created(oid), r.collected(oid)],
        "stored": stored,
        "authorized": [*stored, r.forwarded(oid, status="requires_capture")],
        "captured": [*stored, r.forwarded(oid, status="succeeded")],
        "declined": [*stored, r.declined(oid)],
        "canceled before storing": [r.created(oid), r.canceled(oid)],
        "canceled after storing": [*stored, r.canceled(oid, occurred_at=r.at(5))],
    }[state]


# Facts that arrive before the steps they imply: recorded, the implied steps with them.
EARLY: list[tuple[str, Callable[[str], Record], str, list[str]]] = [
    ("created", r.confirmed, "stored", []),
    ("created", r.forwarded, "captured", ["confirmed_offline"]),
    ("collected", r.forwarded, "captured", ["confirmed_offline"]),
    ("created", r.captured, "captured", ["confirmed_offline", "forwarded"]),
    ("collected", r.captured, "captured", ["confirmed_offline", "forwarded"]),
    ("stored", r.captured, "captured", ["forwarded"]),
    ("created", r.forward_failed, "stored", ["confirmed_offline"]),
    ("collected", r.forward_failed, "stored", ["confirmed_offline"]),
    ("created", r.declined, "declined", ["confirmed_offline"]),
    ("collected", r.declined, "declined", ["confirmed_offline"]),
    ("canceled before storing", r.collected, "canceled", []),
    ("canceled before storing", r.confirmed, "canceled", []),
]


@pytest.mark.parametrize(
    ("state", "step", "status", "implied"),
    [
        pytest.param(*case, id=f"{case[1](new_id())['type'].split('.')[1]} when {case[0]}")
        for case in EARLY
    ],
)
def test_a_step_before_the_steps_it_implies_is_recorded_with_them(
    shop: Ledger, state: str, step: Callable[[str], Record], status: str, implied: list[str]
) -> None:
    oid = new_id()
    apply(shop, _steps_to(state, oid))

    assert shop.record(step(oid)).recorded is True
    assert shop.record(step(oid)).recorded is False  # a repeat, as ever

    payment = shop.payment(oid)
    assert payment.status == status
    assert payment.implied_steps == implied
    assert payment.reported_late is (bool(implied) or state == "canceled before storing")
    if "confirmed_offline" in implied and status != "stored":
        assert stored_totals(shop) == NOTHING_STORED  # stored, then released


OUT_OF_ORDER: list[tuple[str, Callable[[str], Record]]] = [
    ("authorized", r.forward_failed),
    ("captured", r.forward_failed),
    ("captured", r.declined),
    ("declined", r.captured),
    ("canceled after storing", r.captured),
    ("canceled before storing", r.forwarded),
    ("canceled after storing", r.forwarded),
    ("stored", lambda oid: r.collected(oid, last4="1111")),
    ("authorized", lambda oid: r.collected(oid, last4="1111")),
    ("captured", r.canceled),
    ("declined", r.canceled),
]


@pytest.mark.parametrize(
    ("state", "step"),
    [
        pytest.param(state, step, id=f"{step(new_id())['type'].split('.')[1]} when {state}")
        for state, step in OUT_OF_ORDER
    ],
)
def test_a_step_out_of_order_is_refused_and_stores_nothing(
    shop: Ledger, state: str, step: Callable[[str], Record]
) -> None:
    oid = new_id()
    other = new_id()  # a stored payment elsewhere, so the totals are not trivially empty
    apply(shop, [*r.stored_payment(other), *_steps_to(state, oid)])
    payment_before = shop.payment(oid)
    history_before = len(shop.history(oid))
    totals_before = stored_totals(shop)

    with pytest.raises(LedgerError) as refused:
        shop.record(step(oid))

    assert refused.value.code is Code.STEP_OUT_OF_ORDER, refused.value
    assert refused.value.details["status"] == payment_before.status
    assert len(shop.history(oid)) == history_before
    assert shop.payment(oid) == payment_before
    assert stored_totals(shop) == totals_before


# -- unknown references ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "step",
    [r.collected, r.confirmed, r.forwarded, r.forward_failed, r.declined, r.captured, r.canceled],
    ids=lambda step: step.__name__,
)
def test_a_step_for_an_unknown_payment_is_refused(
    shop: Ledger, step: Callable[[str], Record]
) -> None:
    oid = new_id()

    with pytest.raises(LedgerError) as refused:
        shop.record(step(oid))

    assert refused.value.code is Code.UNKNOWN_PAYMENT
    assert refused.value.field == "offline_id"
    with pytest.raises(LedgerError) as lookup:
        shop.payment(oid)
    assert lookup.value.code is Code.UNKNOWN_PAYMENT


def test_a_payment_at_an_unknown_location_is_refused(shop: Ledger) -> None:
    oid = new_id()

    with pytest.raises(LedgerError) as refused:
        shop.record(r.created(oid, location_id="tml_nowhere"))

    assert refused.value.code is Code.UNKNOWN_LOCATION
    assert refused.value.field == "location_id"
    with pytest.raises(LedgerError) as lookup:
        shop.history(oid)
    assert lookup.value.code is Code.UNKNOWN_PAYMENT


def test_a_device_connecting_at_an_unknown_location_is_refused(ledger: Ledger) -> None:
    with pytest.raises(LedgerError) as refused:
        ledger.record(r.device(location_id="tml_nowhere"))

    assert refused.value.code is Code.UNKNOWN_LOCATION
    assert ledger.status() == []


def test_a_payment_from_an_unknown_device_is_refused(shop: Ledger) -> None:
    oid = new_id()

    with pytest.raises(LedgerError) as refused:
        shop.record(r.created(oid, device_id="tmr_never_seen"))

    assert refused.value.code is Code.UNKNOWN_DEVICE
    assert refused.value.field == "device_id"
    with pytest.raises(LedgerError):
        shop.payment(oid)


# -- duplicate forwards ------------------------------------------------------------------------


def test_a_second_forward_with_a_different_payment_intent_is_flagged(shop: Ledger) -> None:
    oid = new_id()
    apply(shop, [*r.stored_payment(oid), r.forwarded(oid, "pi_first", status="succeeded")])

    result = shop.record(r.forwarded(oid, "pi_second", status="succeeded", occurred_at=r.at(125)))

    assert result.recorded is True
    payment = shop.payment(oid)
    assert payment.payment_intent_id == "pi_first"  # never silently overwritten
    assert payment.duplicate_payment_intent_ids == ["pi_second"]
    assert payment.status == "captured"
    last = shop.history(oid)[-1]
    assert last.event == "DuplicateForwardDetected"
    assert last.data["payment_intent_id"] == "pi_second"
    assert last.data["refund_amount"] == 1250
    assert stored_totals(shop) == NOTHING_STORED


def test_the_same_duplicate_reported_again_is_a_no_op(shop: Ledger) -> None:
    oid = new_id()
    apply(
        shop,
        [
            *r.stored_payment(oid),
            r.forwarded(oid, "pi_first"),
            r.forwarded(oid, "pi_second", occurred_at=r.at(125)),
        ],
    )
    history_before = len(shop.history(oid))

    result = shop.record(r.forwarded(oid, "pi_second", occurred_at=r.at(130)))

    assert result.recorded is False
    assert len(shop.history(oid)) == history_before
    assert shop.payment(oid).duplicate_payment_intent_ids == ["pi_second"]


def test_the_same_payment_intent_forwarded_again_is_a_no_op(shop: Ledger) -> None:
    oid = new_id()
    apply(shop, [*r.stored_payment(oid), r.forwarded(oid, "pi_first")])
    history_before = len(shop.history(oid))

    result = shop.record(r.forwarded(oid, "pi_first", occurred_at=r.at(200)))

    assert result.recorded is False
    assert len(shop.history(oid)) == history_before
    payment = shop.payment(oid)
    assert payment.payment_intent_id == "pi_first"
    assert payment.duplicate_payment_intent_ids == []


def test_every_further_payment_intent_is_flagged_as_another_duplicate(shop: Ledger) -> None:
    oid = new_id()
    apply(
        shop,
        [
            *r.stored_payment(oid),
            r.forwarded(oid, "pi_a", status="requires_capture"),
            r.forwarded(oid, "pi_b"),
            r.forwarded(oid, "pi_c"),
        ],
    )

    payment = shop.payment(oid)
    assert payment.payment_intent_id == "pi_a"
    assert payment.duplicate_payment_intent_ids == ["pi_b", "pi_c"]
    assert event_names(shop, oid).count("DuplicateForwardDetected") == 2
    # The original authorization is still the one that gets captured.
    shop.record(r.captured(oid, "pi_a", amount_captured=1250))
    assert shop.payment(oid).status == "captured"


def test_payments_reads_many_at_once_as_payment_reads_each(shop: Ledger) -> None:
    stored, created = new_id(), new_id()
    for record in [r.created(stored), r.collected(stored), r.confirmed(stored), r.created(created)]:
        shop.record(record)
    unknown = new_id()

    read = shop.payments([stored, created, unknown, "not-a-uuid", stored])

    assert read == {stored: shop.payment(stored), created: shop.payment(created)}
    assert read[stored].status == "stored"
    assert shop.payments([]) == {}
