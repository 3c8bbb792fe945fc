"""Generated record sequences and the checks shared by the property, CLI and crash tests.

- `scenarios()`: a hypothesis strategy of random ledgers-in-use: a few locations with limits,
  their devices, and many payments each taking a random walk through the lifecycle, with the
  records of all payments interleaved, some repeated and some out of order.
- `crash_day_records()`: a large day from the one day generator (`adapters.trading_day.day`),
  set up so that its breaches come out the same however often the file is applied again (so
  "applied exactly once" is checkable by comparing with a clean run).
- `apply_one_by_one`, `snapshot`, `stored_totals_by_payment`,
  `assert_status_matches_payments`, `assert_within_limits`: applying records and comparing what
  the ledger says.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from hypothesis import strategies as st

from adapters.trading_day import Record, numbered_offline_id
from adapters.trading_day.day import Day, day_records
from adapters.trading_day.stores import STORES
from ledger import Ledger, LedgerError
from ledger.errors import Code, NotFound
from tests.support import records as r
from tests.support.outcomes import outcome_of

CURRENCIES = ("usd", "eur", "jpy")
# Per-payment maxima and the scale of amounts, per currency (JPY has no minor unit).
PER_PAYMENT_MAX = {"usd": 5_000, "eur": 5_000, "jpy": 50_000}
AMOUNT_MAX = {"usd": 6_000, "eur": 6_000, "jpy": 60_000}  # some payments exceed the maximum
STATUSES = frozenset(
    {"created", "collected", "stored", "forwarded", "captured", "declined", "canceled"}
)


# -- outcomes and snapshots -------------------------------------------------------------------


def apply_one_by_one(ledger: Ledger, records: Iterable[Record]) -> list[str]:
    outcomes = []
    for record in records:
        try:
            outcomes.append(outcome_of(ledger.record(record)))
        except LedgerError as error:
            outcomes.append(outcome_of(error))
    return outcomes


def payment_states(ledger: Ledger, offline_ids: Iterable[str]) -> dict[str, dict[str, Any] | None]:
    """Every payment's state (None for an id the ledger never accepted a creation for)."""
    states: dict[str, dict[str, Any] | None] = {}
    for oid in offline_ids:
        try:
            states[oid] = ledger.payment(oid).model_dump(mode="json")
        except NotFound:
            states[oid] = None
    return states


def histories(
    ledger: Ledger, offline_ids: Iterable[str], *, with_recorded_at: bool = True
) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for oid in offline_ids:
        try:
            entries = ledger.history(oid)
        except NotFound:
            found[oid] = []
            continue
        exclude = None if with_recorded_at else {"recorded_at"}
        found[oid] = [entry.model_dump(mode="json", exclude=exclude) for entry in entries]
    return found


def snapshot(
    ledger: Ledger, offline_ids: Iterable[str], *, with_recorded_at: bool = True
) -> dict[str, Any]:
    """What the ledger says about everything: status, every payment's state and history."""
    ids = list(offline_ids)
    return {
        "status": [loc.to_dict() for loc in ledger.status()],
        "payments": payment_states(ledger, ids),
        "histories": histories(ledger, ids, with_recorded_at=with_recorded_at),
    }


# -- the stored totals, recomputed from the payments ------------------------------------------


@dataclass
class Totals:
    count: int = 0
    amounts: Counter[str] = field(default_factory=Counter)

    def add(self, currency: str, amount: int) -> None:
        self.count += 1
        self.amounts[currency] += amount

    def by_currency(self) -> dict[str, int]:
        return {c: v for c, v in sorted(self.amounts.items()) if v}


def stored_totals_by_payment(
    ledger: Ledger, offline_ids: Iterable[str]
) -> tuple[dict[str, Totals], dict[tuple[str, str], Totals]]:
    """Stored totals per location and per (location, device), summed over the payments whose
    own state is "stored", read one by one with `ledger.payment`."""
    by_location: dict[str, Totals] = defaultdict(Totals)
    by_device: dict[tuple[str, str], Totals] = defaultdict(Totals)
    for oid in offline_ids:
        try:
            state = ledger.payment(oid)
        except NotFound:
            continue
        assert state.status in STATUSES, state.status
        if state.status == "stored":
            by_location[state.location_id].add(state.currency, state.amount)
            by_device[(state.location_id, state.device_id)].add(state.currency, state.amount)
    return by_location, by_device


