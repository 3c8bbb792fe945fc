"""What-if: replay a location's offline sale attempts against proposed limits.

The domain side, in `ledger/` rather than `projections/`: the faithful sources are the
location's own stream, where every confirmation was recorded as `PaymentStored` (device,
currency, amount, the codes of the rules it broke, its moment), every forward, decline or
cancel as `PaymentReleased`, and every hold's end (consumed by its sale stored, released)
as `HeadroomFreed`, in the same transaction as the payment's or reservation's own event; and
the reservations the ledger answered (`Reservation.Answered`), each with the request, the
reasons and the headroom the decision saw. A reservation refused sent its sale online:
nothing was stored, and under looser limits it would have been taken offline. A
reservation granted held its headroom from its ask until its sale was stored (the stored
sale then counts instead), its hold was released or it expired, whether its sale was stored
or abandoned.

The attempts are judged in the order the ledger judged them: by `occurred_at`, a release
(or a hold's end) at the same moment before anything else, stores and reservations asked at
the same moment in their order of arrival. Each is judged by the ledger's own comparisons
(`ResolvedLimits`, resolved from `Policy.headroom`): a sale stored against the stored
totals of its location and device at that moment (a fact is judged against what was stored
before it), a reservation against those and the holds replayed beside them, and what its
headroom rows saw used beyond both (the allowances, which are not replayed) is taken as
held whatever the limits. Replaying "as recorded" counts a sale that broke a limit as
stored anyway (a fact is recorded whatever it breaks), a refused reservation as gone online
and a granted one's hold as taken, which is what happened, so the limits in force reproduce
the recorded breaches, grants and refusals; replaying "as proposed" sends a refused sale
online instead (it leaves nothing stored), refuses the hold of a granted reservation that
breaks them (its sale, if stored, went online instead, refused with the reservation's
codes) and takes a refused reservation that they allow offline, stored until its device
next forwarded (or to the end), which is what the proposed limits would have changed.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple
from uuid import UUID

import orjson
from pydantic import BaseModel, ConfigDict

from ledger import wire
from ledger.collector import collector_paused
from ledger.event_store import EventStore
from ledger.fields import FieldReader, Fields
from ledger.fields import moment as stored_moment
from ledger.identity import location_id as location_stream_id
from ledger.limits import LIMIT_CODES, Policy, ResolvedLimits
from ledger.location import Location
from ledger.reservation import Reservation

_PAGE = 500


class ProposedLimits(BaseModel):
    """The limits to replay against: the `limits`, `device_limits` and (optionally)
    `currencies` of a `location.configured` record, as a location's configuration holds them.
    A field they do not name (`limits.per_payment_max`, `device_limits`...) is the one in force
    at each moment."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    currencies: list[wire.Currency] | None = None
    limits: wire.LocationLimits = wire.LocationLimits()
    device_limits: wire.DeviceLimits = wire.DeviceLimits()

    def applied_to(self, config: dict[str, Any]) -> dict[str, Any]:
        """A location's configuration with the fields these limits name in place of its own
        (its currencies, when these name them)."""
        applied = dict(config)
        if self.currencies is not None:
            applied["currencies"] = list(self.currencies)
        for name in ("limits", "device_limits"):
            if name in self.model_fields_set:
                section: BaseModel = getattr(self, name)
                named = section.model_dump(mode="json", include=section.model_fields_set)
                applied[name] = {**config[name], **named}
        return applied


