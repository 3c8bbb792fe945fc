"""What-if: replay the offline sales a location stored against proposed limits.

The domain side, in `ledger/` rather than `projections/`: the one faithful source is the
location's own stream, where every confirmation was recorded as `PaymentStored` (device,
currency, amount, the codes of the rules it broke, its moment) and every forward, decline or
cancel as `PaymentReleased`, in the same transaction as the payment's own event. The read models
are built from the same facts but later and per payment; replaying the location streams needs
no projection to be current and reads nothing but the event store.

The sales are judged in the order the ledger judges them: by `occurred_at`, a release at the
same moment before a store, payments stored at the same moment in their order of arrival. Each
is judged by `Policy.limit_violations`, the very check the ledger runs at a confirmation, against
the stored totals of its location and device at that moment. Replaying "as recorded" counts a
sale that broke a limit as stored anyway (a fact is recorded whatever it breaks), which is what
the ledger did, so the limits in force reproduce the recorded breaches; replaying "as proposed"
sends a refused sale online instead (it leaves nothing stored), which is what the proposed
limits would have changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from ledger import wire
from ledger.event_store import EventStore
from ledger.identity import location_id as location_stream_id
from ledger.limits import LIMIT_CODES, Policy, ResolvedLimits
from ledger.location import Location

_PAGE = 500


class ProposedLimits(BaseModel):
    """The limits to replay against: the `limits`, `device_limits` and (optionally)
    `currencies` of a `location.configured` record, as a location's configuration holds them."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    currencies: list[wire.Currency] | None = None
    limits: wire.LocationLimits = wire.LocationLimits()
    device_limits: wire.DeviceLimits = wire.DeviceLimits()

    def applied_to(self, config: dict[str, Any]) -> dict[str, Any]:
        """A location's configuration with these limits in place of its own (and its
        currencies, when these name them)."""
        proposed = self.model_dump(
            mode="json", exclude={"currencies"} if self.currencies is None else set()
        )
        return {**config, **proposed}