def assert_status_matches_payments(ledger: Ledger, offline_ids: Sequence[str]) -> None:
    """Each location's and device's stored count and amounts equal the sum over the payments
    that are stored there."""
    by_location, by_device = stored_totals_by_payment(ledger, offline_ids)
    statuses = ledger.status()
    assert set(by_location) <= {loc.location_id for loc in statuses}
    for loc in statuses:
        expected = by_location.get(loc.location_id, Totals())
        assert (loc.offline_payments_count, loc.offline_payment_amounts_by_currency) == (
            expected.count,
            expected.by_currency(),
        ), f"location {loc.location_id}"
        listed = {d.device_id: d for d in loc.devices}
        storing = {dev for (where, dev) in by_device if where == loc.location_id}
        assert storing <= set(listed), f"devices storing at {loc.location_id} are not listed"
        for device_id, device in listed.items():
            assert device.location_id == loc.location_id
            expected = by_device.get((loc.location_id, device_id), Totals())
            assert (device.offline_payments_count, device.offline_payment_amounts_by_currency) == (
                expected.count,
                expected.by_currency(),
            ), f"device {device_id} at {loc.location_id}"


def assert_within_limits(ledger: Ledger, configured: dict[str, Record]) -> None:
    """The payments stored without a breach of a stored limit stay within it.

    A payment stored beyond a limit is a fact and is recorded, flagged with the limit's code;
    every other stored payment was within the limit when it was stored, by `occurred_at`, so
    together they are within it now. `configured` maps location_id to the
    location.configured record that set its limits."""
    for loc in ledger.status():
        record = configured[loc.location_id]
        limits = record.get("limits", {})
        device_limits = record.get("device_limits", {})
        _within(
            limits,
            loc.offline_payments_count,
            loc.offline_payment_amounts_by_currency,
            loc.stored_beyond_policy,
            f"location {loc.location_id}",
        )
        for device in loc.devices:
            _within(
                device_limits,
                device.offline_payments_count,
                device.offline_payment_amounts_by_currency,
                device.stored_beyond_policy,
                f"device {device.device_id} at {loc.location_id}",
            )


def _within(
    limits: Record, count: int, amounts: dict[str, int], beyond: dict[str, Any], where: str
) -> None:
    count_max = limits.get("stored_count_max")
    if count_max is not None:
        flagged = beyond.get("OFFLINE_PAYMENTS_DATABASE_TOO_LARGE", {"count": 0})["count"]
        assert count - flagged <= count_max, f"{where} stores {count} payments, limit {count_max}"
    over = beyond.get("STORED_AMOUNT_LIMIT_EXCEEDED", {"amounts_by_currency": {}})
    for currency, maximum in limits.get("stored_amount_max", {}).items():
        stored = amounts.get(currency, 0) - over["amounts_by_currency"].get(currency, 0)
        assert stored <= maximum, f"{where} stores {stored} {currency}, limit {maximum}"


# -- random scenarios (hypothesis) ------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    locations: dict[str, Record]  # location_id -> its location.configured record
    setup: list[Record]  # locations, then devices
    records: list[Record]  # the payments' records, interleaved and perturbed
    offline_ids: list[str]

    @property
    def all_records(self) -> list[Record]:
        return self.setup + self.records


