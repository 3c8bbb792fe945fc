"""Facts are recorded, never refused for a rule: each broken rule is a breach on the fact.

The scenario of a reader that stored a payment beyond the location's limit (the ledger learns
it after the fact), steps arriving before the steps they imply, and the final state being that
of delivery in `occurred_at` order whatever order the facts arrived in.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.trading_day import write_jsonl
from ledger import Ledger
from projections.formats import render
from projections.read_models import ReadModels
from tests.support import records as r
from tests.support.cli import run, run_json

A = "0b8e7f52-8e0c-4c35-9d1e-5b0c1b3e2a01"
B = "0b8e7f52-8e0c-4c35-9d1e-5b0c1b3e2a02"


def _limited(ledger: Ledger, stored_max: int = 1000) -> None:
    limits = {"per_payment_max": {"usd": 5000}, "stored_amount_max": {"usd": stored_max}}
    ledger.record(r.location(limits=limits, device_limits={"stored_amount_max": {}}))
    ledger.record(r.device())


def test_a_payment_stored_beyond_the_location_limit_is_recorded_and_flagged() -> None:
    with Ledger.open("memory://") as ledger:
        _limited(ledger)
        for record in r.stored_payment(A, amount=800):
            ledger.record(record)
        b = [
            r.created(B, amount=500, occurred_at=r.at(10)),
            r.collected(B) | {"occurred_at": r.at(11)},
            r.confirmed(B, occurred_at=r.at(12), stored_at=r.at(12)),
        ]
        results = [ledger.record(record) for record in b]
        assert all(result.recorded for result in results)
        stored = ledger.payment(B)
        assert stored.status == "stored"
        assert [b["code"] for b in stored.breaches] == ["STORED_AMOUNT_LIMIT_EXCEEDED"]
        assert stored.breaches[0]["details"] == {
            "scope": "location",
            "limit": "stored_amount_max",
            "currency": "usd",
            "max": 1000,
            "used": 800,
            "remaining": 200,
        }
        (status,) = ledger.status("tml_1")
        assert status.offline_payment_amounts_by_currency == {"usd": 1300}
        assert status.stored_beyond_policy == {
            "STORED_AMOUNT_LIMIT_EXCEEDED": {"count": 1, "amounts_by_currency": {"usd": 500}}
        }
        ledger.record(r.forwarded(B, "pi_B", "requires_capture", occurred_at=r.at(120)))
        ledger.record(r.captured(B, "pi_B", 500, occurred_at=r.at(130)))
        done = ledger.payment(B)
        assert done.status == "captured"
        assert [b["code"] for b in done.breaches] == ["STORED_AMOUNT_LIMIT_EXCEEDED"]
        events = [entry.event for entry in ledger.history(B)]
        assert events == ["Created", "PaymentMethodCollected", "ConfirmedOffline", "Forwarded",
                          "Captured"]  # fmt: skip
        # A retry of the same records, later, after headroom was freed, answers the same.
        ledger.record(r.forwarded(A, "pi_A", occurred_at=r.at(100)))
        assert [ledger.record(record).recorded for record in b] == [False, False, False]
        assert ledger.payment(B).breaches == done.breaches


def test_a_card_that_breaks_a_card_rule_is_recorded_with_the_breach() -> None:
    with Ledger.open("memory://") as ledger:
        _limited(ledger)
        ledger.record(r.created(A, amount=100))
        ledger.record(r.collected(A, read_method="magnetic_stripe_track2"))
        payment = ledger.payment(A)
        assert payment.status == "collected"
        assert [b["code"] for b in payment.breaches] == ["CARD_SWIPE_NOT_AVAILABLE"]


def test_require_online_and_disabled_offline_are_breaches_of_a_stored_payment() -> None:
    with Ledger.open("memory://") as ledger:
        ledger.record(r.location(offline_enabled=False))
        ledger.record(r.device())
        for record in r.stored_payment(A, offline_behavior="require_online"):
            assert ledger.record(record).recorded
        codes = [b["code"] for b in ledger.payment(A).breaches]
        assert codes == [
            "OFFLINE_MODE_DISABLED",
            "NOT_CONNECTED_TO_INTERNET_AND_REQUIRE_ONLINE_SET",
        ]


def test_a_capture_before_any_other_step_implies_them_and_they_are_idempotent_later() -> None:
    with Ledger.open("memory://") as ledger:
        _limited(ledger)
        for record in r.stored_payment(A, amount=800):
            ledger.record(record)
        ledger.record(r.created(B, amount=500, occurred_at=r.at(10)))
        ledger.record(r.captured(B, "pi_B", 500, occurred_at=r.at(130)))
        early = ledger.payment(B)
        assert early.status == "captured"
        assert early.reported_late
        assert early.implied_steps == ["confirmed_offline", "forwarded"]
        # Stored from its creation at the latest: beyond the limit with A stored.
        assert [b["code"] for b in early.breaches] == ["STORED_AMOUNT_LIMIT_EXCEEDED"]
        assert ledger.status("tml_1")[0].offline_payment_amounts_by_currency == {"usd": 800}
        # The missing records come: recorded once, and they fix the moments.
        late = [
            r.collected(B) | {"occurred_at": r.at(11)},
            r.confirmed(B, occurred_at=r.at(12), stored_at=r.at(12)),
            r.forwarded(B, "pi_B", "requires_capture", occurred_at=r.at(120)),
        ]
        assert [ledger.record(record).recorded for record in late] == [True, True, True]
        assert [ledger.record(record).recorded for record in late] == [False, False, False]
        final = ledger.payment(B)
        assert final.status == "captured"
        assert final.implied_steps == []
        assert final.stored_at is not None and final.stored_at.isoformat() == r.at(12)
        assert final.forwarded_at is not None and final.forwarded_at.isoformat() == r.at(120)
        assert [b["code"] for b in final.breaches] == ["STORED_AMOUNT_LIMIT_EXCEEDED"]


def test_a_forward_reported_late_clears_the_breach_of_a_payment_stored_after_it() -> None:
    with Ledger.open("memory://") as ledger:
        _limited(ledger)
        for record in r.stored_payment(A, amount=800):
            ledger.record(record)
        for record in [
            r.created(B, amount=500, occurred_at=r.at(10)),
            r.collected(B) | {"occurred_at": r.at(11)},
            r.confirmed(B, occurred_at=r.at(12), stored_at=r.at(12)),
        ]:
            ledger.record(record)
        assert ledger.payment(B).breaches
        # A had been forwarded before B was stored; the report arrives now.
        ledger.record(r.forwarded(A, "pi_A", occurred_at=r.at(5)))
        assert ledger.payment(B).breaches == []
        assert [e.event for e in ledger.history(B)][-1] == "Rejudged"
        assert ledger.status("tml_1")[0].stored_beyond_policy == {}


# -- delivery order ---------------------------------------------------------------------------

PAYMENTS = 4


def _facts(seed: list[tuple[int, int, int, int]]) -> list[dict[str, Any]]:
    """Per payment: created, collected, confirmed, then forwarded or declined (or nothing),
    and a capture after a forward; on two devices, with overlapping moments. No two payments
    share a moment (each has its own tenth of a minute): facts at the same moment are ordered
    by arrival, so for them no delivery order is "the" occurred_at order."""
    facts: list[dict[str, Any]] = []
    for index, (amount, minute, outcome, device) in enumerate(seed):
        start = minute + index / 10
        oid = str(uuid.UUID(int=index + 1))
        dev = f"tmr_{device}"
        facts.append(r.created(oid, amount=amount, device_id=dev, occurred_at=r.at(start)))
        facts.append(r.collected(oid) | {"occurred_at": r.at(start + 1)})
        facts.append(r.confirmed(oid, occurred_at=r.at(start + 2), stored_at=r.at(start + 2)))
        pi = f"pi_{index}"
        if outcome == 1:
            facts.append(r.forwarded(oid, pi, "requires_capture", occurred_at=r.at(start + 7)))
            facts.append(r.captured(oid, pi, amount, occurred_at=r.at(start + 9)))
        elif outcome == 2:
            facts.append(r.declined(oid, payment_intent_id=pi, occurred_at=r.at(start + 6)))
        elif outcome == 3:
            facts.append(r.captured(oid, pi, amount, occurred_at=r.at(start + 8)))
    return facts


def _final(facts: list[dict[str, Any]]) -> tuple[Any, ...]:
    with Ledger.open("memory://") as ledger:
        _limited(ledger, stored_max=1500)
        ledger.record(r.device("tmr_2"))
        for record in facts:
            ledger.record(record)
        payments = []
        for index in range(PAYMENTS):
            state = ledger.payment(str(uuid.UUID(int=index + 1))).model_dump()
            for delivery in ("version", "reported_late"):
                state.pop(delivery)
            payments.append(state)
        status = ledger.status("tml_1")[0].to_dict()
    return tuple(payments), status


@settings(max_examples=40, deadline=None)
@given(
    seed=st.lists(
        st.tuples(st.integers(100, 900), st.integers(0, 12), st.integers(0, 3), st.integers(1, 2)),
        min_size=PAYMENTS,
        max_size=PAYMENTS,
    ),
    order=st.randoms(use_true_random=False),
)
def test_any_delivery_order_ends_in_the_state_of_occurred_at_order(
    seed: list[tuple[int, int, int, int]], order: Any
) -> None:
    facts = _facts(seed)
    in_order = sorted(facts, key=lambda f: f["occurred_at"])
    created = [f for f in facts if f["type"] == "payment.created"]
    rest = [f for f in facts if f["type"] != "payment.created"]
    order.shuffle(rest)
    assert _final(created + rest) == _final(in_order)


def test_the_report_files_the_payment_stored_beyond_the_limit_as_captured_and_flagged(
    sqlite_url: str,
) -> None:
    with Ledger.open(sqlite_url) as ledger:
        _limited(ledger)
        for record in r.stored_payment(A, amount=800):
            ledger.record(record)
        for record in [
            r.created(B, amount=500, occurred_at=r.at(10)),
            r.collected(B) | {"occurred_at": r.at(11)},
            r.confirmed(B, occurred_at=r.at(12), stored_at=r.at(12)),
            r.forwarded(B, "pi_B", "succeeded", occurred_at=r.at(120)),
            r.captured(B, "pi_B", 500, occurred_at=r.at(130)),
        ]:
            ledger.record(record)
        with ReadModels(ledger) as models:
            report = models.report(as_of=r.T0 + timedelta(hours=4))
    row = next(row for row in report.rows if row.offline_id == B)
    assert row.ledger_status == "captured"
    assert row.category != "pending_forward"
    assert row.breaches == ("STORED_AMOUNT_LIMIT_EXCEEDED",)
    assert report.stored_beyond_policy() == {"usd": 500}
    header, *lines = render(report, "csv").splitlines()
    assert header.split(",")[-1] == "breaches"
    assert any(
        line.startswith(B) and line.endswith("STORED_AMOUNT_LIMIT_EXCEEDED") for line in lines
    )


def _scenario_records() -> list[dict[str, Any]]:
    limits = {"per_payment_max": {"usd": 5000}, "stored_amount_max": {"usd": 1000}}
    return [
        r.location(limits=limits, device_limits={"stored_amount_max": {}}),
        r.device(),
        *r.stored_payment(A, amount=800),
        r.created(B, amount=500, occurred_at=r.at(10)),
        r.collected(B) | {"occurred_at": r.at(11)},
        r.confirmed(B, occurred_at=r.at(12), stored_at=r.at(12)),
        r.forwarded(B, "pi_B", "requires_capture", occurred_at=r.at(120)),
        r.captured(B, "pi_B", 500, occurred_at=r.at(130)),
    ]


def test_ingest_json_lists_the_flagged_facts_beside_the_rejected_and_exits_0(
    tmp_path: Path, sqlite_url: str
) -> None:
    path = tmp_path / "day.jsonl"
    write_jsonl(path, _scenario_records())

    first = run_json("ingest", str(path), "--db", sqlite_url)
    assert first["rejected"] == [] and first["accepted"] == 10
    assert first["flagged"] == [
        {
            "line": 8,
            "code": "STORED_AMOUNT_LIMIT_EXCEEDED",
            "message": first["flagged"][0]["message"],
        }
    ]
    assert "10.00 USD" in first["flagged"][0]["message"]
    again = run_json("ingest", str(path), "--db", sqlite_url)  # re-ingesting is a no-op
    assert (again["accepted"], again["duplicates"], again["flagged"]) == (0, 10, [])

    status = run_json("status", "--db", sqlite_url)
    assert status["locations"][0]["stored_beyond_policy"] == {}  # B was forwarded since
    history = run("history", B, "--db", sqlite_url, "--json")
    assert "STORED_AMOUNT_LIMIT_EXCEEDED" in history.stdout


def test_stripe_s_word_on_a_payment_created_online_implies_no_storage() -> None:
    with Ledger.open("memory://") as ledger:
        _limited(ledger)
        ledger.record(r.created(A, amount=800, payment_intent_id="pi_online"))
        assert ledger.record(r.forwarded(A, "pi_online", "succeeded")).recorded
        payment = ledger.payment(A)
        assert (payment.status, payment.stored_at, payment.implied_steps) == ("captured", None, [])
        assert ledger.status("tml_1")[0].offline_payments_count == 0
        assert [e.event for e in ledger.history(A)] == ["Created", "Forwarded"]