def halved(config: dict[str, Any]) -> ProposedLimits:
    """A location's own limits with its stored-amount limits (location and device) halved:
    the proposal the demo and the benchmark replay."""
    limits, device_limits = config["limits"], config["device_limits"]

    def half(maxima: dict[str, int]) -> dict[str, int]:
        return {currency: max(amount // 2, 1) for currency, amount in maxima.items()}

    return ProposedLimits.model_validate(
        {
            "currencies": config.get("currencies"),
            "limits": {**limits, "stored_amount_max": half(limits["stored_amount_max"])},
            "device_limits": {
                **device_limits,
                "stored_amount_max": half(device_limits["stored_amount_max"]),
            },
        }
    )


@dataclass(slots=True)
class StoredSale:
    """One sale a location stored offline, as its stream recorded it. Moments are whole
    microseconds since the Unix epoch (UTC): a replay sorts and compares tens of thousands of
    them, which costs a third of the time as aware datetimes."""

    offline_id: str
    device_id: str
    currency: str
    amount: int
    stored_us: int
    arrival: int  # orders the sales stored at the same moment
    breaches: tuple[str, ...]  # the limit codes it was (finally) recorded with
    released_us: int | None = None
    released_as: str | None = None  # forwarded, declined or canceled

    @property
    def stored_at(self) -> datetime:
        return moment_of(self.stored_us)


@dataclass(slots=True)
class History:
    """A location's configuration (its last: a replay judges the whole history by one set of
    limits) and the sales it stored, in arrival order. The ledger forgets a released sale
    `LATE_WINDOW` after the newest moment it knows; the replay keeps every one, so a fact that
    arrived later than that may have been judged against less than the replay counts."""

    location_id: str
    configured_at: datetime
    config: dict[str, Any]
    sales: list[StoredSale]


def histories(store: EventStore, location_id: str | None = None) -> Iterator[History]:
    """Each location's stored sales, read from its stream (every location, or one)."""
    if location_id is not None:
        found = _history(store, location_stream_id(location_id))
        if found is not None:
            yield found
        return
    start: int | None = None
    while True:
        page = store.recorder.select_notifications(
            start=start, limit=_PAGE, topics=[Location.Configured.TOPIC], inclusive_of_start=False
        )
        if not page:
            return
        for notification in page:
            history = _history(store, UUID(str(notification.originator_id)))
            if history is not None:
                yield history
        start = page[-1].id


def _history(store: EventStore, stream_id: UUID) -> History | None:
    sales: dict[str, StoredSale] = {}
    arrivals = 0
    history: History | None = None
    for event in store.events.get(stream_id):
        if isinstance(event, Location.Configured):
            history = History(event.location_id, event.occurred_at, dict(event.config), [])
        elif isinstance(event, Location.Reconfigured):
            assert history is not None
            history.config = dict(event.config)
        elif isinstance(event, Location.PaymentStored):
            sales[event.offline_id] = StoredSale(
                event.offline_id,
                event.device_id,
                event.currency,
                event.amount,
                micros(event.occurred_at),
                arrivals,
                limit_codes(event.breaches),
            )
            arrivals += 1
        elif isinstance(event, Location.BreachesChanged):
            sales[event.offline_id].breaches = limit_codes(event.breaches)
        elif isinstance(event, Location.PaymentReleased):
            sale = sales[event.offline_id]
            sale.released_us, sale.released_as = micros(event.occurred_at), event.reason
        elif isinstance(event, Location.MomentRestated):
            sale = sales[event.offline_id]
            if event.which == "stored":
                sale.stored_us = micros(event.occurred_at)
            else:
                sale.released_us = micros(event.occurred_at)
    if history is not None:
        history.sales = list(sales.values())
    return history


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def micros(moment: datetime) -> int:
    """A moment as whole microseconds since the Unix epoch."""
    return (moment - _EPOCH) // _MICROSECOND


def moment_of(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def limit_codes(breaches: Iterable[str]) -> tuple[str, ...]:
    return tuple(code for code in breaches if code in LIMIT_CODES)


@dataclass(slots=True)
class Judged:
    """A sale's outcome under the replayed limits: the limit codes it breaks (none: taken
    offline within them)."""

    sale: StoredSale
    breaches: tuple[str, ...]


@dataclass(slots=True)
class Peak:
    """The most a location held stored at once in one currency, and in count; `series` is
    the stored amount after each store and release, at its moment in microseconds."""

    amount: int = 0
    count: int = 0
    series: list[tuple[int, int]] = field(default_factory=list)


@dataclass(slots=True)
class Replay:
    judged: list[Judged]
    peaks: dict[str, Peak]  # per currency; the count is of the whole location


_STORE, _RELEASE = 1, 0  # a release sorts before a store at the same moment
_BEFORE_ALL, _AFTER_ALL = -(1 << 62), 1 << 62  # microseconds: no `since`, no `until`
_ORDER = itemgetter(0, 1, 2)


def _steps(sales: list[StoredSale]) -> list[tuple[int, int, int, StoredSale]]:
    """Each store and release as (moment, kind, arrival, sale), in the order the ledger
    judges them: by moment, a release before a store at the same moment, then by arrival."""
    steps: list[tuple[int, int, int, StoredSale]] = []
    add = steps.append
    for sale in sales:
        stored, arrival = sale.stored_us, sale.arrival
        add((stored, _STORE, arrival, sale))
        released = sale.released_us
        # Released at the moment it was stored: it never counted for any other sale.
        if released is not None and released > stored:
            add((released, _RELEASE, arrival, sale))
    steps.sort(key=_ORDER)
    return steps


def replay(
    history: History,
    policy: Policy,
    config: dict[str, Any],
    *,
    refused_go_online: bool,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Replay:
    """Judge each sale of `history` under `config` (a location's configuration). A sale
    refused goes online (stores nothing) when `refused_go_online`; else it counts as stored,
    as the ledger counts a fact. Only the sales stored within [since, until) are reported;
    the earlier ones still count in the totals, as they did.

    The limits are resolved once per currency (`ResolvedLimits`, from the ledger's own
    headroom rows) and each sale judged on plain integers by the ledger's comparisons."""
    location = Location.configure(history.location_id, config, history.configured_at)
    resolved: dict[str, ResolvedLimits] = {}
    first = _BEFORE_ALL if since is None else micros(since)
    end = _AFTER_ALL if until is None else micros(until)
    amounts: dict[str, int] = {}
    count = 0
    device_amounts: dict[str, dict[str, int]] = {}  # device -> currency -> amount
    device_counts: dict[str, int] = {}
    held: set[str] = set()
    judged: list[Judged] = []
    peaks: dict[str, Peak] = {}
    for moment, kind, _, sale in _steps(history.sales):
        device, currency, amount = sale.device_id, sale.currency, sale.amount
        if kind == _RELEASE:
            if sale.offline_id not in held:
                continue
            held.remove(sale.offline_id)
            stored = amounts[currency] = amounts[currency] - amount
            count -= 1
            device_amounts[device][currency] -= amount
            device_counts[device] -= 1
            peaks[currency].series.append((moment, stored))
            continue
        limits = resolved.get(currency)
        if limits is None:
            limits = resolved[currency] = ResolvedLimits.of(policy, location, currency)
        mine = device_amounts.get(device)
        if mine is None:
            mine = device_amounts[device] = {}
        mine_count = device_counts.get(device, 0)
        breaches = limits.codes(
            amount, amounts.get(currency, 0), count, mine.get(currency, 0), mine_count
        )
        within = first <= moment < end
        if within:
            judged.append(Judged(sale, breaches))
        released = sale.released_us
        if (breaches and refused_go_online) or (released is not None and released <= moment):
            continue
        held.add(sale.offline_id)
        stored = amounts[currency] = amounts.get(currency, 0) + amount
        count += 1
        mine[currency] = mine.get(currency, 0) + amount
        device_counts[device] = mine_count + 1
        peak = peaks.get(currency)
        if peak is None:
            peak = peaks[currency] = Peak()
        peak.series.append((moment, stored))
        if within:
            if stored > peak.amount:
                peak.amount = stored
            if count > peak.count:
                peak.count = count
    return Replay(judged, peaks)


@dataclass(slots=True)
class Change:
    """A sale whose outcome the proposed limits change."""

    sale: StoredSale
    recorded: tuple[str, ...]
    proposed: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        sale = self.sale
        return {
            "offline_id": sale.offline_id,
            "device_id": sale.device_id,
            "currency": sale.currency,
            "amount": sale.amount,
            "stored_at": sale.stored_at.isoformat(),
            "released_as": sale.released_as,
            "recorded": "refused" if self.recorded else "offline",
            "proposed": "refused" if self.proposed else "offline",
            "recorded_breaches": list(self.recorded),
            "proposed_breaches": list(self.proposed),
        }


@dataclass(slots=True)
class Outcome:
    """One location and currency, as it happened beside as the proposed limits would have
    had it. A sale "refused" broke a limit (the ledger would have refused its reservation);
    money at risk is the amount of the sales taken offline that the card's bank declined."""

    location_id: str
    currency: str
    sales: int = 0
    refused_recorded: int = 0
    refused_proposed: int = 0
    newly_refused: int = 0  # taken offline within the limits, refused under the proposed
    newly_offline: int = 0  # refused by the limits in force, within the proposed
    peak_amount_recorded: int = 0
    peak_amount_proposed: int = 0
    peak_count_recorded: int = 0
    peak_count_proposed: int = 0
    at_risk_recorded: int = 0
    at_risk_proposed: int = 0
    declines_avoided: int = 0  # declined in reality, refused under the proposed limits
    declines_added: int = 0  # declined in reality, refused by the limits in force only
    changes: list[Change] = field(default_factory=list)
    # The stored amount after each store and release, "recorded" and "proposed" (for a chart).
    series: dict[str, list[tuple[int, int]]] = field(default_factory=dict)  # microseconds

    def to_dict(self) -> dict[str, Any]:
        return {
            "location_id": self.location_id,
            "currency": self.currency,
            "sales": self.sales,
            "refused": {"recorded": self.refused_recorded, "proposed": self.refused_proposed},
            "newly_refused": self.newly_refused,
            "newly_offline": self.newly_offline,
            "peak_stored_amount": {
                "recorded": self.peak_amount_recorded,
                "proposed": self.peak_amount_proposed,
            },
            "peak_stored_count": {
                "recorded": self.peak_count_recorded,
                "proposed": self.peak_count_proposed,
            },
            "money_at_risk": {"recorded": self.at_risk_recorded, "proposed": self.at_risk_proposed},
            "declines_avoided": self.declines_avoided,
            "declines_added": self.declines_added,
            "changes": [change.to_dict() for change in self.changes],
        }


def compare(
    history: History,
    policy: Policy,
    proposed: ProposedLimits,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    top: int = 10,
) -> list[Outcome]:
    """Per currency of the location, what happened beside what the proposed limits would have
    done, with the `top` sales (largest first) whose outcome changes."""
    recorded = replay(
        history, policy, history.config, refused_go_online=False, since=since, until=until
    )
    what_if = replay(
        history,
        policy,
        proposed.applied_to(history.config),
        refused_go_online=True,
        since=since,
        until=until,
    )
    outcomes: dict[str, Outcome] = {}
    for judged in what_if.judged:
        sale = judged.sale
        row = outcomes.get(sale.currency)
        if row is None:
            row = outcomes[sale.currency] = Outcome(history.location_id, sale.currency)
        declined = sale.released_as == "declined"
        was_refused, is_refused = bool(sale.breaches), bool(judged.breaches)
        row.sales += 1
        row.refused_recorded += was_refused
        row.refused_proposed += is_refused
        row.at_risk_recorded += sale.amount if declined else 0
        row.at_risk_proposed += sale.amount if declined and not is_refused else 0
        if was_refused != is_refused:
            row.newly_refused += is_refused
            row.newly_offline += was_refused
            row.declines_avoided += declined and is_refused
            row.declines_added += declined and was_refused
            row.changes.append(Change(sale, sale.breaches, judged.breaches))
    for currency, row in outcomes.items():
        for peaks, amount, count in (
            (recorded.peaks, "peak_amount_recorded", "peak_count_recorded"),
            (what_if.peaks, "peak_amount_proposed", "peak_count_proposed"),
        ):
            peak = peaks.get(currency)
            if peak is not None:
                setattr(row, amount, peak.amount)
                setattr(row, count, peak.count)
        row.series = {
            "recorded": recorded.peaks[currency].series if currency in recorded.peaks else [],
            "proposed": what_if.peaks[currency].series if currency in what_if.peaks else [],
        }
        row.changes = sorted(row.changes, key=lambda c: (-c.sale.amount, c.sale.offline_id))[:top]
    return [outcomes[currency] for currency in sorted(outcomes)]