@st.composite
def location_config(draw: st.DrawFn, location_id: str) -> Record:
    currencies = sorted(draw(st.sets(st.sampled_from(CURRENCIES), min_size=1)))
    stored_amount_max: dict[str, int] = {}
    device_amount_max: dict[str, int] = {}
    for currency in currencies:
        scale = PER_PAYMENT_MAX[currency]
        if draw(st.booleans()):
            stored_amount_max[currency] = draw(st.integers(scale // 4, scale * 2))
        if draw(st.booleans()):
            device_amount_max[currency] = draw(st.integers(scale // 4, scale * 2))
    limits: Record = {
        "per_payment_max": {c: PER_PAYMENT_MAX[c] for c in currencies},
        "stored_amount_max": stored_amount_max,
    }
    count_max = draw(st.none() | st.integers(1, 6))
    if count_max is not None:
        limits["stored_count_max"] = count_max
    device_limits: Record = {"stored_amount_max": device_amount_max}
    device_count_max = draw(st.none() | st.integers(1, 4))
    if device_count_max is not None:
        device_limits["stored_count_max"] = device_count_max
    return r.location(
        location_id,
        offline_enabled=draw(st.sampled_from([True] * 7 + [False])),
        sca_required=draw(st.booleans()),
        limits=limits,
        device_limits=device_limits,
    )


# The steps a payment's walk is made of after its normal start (created, collected,
# confirmed), repeated to weigh the draw: mostly forwarding and what follows it.
STEPS = (
    "forwarded",
    "forwarded",
    "forwarded",
    "declined",
    "captured",
    "captured",
    "canceled",
    "forward_failed",
    "collected",
    "confirmed",
    "created",
)


@st.composite
def payment_walk(
    draw: st.DrawFn, number: int, locations: dict[str, Record], devices: dict[str, list[str]]
) -> list[Record]:
    """The records of one payment, in the order its POS would send them."""
    oid = numbered_offline_id(number)
    location_id = draw(st.sampled_from(sorted(locations)))
    # Mostly a device of this location; sometimes one that never connected here.
    others = [d for loc in sorted(locations) if loc != location_id for d in devices[loc]]
    device_id = draw(st.sampled_from(devices[location_id] * 3 + others))
    # Mostly a currency the location takes offline.
    offline_currencies = sorted(locations[location_id]["limits"]["per_payment_max"])
    currency = draw(st.sampled_from(offline_currencies * 3 + list(CURRENCIES)))
    amount = draw(st.integers(1, AMOUNT_MAX[currency]))
    created = r.created(
        oid,
        device_id=device_id,
        location_id=location_id,
        amount=amount,
        currency=currency,
        capture_method=draw(st.sampled_from(["automatic", "manual"])),
        offline_behavior=draw(
            st.sampled_from(["prefer_online"] * 8 + ["force_offline", "require_online"])
        ),
        metadata={"order": f"O-{number}"},
        occurred_at=r.at(number),
    )
    pis = (f"pi_{number}_a", f"pi_{number}_b")
    read_methods = st.sampled_from(
        ["contact_emv"] * 12 + ["contactless_emv"] * 2 + ["magnetic_stripe_track2"]
    )

    def card(variant: int) -> Record:
        return r.collected(oid, last4=f"{4242 + variant:04d}", read_method=draw(read_methods)) | {
            "occurred_at": r.at(number + 1)
        }

    def confirmed(variant: int) -> Record:
        return r.confirmed(oid, occurred_at=r.at(number + 2), stored_at=r.at(number + 2 + variant))

    start = [created, card(0), confirmed(0)]
    walk = start[: draw(st.sampled_from([3, 3, 3, 3, 3, 2, 1]))]
    for index, step in enumerate(draw(st.lists(st.sampled_from(STEPS), max_size=4))):
        minute = number + 10 + index
        pi = draw(st.sampled_from(pis))
        if step == "forwarded":
            status = draw(st.sampled_from(["requires_capture", "succeeded", "processing"]))
            walk.append(r.forwarded(oid, pi, status, occurred_at=r.at(minute)))
        elif step == "declined":
            pi_or_none = draw(st.sampled_from([pi, None]))
            code = draw(st.sampled_from(["insufficient_funds", "do_not_honor"]))
            walk.append(
                r.declined(
                    oid, payment_intent_id=pi_or_none, decline_code=code, occurred_at=r.at(minute)
                )
            )
        elif step == "captured":
            captured = draw(st.sampled_from([amount, max(amount // 2, 1), amount + 1]))
            walk.append(r.captured(oid, pi, captured, occurred_at=r.at(minute)))
        elif step == "canceled":
            reason = draw(st.sampled_from(["requested_by_customer", "voided"]))
            walk.append(r.canceled(oid, reason=reason, occurred_at=r.at(minute)))
        elif step == "forward_failed":
            walk.append(r.forward_failed(oid, occurred_at=r.at(minute)))
        elif step == "collected":  # the customer tried another card
            walk.append(card(1))
        elif step == "confirmed":  # a confirmation with another stored_at: a conflict
            walk.append(confirmed(1))
        else:  # a creation that differs from the first: a conflict
            walk.append(created | {"amount": amount + 1})
    if draw(st.booleans()):  # this POS names its records with idempotency keys
        walk = [record | {"idempotency_key": f"{oid}/{i}"} for i, record in enumerate(walk)]
    return walk


@st.composite
def scenarios(draw: st.DrawFn, max_payments: int = 16) -> Scenario:
    location_ids = [f"tml_{n}" for n in range(draw(st.integers(1, 2)))]
    locations = {loc: draw(location_config(loc)) for loc in location_ids}
    devices = {
        loc: [f"tmr_{loc[4:]}_{k}" for k in range(draw(st.integers(1, 3)))] for loc in location_ids
    }
    setup: list[Record] = list(locations.values())
    for loc in location_ids:
        for device_id in devices[loc]:
            setup.append(r.device(device_id, loc))
    count = draw(st.integers(1, max_payments))
    walks = [draw(payment_walk(n, locations, devices)) for n in range(1, count + 1)]
    # Interleave the walks, keeping each payment's own order...
    tokens = draw(st.permutations([n for n, walk in enumerate(walks) for _ in walk]))
    position = [0] * len(walks)
    records: list[Record] = []
    for n in tokens:
        records.append(walks[n][position[n]])
        position[n] += 1
    # ...then repeat some records (a retry, a redelivered webhook: the copy may land before
    # the original, i.e. out of order) and swap some neighbours.
    for kind, i, j in draw(
        st.lists(
            st.tuples(
                st.sampled_from(["repeat", "swap"]), st.integers(0, 10_000), st.integers(0, 10_000)
            ),
            max_size=12,
        )
    ):
        if kind == "repeat":
            records.insert(j % (len(records) + 1), records[i % len(records)])
        elif len(records) > 1:
            i %= len(records) - 1
            records[i], records[i + 1] = records[i + 1], records[i]
    # A repeated setup record now and then (a device reconnecting, a config re-sent), and a
    # device connecting at another location than its own, from then on allowed to store there.
    if draw(st.booleans()):
        records.insert(draw(st.integers(0, len(records))), draw(st.sampled_from(setup)))
    if len(location_ids) > 1 and draw(st.booleans()):
        device_id = draw(st.sampled_from(devices[location_ids[0]]))
        moved = r.device(device_id, location_ids[1], occurred_at=r.at(-10))
        records.insert(draw(st.integers(0, len(records))), moved)
    return Scenario(
        locations, setup, records, [numbered_offline_id(n) for n in range(1, count + 1)]
    )


# -- a day for the crash tests ----------------------------------------------------------------

CRASH_FULL_COUNT_MAX = 40


# `tml_full`'s first sales never get forwarded, so it fills up early and never frees a slot;
# at `tml_open` some cards are swiped. Both are US stores of the benchmarks' chain, on UTC.
_CHAIN_STORE = STORES[0]
CRASH_STORES = (
    replace(
        _CHAIN_STORE, location_id="tml_open", utc_offset_hours=0, weight=0.85, swipe_share=0.03
    ),
    replace(
        _CHAIN_STORE,
        location_id="tml_full",
        utc_offset_hours=0,
        weight=0.15,
        stored_count_max=CRASH_FULL_COUNT_MAX,
        stuck=CRASH_FULL_COUNT_MAX,
    ),
)


def crash_day_records(payments: int, seed: int = 7) -> Iterator[Record]:
    """A day of `payments` payments from the day generator (`adapters.trading_day.day`), whose
    breaches stay the same however often the file is applied again, so that "every record was
    applied exactly once" can be checked by comparing with one clean run:
    - `tml_full` first stores `CRASH_FULL_COUNT_MAX` payments whose forwarding fails twice, so
      it stays full: every later payment there is stored beyond its count limit (a fact,
      flagged OFFLINE_PAYMENTS_DATABASE_TOO_LARGE), then forwarded;
    - at `tml_open` some cards are swiped (flagged CARD_SWIPE_NOT_AVAILABLE), and a few are
      expired or ask for an online PIN, flagged likewise.
    Records of payments in flight interleave.
    """
    return day_records(Day(payments, seed, stores=CRASH_STORES))


def payment_ids_in(records: Iterable[Record]) -> list[str]:
    """The offline_ids of a sequence of records, in order of first appearance."""
    seen: dict[str, None] = {}
    for record in records:
        if "offline_id" in record:
            seen.setdefault(str(record["offline_id"]), None)
    return list(seen)


LIMIT_CODES = frozenset(
    {
        str(Code.STORED_AMOUNT_LIMIT_EXCEEDED),
        str(Code.OFFLINE_PAYMENTS_DATABASE_TOO_LARGE),
    }
)
