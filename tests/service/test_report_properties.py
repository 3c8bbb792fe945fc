"""Properties of the read models and the reconciliation report over random histories.

Each example is a random ledger in use (`tests.support.generators.scenarios`) plus random Stripe
observations about its payments and about strangers, applied in random chunks with the read
models refreshed in between (so projections catch up from many positions). Whatever happens:

(a) every offline_id the ledger knows appears in exactly one row;
(b) the summary's totals equal the sums over the rows, and money at risk equals the rows' sum;
(c) read models rebuilt from zero give the same report as the live ones;
(d) the payments read model agrees with the ledger's own aggregates.
"""

from __future__ import annotations

import tempfile
from collections import Counter, defaultdict
from datetime import timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.trading_day import numbered_offline_id
from ledger import Ledger
from ledger.errors import NotFound
from ledger.observations import (
    BalanceTransactionObservation,
    Observation,
    PaymentIntentObservation,
)
from projections.read_models import ReadModels
from projections.report import Report
from tests.support import records as r
from tests.support.generators import Scenario, scenarios

AS_OF = r.T0 + timedelta(hours=30)
STATUSES = ("succeeded", "requires_capture", "canceled", "requires_payment_method", "processing")


@st.composite
def observations(draw: st.DrawFn, count: int) -> list[Observation]:
    """What Stripe might say: about the scenario's payments (by metadata or by the ids the
    generators use, pi_1/pi_2), about strangers, with right and wrong amounts."""
    found: list[Observation] = []
    for n in range(draw(st.integers(0, 12))):
        number = draw(st.integers(1, count + 3))  # some name no known payment: orphans
        payment_intent_id = draw(st.sampled_from(["pi_1", "pi_2", f"pi_x{n}"]))
        metadata = draw(
            st.sampled_from(
                [numbered_offline_id(number), numbered_offline_id(number).upper(), None]
            )
        )
        currency = draw(st.sampled_from(["usd", "eur", "jpy"]))
        amount = draw(st.integers(1, 7_000))
        if draw(st.booleans()):
            found.append(
                PaymentIntentObservation(
                    source="api",
                    payment_intent_id=payment_intent_id,
                    offline_id=metadata,
                    amount=amount,
                    currency=currency,
                    status=draw(st.sampled_from(STATUSES)),
                    offline_collected=draw(st.sampled_from([True, None])),
                )
            )
        else:
            found.append(
                BalanceTransactionObservation(
                    source="report_file",
                    balance_transaction_id=f"txn_{n}",
                    payment_intent_id=payment_intent_id,
                    offline_id=metadata,
                    currency=currency,
                    gross=draw(st.sampled_from([amount, -amount])),
                    reporting_category=draw(st.sampled_from(["charge", "refund", None])),
                )
            )
    return found


@st.composite
def histories(draw: st.DrawFn) -> tuple[Scenario, list[Observation], list[int]]:
    scenario = draw(scenarios(max_payments=10))
    seen = draw(observations(len(scenario.offline_ids)))
    cuts = draw(st.lists(st.integers(0, len(scenario.records)), max_size=4))
    return scenario, seen, sorted(set(cuts))


def check(report: Report, ledger_statuses: dict[str, str]) -> None:
    counted = Counter(row.offline_id for row in report.rows if row.ledger_status is not None)
    assert set(counted) == set(ledger_statuses) and set(counted.values()) == {1}
    assert {
        row.offline_id: row.ledger_status for row in report.rows if row.ledger_status is not None
    } == ledger_statuses
    for category, by_currency in report.summary().items():
        for currency, totals in by_currency.items():
            rows = [
                row
                for row in report.rows
                if row.category == category and (row.risk_currency or "") == currency
            ]
            amounts = [
                row.amount if row.amount is not None else row.stripe_amount or 0 for row in rows
            ]
            assert (totals.count, totals.amount) == (len(rows), sum(amounts))
    at_risk: dict[str, int] = defaultdict(int)
    for row in report.rows:
        if row.amount_at_risk:
            at_risk[row.risk_currency or ""] += row.amount_at_risk
    assert report.at_risk() == dict(at_risk)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(histories())
def test_reports_hold_their_properties_and_rebuilds_agree(
    history: tuple[Scenario, list[Observation], list[int]],
) -> None:
    scenario, seen, cuts = history
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'ledger.db'}"
        with Ledger.open(url) as ledger, ReadModels(ledger) as read_models:
            ledger.record_many(scenario.setup)
            start = 0
            for cut in [*cuts, len(scenario.records)]:
                ledger.record_many(scenario.records[start:cut])
                read_models.refresh()  # catch up from a position inside the history
                start = cut
            ledger.observe(seen)
            statuses = _statuses(ledger, scenario)
            if not statuses and not seen:
                return  # nothing to report: covered by the scenario tests
            live = read_models.report(AS_OF)
            check(live, statuses)
            assert _read_model_totals(read_models) == _ledger_totals(ledger)
            read_models.rebuild()
            assert read_models.report(AS_OF) == live


def _statuses(ledger: Ledger, scenario: Scenario) -> dict[str, str]:
    """The aggregates' own status of every payment that exists."""
    found = {}
    for number in scenario.offline_ids:
        try:
            found[number] = ledger.payment(number).status
        except NotFound:  # every creation of it was refused
            continue
    return found


Totals = dict[tuple[str, str], tuple[int, dict[str, int]]]  # (location, device) -> count, amounts


def _read_model_totals(read_models: ReadModels) -> Totals:
    totals: Totals = {}
    for t in read_models.stored_totals():
        count, amounts = totals.get((t.location_id, t.device_id), (0, {}))
        totals[(t.location_id, t.device_id)] = (count + t.count, amounts | {t.currency: t.amount})
    return totals


def _ledger_totals(ledger: Ledger) -> Totals:
    """The same, from the location aggregates (`status`): the limits' own counts."""
    return {
        (location.location_id, device.device_id): (
            device.offline_payments_count,
            device.offline_payment_amounts_by_currency,
        )
        for location in ledger.status()
        for device in location.devices
        if device.offline_payments_count
    }
