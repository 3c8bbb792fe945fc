"""What-if: replay a location's offline sale attempts against proposed limits.

The domain side, in `ledger/` rather than `projections/`: the faithful sources are the
location's own stream, where every confirmation was recorded as `PaymentStored` (device,
currency, amount, the codes of the rules it broke, its moment) and every forward, decline or
cancel as `PaymentReleased`, in the same transaction as the payment's own event; and the
reservations the ledger refused (`Reservation.Answered`, not granted), each with the request,
the reasons and the headroom the decision saw. Those sales were never stored (they went
online); under looser limits they would have been taken offline.

The attempts are judged in the order the ledger judges them: by `occurred_at`, a release at
the same moment before a store, a store before a refused reservation, attempts at the same
moment in their order of arrival. Each is judged by the ledger's own comparisons
(`ResolvedLimits`, resolved from `Policy.headroom`) against the stored totals of its location
and device at that moment; a refused reservation also against what was held beside them
(other reservations, allowances): what its headroom rows saw used, less what was stored at
that moment, is taken as held whatever the limits. Replaying "as recorded" counts a sale that
broke a limit as stored anyway (a fact is recorded whatever it breaks) and a refused
reservation as gone online, which is what happened, so the limits in force reproduce the
recorded breaches and refusals; replaying "as proposed" sends a refused sale online instead
(it leaves nothing stored) and takes a refused reservation that the proposed limits allow
offline, stored until its device next forwarded (or to the end), which is what the proposed
limits would have changed.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict

from ledger import wire
from ledger.collector import collector_paused
from ledger.event_store import EventStore
from ledger.limits import LIMIT_CODES, Policy, ResolvedLimits
from ledger.location import Location
from ledger.reservation import Reservation

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


Seen = tuple[int | None, int | None, int | None, int | None]


@dataclass(slots=True)
class SaleAttempt:
    """One sale a location stored offline, as its stream recorded it, or one reservation it
    refused (`refused`: the sale went online, nothing was stored). Moments are whole
    microseconds since the Unix epoch (UTC): a replay sorts and compares tens of thousands of
    them, which costs a third of the time as aware datetimes."""

    offline_id: str
    device_id: str
    currency: str
    amount: int
    stored_us: int  # when it was stored; of a refused reservation, when it was asked
    arrival: int  # orders the attempts judged at the same moment
    # Stored: the limit codes it was (finally) recorded with. Refused: every code of the
    # refusal (distinct, sorted), including those no limit decides (offline disabled...).
    breaches: tuple[str, ...]
    released_us: int | None = None
    released_as: str | None = None  # forwarded, declined or canceled
    refused: bool = False
    # What a refusal saw used (stored and held) for the limits set then: the location's
    # amount in the sale's currency and its count, the device's; None where none was set.
    seen: Seen | None = None

    @property
    def stored_at(self) -> datetime:
        return moment_of(self.stored_us)


def seen_by(headroom: Iterable[Mapping[str, Any]]) -> Seen:
    """What a reservation's headroom rows (one currency's) saw used, per stored limit."""
    used = {(row["scope"], row["limit"]): int(row["used"]) for row in headroom}
    return (
        used.get(("location", "stored_amount_max")),
        used.get(("location", "stored_count_max")),
        used.get(("device", "stored_amount_max")),
        used.get(("device", "stored_count_max")),
    )


def refusal_codes(reasons: Iterable[Mapping[str, Any]]) -> tuple[str, ...]:
    """A refusal's reason codes, distinct and sorted (as a replay's judgement gives them)."""
    return tuple(sorted({str(reason["code"]) for reason in reasons}))


@dataclass(slots=True)
class Refusal:
    """What a replay keeps of a refused reservation: what was held beside the stored totals
    when it was asked (per limit, as `Seen`; taken as held whatever the limits), and its
    codes that no limit decides (it is refused whatever the limits)."""

    held: tuple[int, int, int, int]
    fixed: tuple[str, ...]


@dataclass(slots=True)
class History:
    """A location's configuration (its last: a replay judges the whole history by one set of
    limits) and its sale attempts, in arrival order. The ledger forgets a released sale
    `LATE_WINDOW` after the newest moment it knows; the replay keeps every one, so a fact that
    arrived later than that may have been judged against less than the replay counts."""

    location_id: str
    configured_at: datetime
    config: dict[str, Any]
    sales: list[SaleAttempt]
    # Filled by the first replay "as recorded" (`replay`), used by the replays as proposed.
    refusals: dict[str, Refusal] | None = field(default=None, compare=False, repr=False)


# The events a history is folded from, in log order (the offline sales read model reads them).
TOPICS = (
    Location.Configured.TOPIC,
    Location.Reconfigured.TOPIC,
    Location.PaymentStored.TOPIC,
    Location.BreachesChanged.TOPIC,
    Location.PaymentReleased.TOPIC,
    Location.MomentRestated.TOPIC,
    Reservation.Answered.TOPIC,
)


def histories(store: EventStore, location_id: str | None = None) -> Iterator[History]:
    """Each location's sale attempts, read from the event store in log order (every
    location, or one): the source for a ledger without read models."""
    to_domain_event = store.mapper.to_domain_event
    fold = _Fold()
    start: int | None = None
    while True:
        page = store.recorder.select_notifications(
            start=start, limit=_PAGE, topics=list(TOPICS), inclusive_of_start=False
        )
        if not page:
            break
        for notification in page:
            fold.apply(to_domain_event(notification))
        start = page[-1].id
    for history in fold.histories.values():
        if location_id is None or history.location_id == location_id:
            history.sales = list(fold.sales[history.location_id].values())
            yield history


class _Fold:
    """The histories the events make, applied in log order; a sale's arrival counts every
    attempt its location met before it."""

    def __init__(self) -> None:
        self.histories: dict[str, History] = {}  # by location stream
        self.sales: dict[str, dict[str, SaleAttempt]] = {}  # location -> offline_id -> sale
        self.where: dict[str, dict[str, SaleAttempt]] = {}  # offline_id -> its location's
        self.arrivals: dict[str, int] = {}

    def apply(self, event: Any) -> None:
        if isinstance(event, Location.Configured):
            self.histories[event.originator_id.hex] = History(
                event.location_id, event.occurred_at, dict(event.config), []
            )
            self.sales[event.location_id], self.arrivals[event.location_id] = {}, 0
        elif isinstance(event, Location.Reconfigured):
            self.histories[event.originator_id.hex].config = dict(event.config)
        elif isinstance(event, Location.PaymentStored):
            location = self.histories[event.originator_id.hex].location_id
            self._add(
                location,
                SaleAttempt(
                    event.offline_id,
                    event.device_id,
                    event.currency,
                    event.amount,
                    micros(event.occurred_at),
                    self.arrivals[location],
                    limit_codes(event.breaches),
                ),
            )
        elif isinstance(event, Reservation.Answered):
            request = event.request
            if event.granted or event.offline_id in self.where:
                return  # granted: its sale is stored, or was abandoned; refused after a store
            location = request["location_id"]
            self._add(
                location,
                SaleAttempt(
                    event.offline_id,
                    request["device_id"],
                    request["currency"],
                    request["amount"],
                    micros(event.occurred_at),
                    self.arrivals[location],
                    refusal_codes(event.reasons),
                    refused=True,
                    seen=seen_by(event.headroom),
                ),
            )
        else:
            sale = self.where[event.offline_id][event.offline_id]
            if isinstance(event, Location.BreachesChanged):
                sale.breaches = limit_codes(event.breaches)
            elif isinstance(event, Location.PaymentReleased):
                sale.released_us, sale.released_as = micros(event.occurred_at), event.reason
            elif event.which == "stored":
                sale.stored_us = micros(event.occurred_at)
            else:
                sale.released_us = micros(event.occurred_at)

    def _add(self, location: str, sale: SaleAttempt) -> None:
        """A stored sale replaces the refusal of its reservation (stored anyway)."""
        sales = self.sales[location]
        sales.pop(sale.offline_id, None)
        sales[sale.offline_id] = sale
        self.where[sale.offline_id] = sales
        self.arrivals[location] += 1


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
    """An attempt's outcome under the replayed limits: the codes it breaks (none: taken
    offline within them)."""

    sale: SaleAttempt
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


# At the same moment: a release, then a store, then a refused reservation (asked).
_RELEASE, _STORE, _ASK = 0, 1, 2
_BEFORE_ALL, _AFTER_ALL = -(1 << 62), 1 << 62  # microseconds: no `since`, no `until`
_FORWARDS = frozenset({"forwarded", "declined"})  # releases that mean the device was online


def _steps(sales: list[SaleAttempt]) -> list[tuple[int, int, int, SaleAttempt]]:
    """Each store, refused reservation and release as (moment, kind, arrival, sale), in the
    order the ledger judges them: by moment, a release before a store before a refusal at the
    same moment, then by arrival. A refused reservation taken offline under other limits is
    released when its device next forwarded (never, when it did not)."""
    steps: list[tuple[int, int, int, SaleAttempt]] = []
    add = steps.append
    asked: list[SaleAttempt] = []
    for sale in sales:
        stored, arrival = sale.stored_us, sale.arrival
        if sale.refused:
            asked.append(sale)
            continue
        add((stored, _STORE, arrival, sale))
        released = sale.released_us
        # Released at the moment it was stored: it never counted for any other sale.
        if released is not None and released > stored:
            add((released, _RELEASE, arrival, sale))
    if asked:
        forwards: dict[str, list[int]] = {}
        for sale in sales:
            if sale.released_as in _FORWARDS and sale.released_us is not None:
                forwards.setdefault(sale.device_id, []).append(sale.released_us)
        for moments in forwards.values():
            moments.sort()
        for sale in asked:
            add((sale.stored_us, _ASK, sale.arrival, sale))
            moments = forwards.get(sale.device_id, [])
            after = bisect_right(moments, sale.stored_us)
            if after < len(moments):
                add((moments[after], _RELEASE, sale.arrival, sale))
    # (moment, kind, arrival) is unique (an arrival is one attempt's, and it has one step of
    # each kind), so the sale is never compared: a plain sort, a third of a keyed one's time.
    steps.sort()
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
    """Judge each attempt of `history` under `config` (a location's configuration). A sale
    refused goes online (stores nothing) and a refused reservation allowed is taken offline
    when `refused_go_online` (as proposed); else a sale counts as stored, as the ledger counts
    a fact, and a refused reservation as gone online (as recorded). Only the attempts within
    [since, until) are reported; the earlier ones still count in the totals, as they did.

    The limits are resolved once per currency (`ResolvedLimits`, from the ledger's own
    headroom rows) and each attempt judged on plain integers by the ledger's comparisons. A
    replay as proposed of a history with refusals replays it as recorded first, once: that
    is what tells what each refusal saw held beside the stored totals."""
    # Tens of thousands of steps, sales and outcomes, none in a cycle.
    with collector_paused():
        return _replay(history, policy, config, refused_go_online, since, until)


def _replay(
    history: History,
    policy: Policy,
    config: dict[str, Any],
    refused_go_online: bool,
    since: datetime | None,
    until: datetime | None,
) -> Replay:
    if history.refusals is None:
        if refused_go_online and any(sale.refused for sale in history.sales):
            replay(history, policy, history.config, refused_go_online=False)
        else:
            history.refusals = {}
    refusals = history.refusals
    assert refusals is not None
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
    judge, hold, unhold = judged.append, held.add, held.remove  # bound once: 40,000 steps
    for moment, kind, _, sale in _steps(history.sales):
        currency = sale.currency
        if kind == _RELEASE:
            try:
                unhold(sale.offline_id)
            except KeyError:
                continue  # not held (refused, or released at its own store)
            device, amount = sale.device_id, sale.amount
            stored = amounts[currency] = amounts[currency] - amount
            count -= 1
            device_amounts[device][currency] -= amount
            device_counts[device] -= 1
            peaks[currency].series.append((moment, stored))
            continue
        device, amount = sale.device_id, sale.amount
        limits = resolved.get(currency)
        if limits is None:
            limits = resolved[currency] = ResolvedLimits.of(policy, location, currency)
        mine = device_amounts.get(device)
        if mine is None:
            mine = device_amounts[device] = {}
        stored, mine_stored = amounts.get(currency, 0), mine.get(currency, 0)
        mine_count = device_counts.get(device, 0)
        if kind == _STORE:
            breaches = limits.codes(amount, stored, count, mine_stored, mine_count)
            released = sale.released_us
            offline = not (
                (breaches and refused_go_online) or (released is not None and released <= moment)
            )
        else:
            totals = (stored, count, mine_stored, mine_count)
            if not refused_go_online:
                refusals[sale.offline_id] = _refusal(sale, totals)
            refusal = refusals[sale.offline_id]
            breaches = limits.codes(
                amount, *(total + more for total, more in zip(totals, refusal.held, strict=True))
            )
            if refusal.fixed:
                breaches = tuple(sorted({*breaches, *refusal.fixed}))
            offline = refused_go_online and not breaches
        within = first <= moment < end
        if within:
            judge(Judged(sale, breaches))
        if not offline:
            continue
        hold(sale.offline_id)
        stored = amounts[currency] = stored + amount
        count += 1
        mine[currency] = mine_stored + amount
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


def _refusal(sale: SaleAttempt, stored: tuple[int, int, int, int]) -> Refusal:
    """What the refusal saw beyond `stored` (the stored totals at its moment, as recorded)."""
    seen = sale.seen or (None, None, None, None)
    amount, count, device_amount, device_count = (
        0 if used is None else used - total for used, total in zip(seen, stored, strict=True)
    )
    return Refusal(
        (amount, count, device_amount, device_count),
        tuple(code for code in sale.breaches if code not in LIMIT_CODES),
    )


@dataclass(slots=True)
class Change:
    """An attempt whose outcome the proposed limits change."""

    sale: SaleAttempt
    recorded: tuple[str, ...]
    proposed: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        sale = self.sale
        return {
            "offline_id": sale.offline_id,
            "device_id": sale.device_id,
            "currency": sale.currency,
            "amount": sale.amount,
            "attempt": "reservation_refused" if sale.refused else "stored",
            "at": sale.stored_at.isoformat(),
            "released_as": sale.released_as,
            "recorded": "refused" if self.recorded else "offline",
            "proposed": "refused" if self.proposed else "offline",
            "recorded_breaches": list(self.recorded),
            "proposed_breaches": list(self.proposed),
        }


@dataclass(slots=True)
class Outcome:
    """One location and currency, as it happened beside as the proposed limits would have
    had it. An attempt "refused" broke a limit: the ledger refused its reservation, or would
    have (a sale stored anyway has the breach on record). Money at risk is the amount of the
    sales taken offline that the card's bank declined; a refused reservation that the
    proposed limits take offline went online in reality, so whether its bank would have
    declined it offline is unknown: its amount is at risk with no known outcome."""

    location_id: str
    currency: str
    sales: int = 0  # sale attempts: stored sales and refused reservations
    reservations_refused: int = 0  # of those, reservations refused (never stored)
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
    at_risk_unknown_proposed: int = 0  # refused reservations taken offline as proposed
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
            "reservations_refused": self.reservations_refused,
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
            "money_at_risk": {
                "recorded": self.at_risk_recorded,
                "proposed": self.at_risk_proposed,
                "proposed_unknown": self.at_risk_unknown_proposed,
            },
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
    done, with the `top` attempts (largest first) whose outcome changes."""
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
        row.reservations_refused += sale.refused
        row.refused_recorded += was_refused
        row.refused_proposed += is_refused
        row.at_risk_recorded += sale.amount if declined else 0
        row.at_risk_proposed += sale.amount if declined and not is_refused else 0
        row.at_risk_unknown_proposed += sale.amount if sale.refused and not is_refused else 0
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