def halved(config: dict[str, Any]) -> ProposedLimits:
    """Half a location's stored-amount limits (location and device, of `config`), the other
    limits as they were in force: the proposal the demo and the benchmark replay."""

    def half(maxima: dict[str, int]) -> dict[str, int]:
        return {currency: max(amount // 2, 1) for currency, amount in maxima.items()}

    return ProposedLimits.model_validate(
        {
            "limits": {"stored_amount_max": half(config["limits"]["stored_amount_max"])},
            "device_limits": {
                "stored_amount_max": half(config["device_limits"]["stored_amount_max"])
            },
        }
    )


Seen = tuple[int | None, int | None, int | None, int | None]


class SaleAttempt(NamedTuple):
    """One sale a location stored offline, as its stream recorded it, or one reservation it
    refused (`refused`: the sale went online, nothing was stored), or one it granted whose
    sale was never stored (`abandoned`: the hold was released or expired). A sale stored
    under a reservation the location granted carries that reservation (`reserved`): the hold
    counted for the reservations asked while it lasted. Moments are whole microseconds since
    the Unix epoch (UTC): a replay sorts and compares tens of thousands of them, which costs a
    third of the time as aware datetimes. The offline sales read model's rows (`AttemptRow`)
    hold the same fields in the same order, the device, currency and release as small
    integer codes (`History.attempt` gives one as a `SaleAttempt`)."""

    offline_id: str
    device_id: str
    currency: str
    amount: int
    stored_us: int  # when it was stored; of a reservation never stored, when it was asked
    arrival: int  # orders the attempts judged at the same moment
    # Stored: the limit codes it was (finally) recorded with. Refused: every code of the
    # refusal (distinct, sorted), including those no limit decides (offline disabled...).
    # ";"-joined, "" for none (`breaches` has them as a tuple).
    codes: str
    released_us: int | None = None
    released_as: str | None = None  # forwarded, declined or canceled
    # Of a reservation (None for a sale stored without one): what it saw used (stored and
    # held) for the limits set then, ";"-joined: the location's amount in the sale's
    # currency and its count, the device's; "" where none was set (`seen` has them as
    # numbers). Of a reservation granted, three more: when it was asked, when its hold ended
    # (it expired, was released, or its sale was stored) and its arrival (`reserved`).
    seen_text: str | None = None

    @property
    def breaches(self) -> tuple[str, ...]:
        return tuple(self.codes.split(";")) if self.codes else ()

    @property
    def refused(self) -> bool:
        return _is_refusal(self.seen_text)

    @property
    def reserved(self) -> Reserved | None:
        """The reservation granted for this sale, if one was."""
        return None if self.refused or self.seen_text is None else reserved_of(self.seen_text)

    @property
    def abandoned(self) -> bool:
        """A reservation granted whose sale was never stored: it keeps the ask's arrival (a
        sale stored arrives again)."""
        reserved = self.reserved
        return reserved is not None and reserved.arrival == self.arrival

    @property
    def seen(self) -> Seen | None:
        return None if self.seen_text is None else seen_of(self.seen_text)

    @property
    def stored_at(self) -> datetime:
        return moment_of(self.stored_us)


# A `SaleAttempt`'s fields, in its order, as the read model's row holds them: the device
# and the currency as their index in the location's `History.devices` and
# `History.currencies`, how it was released as its index in `RELEASES`. Integers below 257
# are never allocated, and a replay keys lists by them rather than dictionaries by strings.
AttemptRow = tuple[Any, ...]
RELEASES = ("forwarded", "declined", "canceled")  # `released_as`, by code
_FORWARDED, _DECLINED = RELEASES.index("forwarded"), RELEASES.index("declined")

_SEEN = 9  # SaleAttempt.seen_text: indexed in the replay's loops
_SEEN_FIELDS = 4  # of a refusal's `seen_text`; a grant's has three more


class Reserved(NamedTuple):
    """A reservation granted: what it saw used, when it was asked, when its hold ended (its
    expiry, or earlier: released, or its sale stored) and its arrival."""

    seen: Seen
    asked_us: int
    until_us: int
    arrival: int


def seen_text(seen: Seen) -> str:
    return ";".join("" if used is None else str(used) for used in seen)


def seen_of(text: str) -> Seen:
    amount, count, device_amount, device_count = (
        None if used == "" else int(used) for used in text.split(";")[:_SEEN_FIELDS]
    )
    return amount, count, device_amount, device_count


def reserved_text(seen: str, asked_us: int, until_us: int, arrival: int) -> str:
    return f"{seen};{asked_us};{until_us};{arrival}"


def reserved_of(text: str) -> Reserved:
    asked_us, until_us, arrival = (int(part) for part in text.split(";")[_SEEN_FIELDS:])
    return Reserved(seen_of(text), asked_us, until_us, arrival)


def _is_refusal(text: str | None) -> bool:
    """Whether a `seen_text` is a refusal's (four fields; a grant's has seven)."""
    return text is not None and text.count(";") == _SEEN_FIELDS - 1


def is_grant(text: str | None) -> bool:
    return text is not None and text.count(";") > _SEEN_FIELDS - 1


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
    """What a replay keeps of a reservation: what was held beside the stored totals and the
    holds replayed when it was asked (per limit, as `Seen`; taken as held whatever the
    limits), and the codes of its refusal that no limit decides (it is refused whatever the
    limits)."""

    held: tuple[int, int, int, int]
    fixed: tuple[str, ...]


@dataclass(slots=True)
class History:
    """A location's configurations, each with its moment in microseconds, in the order they
    were recorded, and its sale attempts, in arrival order. A replay judges each attempt by
    the configuration in force at its moment: the latest by moment (the latest recorded of
    those at the same moment), the first before any. The ledger forgets a released sale
    `LATE_WINDOW` after the newest moment it knows; the replay keeps every one, so a fact that
    arrived later than that may have been judged against less than the replay counts."""

    location_id: str
    configured_at: datetime
    configs: list[tuple[int, dict[str, Any]]]
    # The attempts as plain tuples in `SaleAttempt`'s order, as the read model's rows are
    # fetched (making each a `SaleAttempt` cost a sixth of the read), the device and currency
    # coded (`AttemptRow`); `sales` gives them as `SaleAttempt`s.
    rows: list[AttemptRow]
    devices: list[str]  # by code, in the order the location first met them
    currencies: list[str]  # likewise
    # Filled by the first replay "as recorded" (`replay`), used by the replays as proposed.
    refusals: dict[str, Refusal] | None = field(default=None, compare=False, repr=False)

    @property
    def sales(self) -> list[SaleAttempt]:
        return list(map(self.attempt, self.rows))

    def attempt(self, row: AttemptRow) -> SaleAttempt:
        """A row of `rows` as a `SaleAttempt`, its codes as the names they stand for."""
        released_as = row[8]
        return SaleAttempt(
            row[0],
            self.devices[row[1]],
            self.currencies[row[2]],
            row[3],
            row[4],
            row[5],
            row[6],
            row[7],
            None if released_as is None else RELEASES[released_as],
            row[9],
        )

    @property
    def config(self) -> dict[str, Any]:
        """The location's configuration now (the last recorded)."""
        return self.configs[-1][1]

    def in_force(self) -> list[tuple[int, dict[str, Any]]]:
        """Each configuration with the moment from which it is in force, in that order (the
        first from any moment)."""
        ordered = sorted(self.configs, key=_first)
        return [(_BEFORE_ALL, ordered[0][1]), *ordered[1:]]


def _first(pair: tuple[int, Any]) -> int:
    return pair[0]


# The events a history is folded from, in log order (the offline sales read model reads them).
TOPICS = (
    Location.Configured.TOPIC,
    Location.Reconfigured.TOPIC,
    Location.PaymentStored.TOPIC,
    Location.BreachesChanged.TOPIC,
    Location.PaymentReleased.TOPIC,
    Location.MomentRestated.TOPIC,
    Location.HeadroomFreed.TOPIC,
    Reservation.Answered.TOPIC,
)
LOCATION_TOPICS = (Location.Configured.TOPIC, Location.Reconfigured.TOPIC)

# The rows a history is folded into, one per location and one per sale attempt, keyed by the
# offline sales read model's columns (`projections.tables`): the read model stores them as
# they are, and `histories` makes the histories of them.
Row = dict[str, Any]


def sale_key(topic: str, fields: Fields) -> str:
    """The offline_id an event of `TOPICS` (not a location's configuration) is about (a
    freed hold's key: a reservation's offline_id, or an allowance's, which names none)."""
    return str(fields["key"] if topic == Location.HeadroomFreed.TOPIC else fields["offline_id"])


def location_stream(stream: str, topic: str, fields: Fields) -> str:
    """The location stream an event belongs to (a reservation's: its request's location)."""
    if topic == Reservation.Answered.TOPIC:
        return location_stream_id(fields["request"]["location_id"]).hex
    return stream


def fold(
    locations: dict[str, Row], sales: dict[str, Row], topic: str, fields: Fields, stream: str
) -> None:
    """Apply one event of `TOPICS` (its fields, `ledger.fields`; `stream` its location stream)
    to the rows: `locations` by stream, `sales` by offline_id (those the event names, at
    least). A sale's arrival counts every attempt its location met before it."""
    if topic == Location.Configured.TOPIC:
        at = micros(stored_moment(fields["occurred_at"]))
        locations[stream] = {
            "stream_id": stream,
            "location_id": fields["location_id"],
            "configured_us": at,
            "configs": orjson.dumps([[at, fields["config"]]]).decode(),
            "sales": 0,
            "devices": "[]",
            "currencies": "[]",
        }
    elif topic == Location.Reconfigured.TOPIC:
        location = locations[stream]
        configs = orjson.loads(location["configs"])
        configs.append([micros(stored_moment(fields["occurred_at"])), fields["config"]])
        location["configs"] = orjson.dumps(configs).decode()
    elif topic == Location.PaymentStored.TOPIC:
        # A stored sale replaces the refusal of its reservation (stored anyway) and keeps
        # the grant of its reservation (its hold), at the location that granted it.
        location, known = locations[stream], sales.get(fields["offline_id"])
        grant = (
            known["seen"]
            if known is not None
            and is_grant(known["seen"])
            and known["location_id"] == location["location_id"]
            else None
        )
        codes = ";".join(limit_codes(fields["breaches"]))
        _add(location, sales, fields, fields, codes, grant)
    elif topic == Reservation.Answered.TOPIC:
        if fields["offline_id"] in sales:
            return  # asked after its sale was stored
        location, seen = locations[stream], seen_text(seen_by(fields["headroom"]))
        if fields["granted"]:
            asked = micros(stored_moment(fields["occurred_at"]))
            until = micros(stored_moment(fields["expires_at"]))
            grant = reserved_text(seen, asked, until, location["sales"])
            _add(location, sales, fields, fields["request"], "", grant)
        else:
            codes = ";".join(refusal_codes(fields["reasons"]))
            _add(location, sales, fields, fields["request"], codes, seen)
    elif topic == Location.HeadroomFreed.TOPIC:
        # Its hold ended before it expired (released, or consumed by its sale stored).
        sale = sales.get(fields["key"])
        if sale is not None and is_grant(sale["seen"]):
            parts = sale["seen"].split(";")
            at = micros(stored_moment(fields["occurred_at"]))
            parts[_SEEN_FIELDS + 1] = str(min(int(parts[_SEEN_FIELDS + 1]), at))
            sale["seen"] = ";".join(parts)
    else:
        sale, at = sales[fields["offline_id"]], micros(stored_moment(fields["occurred_at"]))
        if topic == Location.BreachesChanged.TOPIC:
            sale["breaches"] = ";".join(limit_codes(fields["breaches"]))
        elif topic == Location.PaymentReleased.TOPIC:
            sale["released_us"], sale["released_as"] = at, RELEASES.index(fields["reason"])
        else:
            assert topic == Location.MomentRestated.TOPIC, topic
            sale["stored_us" if fields["which"] == "stored" else "released_us"] = at


def _add(
    location: Row,
    sales: dict[str, Row],
    fields: Fields,
    sale: Fields,
    codes: str,
    seen: str | None = None,
) -> None:
    """A sale attempt (`sale`: its device, currency and amount; `fields`: its event)."""
    offline_id = fields["offline_id"]
    sales[offline_id] = {
        "offline_id": offline_id,
        "location_id": location["location_id"],
        "arrival": location["sales"],
        "device": _code(location, "devices", sale["device_id"]),
        "currency": _code(location, "currencies", sale["currency"]),
        "amount": sale["amount"],
        "stored_us": micros(stored_moment(fields["occurred_at"])),
        "breaches": codes,
        "released_us": None,
        "released_as": None,
        "seen": seen,
    }
    location["sales"] += 1


def _code(location: Row, column: str, name: str) -> int:
    """The code of a device or currency (`column`: the location's list of them, JSON) at the
    location: its index there, added at the end when it is new."""
    names: list[str] = orjson.loads(location[column])
    if name in names:
        return names.index(name)
    names.append(name)
    location[column] = orjson.dumps(names).decode()
    return len(names) - 1


def sale_attempt(row: Row) -> AttemptRow:
    return (
        row["offline_id"],
        row["device"],
        row["currency"],
        row["amount"],
        row["stored_us"],
        row["arrival"],
        row["breaches"],
        row["released_us"],
        row["released_as"],
        row["seen"],
    )


def histories(store: EventStore, location_id: str | None = None) -> Iterator[History]:
    """Each location's sale attempts, read from the event store in log order (every
    location, or one): the source for a ledger without read models. Folded into the rows the
    offline sales read model holds, by the same `fold`."""
    read = FieldReader(store.mapper)
    locations: dict[str, Row] = {}
    sales: dict[str, Row] = {}
    start: int | None = None
    while True:
        page = store.recorder.select_notifications(
            start=start, limit=_PAGE, topics=list(TOPICS), inclusive_of_start=False
        )
        if not page:
            break
        for notification in page:
            topic = notification.topic
            fields = read(topic, notification.state)
            stream = location_stream(UUID(str(notification.originator_id)).hex, topic, fields)
            fold(locations, sales, topic, fields, stream)
        start = page[-1].id
    attempts: dict[str, list[AttemptRow]] = {}
    for row in sales.values():
        attempts.setdefault(row["location_id"], []).append(sale_attempt(row))
    for location in sorted(locations.values(), key=lambda row: row["location_id"]):
        if location_id is None or location["location_id"] == location_id:
            found = sorted(attempts.get(location["location_id"], []), key=_arrival)
            yield history_of(location, found)


def _arrival(sale: AttemptRow) -> int:
    return int(sale[5])


def history_of(location: Row, sales: list[AttemptRow]) -> History:
    """A location's history of its read model row and its sale attempts."""
    return History(
        location["location_id"],
        moment_of(location["configured_us"]),
        [(at, config) for at, config in orjson.loads(location["configs"])],
        sales,
        orjson.loads(location["devices"]),
        orjson.loads(location["currencies"]),
    )


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def micros(moment: datetime) -> int:
    """A moment as whole microseconds since the Unix epoch."""
    return (moment - _EPOCH) // _MICROSECOND


def moment_of(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def limit_codes(breaches: Iterable[str]) -> tuple[str, ...]:
    return tuple(code for code in breaches if code in LIMIT_CODES)


class Judged(NamedTuple):
    """An attempt's outcome under the replayed limits: the codes it breaks (none: taken
    offline within them)."""

    sale: SaleAttempt
    breaches: tuple[str, ...]


@dataclass(slots=True)
class Peak:
    """The most a location held stored at once in one currency, and in count; `points` is
    the stored amount after each store and release, at its moment in microseconds, flat:
    moment, amount, moment, amount... (`series` pairs them)."""

    amount: int = 0
    count: int = 0
    points: list[int] = field(default_factory=list)

    @property
    def series(self) -> list[tuple[int, int]]:
        return pairs(self.points)


def pairs(points: list[int]) -> list[tuple[int, int]]:
    """Flat moments and amounts as (moment, amount) pairs."""
    return list(zip(points[::2], points[1::2], strict=True))


@dataclass(slots=True)
class Replay:
    """The attempts of the period and the codes each breaks under the replayed limits (in
    two lists: a replay of tens of thousands of attempts makes no object per attempt), and
    the reservations granted in reality asked in the period, each with the codes it breaks
    (none: granted, its hold taken)."""

    attempts: list[AttemptRow]  # as `History.rows` holds them
    breaches: list[tuple[str, ...]]
    peaks: dict[str, Peak]  # per currency; the count is of the whole location
    history: History = field(repr=False, compare=False)  # the one replayed
    grants: list[Judged] = field(default_factory=list)

    @property
    def judged(self) -> list[Judged]:
        attempt = self.history.attempt
        return [
            Judged(attempt(sale), breaches)
            for sale, breaches in zip(self.attempts, self.breaches, strict=True)
        ]


_BEFORE_ALL, _AFTER_ALL = -(1 << 62), 1 << 62  # microseconds: no `since`, no `until`
_FORWARDS = frozenset({_FORWARDED, _DECLINED})  # releases that mean the device was online

# moment, arrival, index in the sales (of a reservation asked: ~index, below zero), sale
Step = tuple[int, int, int, AttemptRow | None]


def _steps(history: History) -> tuple[list[Step], list[int], bool]:
    """Each store and reservation asked as (moment, arrival, index, sale), in the order the
    ledger judged them: by moment, then by arrival (an ask by its own, before its sale's),
    the end last (a step after every moment, for the releases after the last store); and
    each release as one integer, its moment times twice len(sales) plus its sale's index
    (a store's release) or len(sales) plus its index (a hold's end), in order (a release at
    the moment of a store comes before it), the end's last. A refused reservation taken
    offline under other limits is released when its device next forwarded (never, when it
    did not); and whether there is any reservation. Releases as integers: they come far
    from the order of their moments, and sorting tuples costs eight times as much."""
    sales = history.rows
    span = len(sales)
    width = 2 * span
    # (moment, arrival) is unique, so the sale is never compared: a plain sort, a third
    # of a keyed one's time, which finds the stores already in order, mostly.
    steps: list[Step] = [
        (sale[4], sale[5], index, sale) for index, sale in enumerate(sales) if sale[_SEEN] is None
    ]
    # Released at the moment it was stored: it never counted for any other sale.
    releases = [
        sale[7] * width + index
        for index, sale in enumerate(sales)
        if sale[7] is not None and sale[_SEEN] is None and sale[7] > sale[4]
    ]
    asked = [index for index, sale in enumerate(sales) if sale[_SEEN] is not None]
    if asked:
        forwards: dict[int, list[int]] = {}  # by device code
        for row in sales:
            if row[8] in _FORWARDS and row[7] is not None:
                forwards.setdefault(row[1], []).append(row[7])
        for moments in forwards.values():
            moments.sort()
        for index in asked:
            row = sales[index]
            sale = history.attempt(row)
            reserved = sale.reserved
            if reserved is None:  # refused
                steps.append((sale.stored_us, sale.arrival, ~index, row))
                moments = forwards.get(row[1], [])
                after = bisect_right(moments, sale.stored_us)
                if after < len(moments):
                    releases.append(moments[after] * width + index)
                continue
            steps.append((reserved.asked_us, reserved.arrival, ~index, row))
            if reserved.until_us > reserved.asked_us:
                releases.append(reserved.until_us * width + span + index)
            if reserved.arrival != sale.arrival:  # its sale stored
                steps.append((sale.stored_us, sale.arrival, index, row))
                released = sale.released_us
                if released is not None and released > sale.stored_us:
                    releases.append(released * width + index)
    steps.sort()
    releases.sort()
    steps.append((_AFTER_ALL - 1, 0, span, None))
    releases.append(_AFTER_ALL * (width + 1))
    return steps, releases, bool(asked)


def replay(
    history: History,
    policy: Policy,
    proposed: ProposedLimits | None = None,
    *,
    refused_go_online: bool,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Replay:
    """Judge each attempt of `history` under the configuration in force at its moment, with
    the fields `proposed` names in place of its own (none: as it was). A sale
    refused goes online (stores nothing) and a refused reservation allowed is taken offline
    when `refused_go_online` (as proposed); else a sale counts as stored, as the ledger counts
    a fact, and a refused reservation as gone online (as recorded). A reservation granted in
    reality holds its headroom, for the reservations asked after it, until its sale is
    stored or its hold released or expired; as proposed, one that breaks the limits holds
    nothing and its sale goes online (refused with the reservation's codes). Only the
    attempts within [since, until) are reported; the earlier ones still count in the totals,
    as they did.

    The limits are resolved once per configuration and currency (`ResolvedLimits`, from the
    ledger's own headroom rows) and each attempt judged on plain integers by the ledger's
    comparisons. A replay as proposed of a history with reservations replays it as recorded
    first, once: that is what tells what each reservation saw held beside the stored totals
    and the holds replayed (allowances)."""
    # Tens of thousands of steps, sales and outcomes, none in a cycle.
    with collector_paused():
        return _replay(history, policy, proposed, refused_go_online, since, until)


def _replay(
    history: History,
    policy: Policy,
    proposed: ProposedLimits | None,
    refused_go_online: bool,
    since: datetime | None,
    until: datetime | None,
) -> Replay:
    sales = history.rows
    steps, releases, asked = _steps(history)
    if history.refusals is None:
        if refused_go_online and asked:
            replay(history, policy, None, refused_go_online=False)
        else:
            history.refusals = {}
    refusals = history.refusals
    assert refusals is not None
    # The configurations replayed, each from the moment it came in force, the next's moment.
    configs = [
        (since, config if proposed is None else proposed.applied_to(config))
        for since, config in history.in_force()
    ]
    configs.append((_AFTER_ALL, {}))
    location = Location.configure(history.location_id, configs[0][1], history.configured_at)
    in_force, next_config = 0, configs[1][0]
    # The devices and currencies are the rows' codes: the totals are lists indexed by them.
    currencies = history.currencies
    stride = len(currencies)
    # Per currency: its limits, and their maxima for the test "within every limit" (a
    # payment maximum below any amount when the currency is not taken offline).
    resolved: list[_Resolved | None] = [None] * stride
    first = _BEFORE_ALL if since is None else micros(since)
    end = _AFTER_ALL if until is None else micros(until)
    amounts = [0] * stride
    count = 0
    device_amounts = [0] * (len(history.devices) * stride)  # at device * stride + currency
    device_counts = [0] * len(history.devices)
    holds = Holds()  # what the reservations granted hold
    span = len(sales)
    width = 2 * span
    held = bytearray(span)  # by index in `sales`: stored
    holding = bytearray(span)  # by index in `sales`: its reservation's hold taken
    denied: dict[int, tuple[str, ...]] = {}  # by index: its reservation refused, the codes
    attempts: list[AttemptRow] = []
    judged: list[tuple[str, ...]] = []
    grants: list[Judged] = []
    points: list[list[int] | None] = [None] * stride  # per currency, flat (`Peak.points`)
    peak_amounts = [0] * stride
    peak_counts = [0] * stride  # the location's count, at a store in the currency
    attempt, judge = attempts.append, judged.append  # bound once: 40,000 steps
    next_release, after = releases[0], 1
    for moment, _, index, sale in steps:
        # The releases until this moment, included.
        bound = (moment + 1) * width
        while next_release < bound:
            released_at, gone = divmod(next_release, width)
            next_release = releases[after]
            after += 1
            if gone >= span:  # a hold's end
                gone -= span
                if holding[gone]:
                    holding[gone] = 0
                    _, device, currency, amount = sales[gone][:4]
                    holds.take(device, currency, amount, -1)
                continue
            if not held[gone]:
                continue  # not held (refused, or released at its own store)
            held[gone] = 0
            _, device, currency, amount = sales[gone][:4]
            stored = amounts[currency] = amounts[currency] - amount
            count -= 1
            device_amounts[device * stride + currency] -= amount
            device_counts[device] -= 1
            falling = points[currency]
            assert falling is not None  # it was stored
            falling.append(released_at)
            falling.append(stored)
        if sale is None:
            break  # the end
        if moment >= next_config:  # another configuration in force from now
            while moment >= configs[in_force + 1][0]:
                in_force += 1
            next_config, config = configs[in_force + 1][0], configs[in_force][1]
            location = Location.configure(history.location_id, config, history.configured_at)
            resolved = [None] * stride
        device, currency, amount = sale[1], sale[2], sale[3]
        found = resolved[currency]
        if found is None:
            found = resolved[currency] = _resolved(policy, location, currencies[currency])
        limits, payment_max, location_amount, location_count, device_amount, device_count = found
        mine = device * stride + currency
        stored, mine_stored = amounts[currency], device_amounts[mine]
        mine_count = device_counts[device]
        if index >= 0:  # a store
            # Within every limit, as `over_payment_max`, `over_stored_amount` and
            # `over_stored_count` compare (most sales): no code; else the codes it breaks.
            if (
                amount <= payment_max
                and stored + amount <= location_amount
                and mine_stored + amount <= device_amount
                and count < location_count
                and mine_count < device_count
            ):
                breaches: tuple[str, ...] = ()
            else:
                breaches = limits.codes(amount, stored, count, mine_stored, mine_count)
            released = sale[7]
            offline = not (
                (breaches and refused_go_online) or (released is not None and released <= moment)
            )
            if denied and index in denied:  # its reservation refused: it went online
                breaches, offline = denied[index], False
        else:  # a reservation asked
            index, asking = ~index, history.attempt(sale)
            totals = holds.beside(device, currency, stored, count, mine_stored, mine_count)
            if not refused_go_online:
                refusals[asking.offline_id] = _refusal(asking, totals)
            refusal = refusals[asking.offline_id]
            breaches = limits.codes(
                amount, *(total + more for total, more in zip(totals, refusal.held, strict=True))
            )
            if refusal.fixed:
                breaches = tuple(sorted({*breaches, *refusal.fixed}))
            if not asking.refused:  # granted in reality
                if first <= moment < end:
                    grants.append(Judged(asking, breaches))
                if breaches and refused_go_online:
                    denied[index] = breaches
                elif _holds_after(asking):
                    holding[index] = 1
                    holds.take(device, currency, amount, 1)
                continue
            offline = refused_go_online and not breaches
        within = first <= moment < end
        if within:
            attempt(sale)
            judge(breaches)
        if not offline:
            continue
        held[index] = 1
        stored = amounts[currency] = stored + amount
        count += 1
        device_amounts[mine] = mine_stored + amount
        device_counts[device] = mine_count + 1
        moments = points[currency]
        if moments is None:
            moments = points[currency] = []
        moments.append(moment)
        moments.append(stored)
        if within:
            if stored > peak_amounts[currency]:
                peak_amounts[currency] = stored
            if count > peak_counts[currency]:
                peak_counts[currency] = count
    peaks = {
        currencies[currency]: Peak(peak_amounts[currency], peak_counts[currency], moments)
        for currency, moments in enumerate(points)
        if moments is not None
    }
    return Replay(attempts, judged, peaks, history, grants)


def _holds_after(sale: SaleAttempt) -> bool:
    """Whether a reservation's hold outlasts the moment it was asked (its sale stored, or
    the hold released, at that very moment: it held nothing for any other)."""
    reserved = sale.reserved
    return reserved is not None and reserved.until_us > reserved.asked_us


@dataclass(slots=True)
class Holds:
    """The headroom the reservations replayed hold: per currency, in count, and per device.
    Apart from the stored totals, which a sale stored is judged against alone (a fact is
    judged against what was stored before it), while a reservation is judged against both."""

    amounts: dict[int, int] = field(default_factory=dict)  # by currency code
    count: int = 0
    device_amounts: dict[tuple[int, int], int] = field(default_factory=dict)
    device_counts: dict[int, int] = field(default_factory=dict)  # by device code

    def take(self, device: int, currency: int, amount: int, sign: int) -> None:
        """Hold one reservation of `amount` (`sign` 1), or give it back (-1)."""
        self.amounts[currency] = self.amounts.get(currency, 0) + sign * amount
        self.count += sign
        key = (device, currency)
        self.device_amounts[key] = self.device_amounts.get(key, 0) + sign * amount
        self.device_counts[device] = self.device_counts.get(device, 0) + sign

    def beside(
        self, device: int, currency: int, stored: int, count: int, mine: int, mine_count: int
    ) -> tuple[int, int, int, int]:
        """The stored totals given (the location's amount and count, the device's) with
        what is held beside them."""
        return (
            stored + self.amounts.get(currency, 0),
            count + self.count,
            mine + self.device_amounts.get((device, currency), 0),
            mine_count + self.device_counts.get(device, 0),
        )


# A currency's limits, and their maxima for the test "within every limit": payment,
# location amount and count, device amount and count.
_Resolved = tuple[ResolvedLimits, int, int, int, int, int]


def _resolved(policy: Policy, location: Location, currency: str) -> _Resolved:
    limits = ResolvedLimits.of(policy, location, currency)
    return (
        limits,
        limits.payment_max if limits.valid_currency else -1,
        limits.location_amount,
        limits.location_count,
        limits.device_amount,
        limits.device_count,
    )


def _refusal(sale: SaleAttempt, stored: tuple[int, int, int, int]) -> Refusal:
    """What the refusal saw beyond `stored` (the stored totals at its moment, as recorded).

    Never less than nothing: a sale recorded after the refusal but dated before it is in
    `stored` and was not in what the refusal saw, and a hold is never negative. (What was
    held then is underestimated by such a sale, down to nothing.)"""
    seen = sale.seen or (None, None, None, None)
    amount, count, device_amount, device_count = (
        0 if used is None else max(used - total, 0)
        for used, total in zip(seen, stored, strict=True)
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
    # The stored amount after each store and release, "recorded" and "proposed" (for a chart),
    # flat as `Peak.points` (`series` pairs them).
    points: dict[str, list[int]] = field(default_factory=dict)

    @property
    def series(self) -> dict[str, list[tuple[int, int]]]:
        """The stored amount after each store and release, at its moment in microseconds."""
        return {name: pairs(points) for name, points in self.points.items()}

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
    recorded = replay(history, policy, refused_go_online=False, since=since, until=until)
    what_if = replay(history, policy, proposed, refused_go_online=True, since=since, until=until)
    outcomes: dict[int, Outcome] = {}  # by currency code
    # The attempts as fetched (`SaleAttempt`'s fields by index, coded); a `SaleAttempt` made
    # only of those that change outcome.
    for sale, breaches in zip(what_if.attempts, what_if.breaches, strict=True):
        code, amount = sale[2], sale[3]
        row = outcomes.get(code)
        if row is None:
            row = outcomes[code] = Outcome(history.location_id, history.currencies[code])
        declined = sale[8] == _DECLINED
        refused = _is_refusal(sale[_SEEN])
        was_refused, is_refused = bool(sale[6]), bool(breaches)
        row.sales += 1
        row.reservations_refused += refused
        row.refused_recorded += was_refused
        row.refused_proposed += is_refused
        row.at_risk_recorded += amount if declined else 0
        row.at_risk_proposed += amount if declined and not is_refused else 0
        row.at_risk_unknown_proposed += amount if refused and not is_refused else 0
        if was_refused != is_refused:
            row.newly_refused += is_refused
            row.newly_offline += was_refused
            row.declines_avoided += declined and is_refused
            row.declines_added += declined and was_refused
            changed = history.attempt(sale)
            row.changes.append(Change(changed, changed.breaches, breaches))
    for row in outcomes.values():
        currency = row.currency
        for peaks, amount, count in (
            (recorded.peaks, "peak_amount_recorded", "peak_count_recorded"),
            (what_if.peaks, "peak_amount_proposed", "peak_count_proposed"),
        ):
            peak = peaks.get(currency)
            if peak is not None:
                setattr(row, amount, peak.amount)
                setattr(row, count, peak.count)
        row.points = {
            "recorded": recorded.peaks[currency].points if currency in recorded.peaks else [],
            "proposed": what_if.peaks[currency].points if currency in what_if.peaks else [],
        }
        row.changes = sorted(row.changes, key=lambda c: (-c.sale.amount, c.sale.offline_id))[:top]
    return sorted(outcomes.values(), key=_currency)


def _currency(outcome: Outcome) -> str:
    return outcome.currency
