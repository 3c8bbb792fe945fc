"""What-if replays: the limits in force reproduce the recorded outcomes; proposed limits
change them the way the report says."""

from __future__ import annotations

import tempfile
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import Ledger
from ledger.errors import NotFound
from ledger.identity import location_id as location_stream_id
from ledger.limits import LIMIT_CODES, ResolvedLimits, Sale, Totals
from ledger.what_if import ProposedLimits, compare, histories, replay
from projections.read_models import ReadModels
from tests.support import records as r
from tests.support.days import A, B, C, record_day
from tests.support.generators import Scenario, apply_one_by_one, scenarios


@settings(deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_replaying_the_limits_in_force_reproduces_the_recorded_outcomes(
    scenario: Scenario,
) -> None:
    """Also: the offline sales read model gives the histories the location streams give."""
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'ledger.db'}"
        with Ledger.open(url, create=True) as ledger:
            apply_one_by_one(ledger, scenario.all_records)
            replayed = 0
            for history in histories(ledger.store):
                again = replay(history, ledger.policy, history.config, refused_go_online=False)
                assert len(again.judged) == len(history.sales)
                for judged in again.judged:
                    assert judged.breaches == judged.sale.breaches
                    payment = ledger.payment(judged.sale.offline_id)
                    recorded = {b["code"] for b in payment.breaches if b["code"] in LIMIT_CODES}
                    assert judged.breaches == tuple(sorted(recorded))
                    replayed += 1
            stored = [oid for oid in scenario.offline_ids if _was_stored(ledger, oid)]
            assert replayed == len(stored)
            # The read model `what-if` reads holds the same histories as the streams.
            with ReadModels(ledger) as models:
                from_rows = {h.location_id: h for h in models.sale_histories()}
            assert from_rows == {h.location_id: h for h in histories(ledger.store)}


def _was_stored(ledger: Ledger, offline_id: str) -> bool:
    try:
        return ledger.payment(offline_id).stored_at is not None
    except NotFound:  # never created (its creation was refused)
        return False


def test_a_lower_limit_refuses_more_sales_and_avoids_a_decline() -> None:
    with Ledger.open("memory://") as ledger:
        record_day(ledger)
        (history,) = histories(ledger.store)
        assert [sale.breaches for sale in history.sales] == [
            (),
            ("STORED_AMOUNT_LIMIT_EXCEEDED",),
            ("STORED_AMOUNT_LIMIT_EXCEEDED",),
        ]
        proposed = ProposedLimits.model_validate(
            {"limits": {"per_payment_max": {"usd": 5000}, "stored_amount_max": {"usd": 600}}}
        )
        (usd,) = compare(history, ledger.policy, proposed, top=1)
    # Proposed: A (800) is refused and goes online, so B (500) and C (300) fit in 600 in
    # turn? B fits (500), C would bring it to 800: refused.
    assert (usd.sales, usd.refused_recorded, usd.refused_proposed) == (3, 2, 2)
    assert (usd.newly_refused, usd.newly_offline) == (1, 1)
    assert (usd.declines_avoided, usd.declines_added) == (1, 0)
    assert (usd.at_risk_recorded, usd.at_risk_proposed) == (800, 0)
    assert (usd.peak_amount_recorded, usd.peak_count_recorded) == (1600, 3)
    assert (usd.peak_amount_proposed, usd.peak_count_proposed) == (500, 1)
    assert [change.sale.offline_id for change in usd.changes] == [A]


def test_the_same_limits_change_nothing() -> None:
    with Ledger.open("memory://") as ledger:
        record_day(ledger)
        (history,) = histories(ledger.store)
        config = history.config
        same = ProposedLimits.model_validate(
            {"limits": config["limits"], "device_limits": config["device_limits"]}
        )
        (usd,) = compare(history, ledger.policy, same)
    assert (usd.newly_refused, usd.newly_offline, usd.changes) == (0, 0, [])
    assert usd.to_dict()["refused"] == {"recorded": 2, "proposed": 2}


@settings(deadline=None, max_examples=200)
@given(
    currency=st.sampled_from(["usd", "eur", "gbp"]),
    amount=st.integers(1, 60_000),
    stored=st.integers(0, 250_000),
    count=st.integers(0, 120),
    device_stored=st.integers(0, 120_000),
    device_count=st.integers(0, 50),
)
def test_the_replays_judging_gives_the_ledgers_codes(
    currency: str, amount: int, stored: int, count: int, device_stored: int, device_count: int
) -> None:
    """`ResolvedLimits` (the limits resolved once, plain integers per sale) answers with the
    codes of `Policy.limit_violations` (the ledger's check at a confirmation), whatever the
    totals: a currency configured or not, under or over each limit."""
    with Ledger.open("memory://") as ledger:
        ledger.record(r.location())
        location = ledger.store.repository.get(location_stream_id("tml_1"))
        totals = Totals(
            {currency: stored}, count, {currency: device_stored} if device_stored else {},
            device_count,
        )  # fmt: skip
        sale = Sale(amount, currency, "tmr_1", "prefer_online", datetime.fromisoformat(r.at(0)))
        expected = {str(v.code) for v in ledger.policy.limit_violations(sale, location, totals)}
        resolved = ResolvedLimits.of(ledger.policy, location, currency)
        assert resolved.codes(amount, stored, count, device_stored, device_count) == tuple(
            sorted(expected)
        )


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_the_read_model_gives_the_streams_histories_on_each_database(
    kind: str, request: pytest.FixtureRequest
) -> None:
    """The offline sales read model `what-if` reads, on SQLite and PostgreSQL: the sales with
    their breaches, a decline, a forward, a late reconfiguration, as the streams have them."""
    url = str(request.getfixturevalue(f"{kind}_url"))
    with Ledger.open(url) as ledger:
        record_day(ledger)
        ledger.record(r.forwarded(B, "pi_b", "succeeded", occurred_at=r.at(50)))
        ledger.record(r.location(limits={"per_payment_max": {"usd": 900}}, occurred_at=r.at(60)))
        with ReadModels(ledger) as models:
            (from_rows,) = models.sale_histories()
        (from_streams,) = histories(ledger.store)
    assert from_rows == from_streams
    assert from_rows.config["limits"]["per_payment_max"] == {"usd": 900}
    assert [(s.offline_id, s.released_as) for s in from_rows.sales] == [
        (A, "declined"),
        (B, "forwarded"),
        (C, None),
    ]
