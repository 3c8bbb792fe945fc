"""A Stripe Terminal Location: its offline configuration and what is stored offline there.

The location is the consistency boundary for the stored-amount limits: every confirmation
records `PaymentStored` on the location's stream in the same transaction as the payment's own
event, so two devices (or two processes) racing for the last headroom collide on the location's
next version and the loser re-decides with fresh totals. Per-device totals live here too,
because device limits are part of a location's configuration (`device_limits`).

Facts arrive late and out of order (a reader forwards as soon as it reconnects; Stripe's
webhook may come before the POS's records), so the location also keeps when each payment was
stored and released, by `occurred_at`: the stored totals at any moment, and so each payment's
limit breaches, are a function of those moments, never of the order the facts arrived in.
Released payments are kept for `LATE_WINDOW` after the newest moment known, which bounds the
stream's snapshots; a fact arriving later than that is judged against what is still kept.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from eventsourcing.domain import Aggregate
from typing_extensions import TypedDict  # pydantic reads typing.TypedDict on 3.12+ only

from ledger.identity import location_id as location_stream_id
from ledger.journal import Journaled

LATE_WINDOW = timedelta(days=7)

# A timeline entry: [device_id, currency, amount, stored (occurred_at), released or None,
# the codes of the rules storing it broke, arrival number]. Payments stored at the same moment
# are ordered by arrival: the later one is judged with the earlier counted.
Entry = list[Any]
# What is stored at some moment: per currency, count; and the same for one device.
Held = tuple[dict[str, int], int, dict[str, int], int]

# The attribute holding a location's `TimelineIndex`: derived from the timeline, rebuilt from it
# when missing (a location loaded from a snapshot or its events), never part of a snapshot.
INDEX = "_timeline_index"


class DeviceLimitsConfig(TypedDict):
    """What each device of a location may store at once, as its configuration records it:
    per currency, and in count (None: no count limit)."""

    stored_amount_max: dict[str, int]
    stored_count_max: int | None


class LimitsConfig(DeviceLimitsConfig):
    """The location's own stored limits, and the most one payment may be, per currency."""

    per_payment_max: dict[str, int]


class LocationConfig(TypedDict):
    """A location's offline configuration, as `location.configured` gave it (in JSON's
    types, the wire's order). `currencies` None: those named in the limits."""

    offline_enabled: bool
    sca_required: bool
    currencies: list[str] | None
    limits: LimitsConfig
    device_limits: DeviceLimitsConfig


class BeyondPolicy(TypedDict):
    """The payments stored now that broke one rule: how many, and how much per currency."""

    count: int
    amounts_by_currency: dict[str, int]


@dataclass(frozen=True)
class StoredLimits:
    """The stored limits of one scope (a location, or each of its devices), read from the
    location's recorded configuration: what may be stored at once, per currency and in count
    (None: no count limit)."""

    stored_amount_max: Mapping[str, int]
    stored_count_max: int | None


@dataclass(frozen=True)
class LocationLimits(StoredLimits):
    """The location's stored limits and the most one payment may be, per currency."""

    per_payment_max: Mapping[str, int]


class TimelineIndex:
    """The timeline in stored order and in released order, and what it holds in all (stored
    and released): a payment is judged against those stored just before it, and a late fact
    judges again those stored after it, so the work per fact is that of the payments near
    its moment, not of the whole timeline (a busy location's week of payments)."""

    __slots__ = ("amounts", "count", "devices", "releases", "stores")

    def __init__(self, timeline: Mapping[str, Entry]) -> None:
        # (stored, arrival, offline_id), sorted; (released, offline_id), sorted.
        self.stores = Ordered((e[3], e[6], k) for k, e in timeline.items() if e[3] is not None)
        self.releases = Weighed(
            ((e[4], k) for k, e in timeline.items() if e[4] is not None), timeline
        )
        self.amounts: dict[str, int] = {}
        self.count = 0
        # device_id -> [{currency: amount}, count], over the whole timeline.
        self.devices: dict[str, list[Any]] = {}
        for entry in timeline.values():
            self.add(entry)

    def add(self, entry: Entry) -> None:
        device_id, currency, amount = entry[0], entry[1], entry[2]
        self.amounts[currency] = self.amounts.get(currency, 0) + amount
        self.count += 1
        device = self.devices.setdefault(device_id, [{}, 0])
        device[0][currency] = device[0].get(currency, 0) + amount
        device[1] += 1


class Ordered:
    """A sorted list kept in blocks: adding or removing an item moves the items of its block
    only, not those of the whole list (a late fact lands anywhere in a week of payments)."""

    __slots__ = ("blocks", "maxes")

    LOAD = 512  # items per block; a block splits at twice as many

    def __init__(self, items: Iterable[tuple[Any, ...]]) -> None:
        ordered = sorted(items)
        load = self.LOAD
        self.blocks = [ordered[i : i + load] for i in range(0, len(ordered), load)]
        self.maxes = [block[-1] for block in self.blocks]

    def add(self, item: tuple[Any, ...]) -> None:
        blocks, maxes = self.blocks, self.maxes
        if not blocks:
            blocks.append([item])
            maxes.append(item)
            self._split(-1)
            return
        at = min(bisect_left(maxes, item), len(maxes) - 1)
        block = blocks[at]
        insort(block, item)
        maxes[at] = block[-1]
        self._added(at, item)
        if len(block) > 2 * self.LOAD:
            blocks[at : at + 1] = [block[: self.LOAD], block[self.LOAD :]]
            maxes[at : at + 1] = [block[self.LOAD - 1], block[-1]]
            self._split(at)

    def remove(self, item: tuple[Any, ...]) -> None:
        at = bisect_left(self.maxes, item)
        block = self.blocks[at]
        position = bisect_left(block, item)
        assert block[position] == item, item
        del block[position]
        self._removed(at, item)
        if block:
            self.maxes[at] = block[-1]
        else:
            del self.blocks[at], self.maxes[at]
            self._emptied(at)

    def from_(self, probe: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        """The items at or after `probe`, in order."""
        at = bisect_left(self.maxes, probe)
        if at == len(self.blocks):
            return []
        found = self.blocks[at][bisect_left(self.blocks[at], probe) :]
        for block in self.blocks[at + 1 :]:
            found += block
        return found

    def after(self, first: Any) -> list[tuple[Any, ...]]:
        """The items whose first element is after `first`, in order."""
        at = bisect_right(self.maxes, first, key=_first)
        if at == len(self.blocks):
            return []
        found = self.blocks[at][bisect_right(self.blocks[at], first, key=_first) :]
        for block in self.blocks[at + 1 :]:
            found += block
        return found

    # What a subclass keeping something per block does as blocks change.
    def _added(self, at: int, item: tuple[Any, ...]) -> None:
        pass

    def _removed(self, at: int, item: tuple[Any, ...]) -> None:
        pass

    def _split(self, at: int) -> None:
        """Block `at` became blocks `at` and `at + 1` (-1: the first block was made)."""

    def _emptied(self, at: int) -> None:
        pass


class Weighed(Ordered):
    """Items whose last element is a key of `timeline`, with what each block's payments hold
    ([{currency: amount}, count, {device_id: [{currency: amount}, count]}]): what those after
    a point hold is read block by block, not payment by payment."""

    __slots__ = ("sums", "timeline")

    def __init__(self, items: Iterable[tuple[Any, ...]], timeline: Mapping[str, Entry]) -> None:
        super().__init__(items)
        self.timeline = timeline
        self.sums = [self._sum(block) for block in self.blocks]

    def _sum(self, block: list[tuple[Any, ...]]) -> list[Any]:
        held: list[Any] = [{}, 0, {}]
        for item in block:
            _weigh(held, self.timeline[item[-1]], 1)
        return held

    def _added(self, at: int, item: tuple[Any, ...]) -> None:
        _weigh(self.sums[at], self.timeline[item[-1]], 1)

    def _removed(self, at: int, item: tuple[Any, ...]) -> None:
        _weigh(self.sums[at], self.timeline[item[-1]], -1)

    def _split(self, at: int) -> None:
        if at < 0:
            self.sums = [self._sum(self.blocks[0])]
        else:
            self.sums[at : at + 1] = [self._sum(self.blocks[at]), self._sum(self.blocks[at + 1])]

    def _emptied(self, at: int) -> None:
        del self.sums[at]

    def held_after(self, first: Any, device_id: str) -> tuple[list[Any], list[Any]]:
        """What the items whose first element is after `first` hold, in all and of
        `device_id`: [{currency: amount}, count] each."""
        total: list[Any] = [{}, 0]
        device: list[Any] = [{}, 0]
        at = bisect_right(self.maxes, first, key=_first)
        if at == len(self.blocks):
            return total, device
        block = self.blocks[at]
        for item in block[bisect_right(block, first, key=_first) :]:
            entry = self.timeline[item[-1]]
            _count(total, entry, 1)
            if entry[0] == device_id:
                _count(device, entry, 1)
        for amounts, count, devices in self.sums[at + 1 :]:
            _merge(total, amounts, count)
            if device_id in devices:
                _merge(device, *devices[device_id])
        return total, device


_AS_NOW: AbstractContextManager[None] = nullcontext()

# The last pair of moments `is_after` compared, and its answer: one tuple, replaced whole.
_LAST_AFTER: list[tuple[Any, Any, bool]] = [(None, None, False)]


def is_after(moment: datetime, horizon: datetime) -> bool:
    """`moment > horizon`, the answer for the last two objects asked kept. A payment's moment
    is compared with its location's horizon by its handler (is anything known after it?),
    then again by the event's `apply` (`Location.mark`: is it the newest?), and comparing two
    parsed moments asks both their zones for their offsets (about 3,500 instructions). The
    objects are kept, so an identical pair is the same pair of values."""
    last = _LAST_AFTER[0]
    if last[0] is moment and last[1] is horizon:
        found: bool = last[2]
        return found
    found = moment > horizon
    _LAST_AFTER[0] = (moment, horizon, found)
    return found


def _first(item: tuple[Any, ...]) -> Any:
    return item[0]


def _weigh(held: list[Any], entry: Entry, sign: int) -> None:
    """Count `entry` in a block's sums, in all and of its device."""
    _count(held, entry, sign)
    _count(held[2].setdefault(entry[0], [{}, 0]), entry, sign)


def _merge(held: list[Any], amounts: Mapping[str, int], count: int) -> None:
    into = held[0]
    for currency, amount in amounts.items():
        into[currency] = into.get(currency, 0) + amount
    held[1] += count


def _count(held: list[Any], entry: Entry, sign: int) -> None:
    """Add (sign 1) or take away (-1) `entry` to `held` ([{currency: amount}, count])."""
    amounts = held[0]
    amounts[entry[1]] = amounts.get(entry[1], 0) + sign * entry[2]
    held[1] += sign


class Location(Journaled):
    TOPIC = "offline_ledger:Location"

    class Event(Aggregate.Event):
        TOPIC = "offline_ledger:Location.Event"

    class Created(Event, Aggregate.Created):
        TOPIC = "offline_ledger:Location.Created"

    class Configured(Created):
        TOPIC = "offline_ledger:Location.Configured"
        location_id: str
        config: LocationConfig
        occurred_at: datetime

        def apply(self, aggregate: Location) -> None:
            location: Location = aggregate
            location.location_id = self.location_id
            location.config = self.config
            location.configured_at = self.occurred_at
            location.configs = [[self.occurred_at, self.config]]
            location.stored = {}
            location.stored_amounts = {}
            location.stored_count = 0
            location.device_stored_amounts = {}
            location.device_stored_counts = {}
            location.timeline = {}
            location.horizon = None
            location.arrivals = 0
            location.holds = {}
            location.allowances = {}
            vars(location).pop(INDEX, None)

    class Reconfigured(Event):
        TOPIC = "offline_ledger:Location.Reconfigured"
        config: LocationConfig
        occurred_at: datetime

        def apply(self, aggregate: Location) -> None:
            # Recorded late (its moment before another's), it is in force from its moment
            # to the next one's: the configuration now stays the latest by moment.
            aggregate.configs.append([self.occurred_at, self.config])
            aggregate.configured_at, aggregate.config = aggregate.in_force()[-1]

    class PaymentStored(Event):
        """Version 2 adds `breaches`: the codes of the rules storing it broke."""

        TOPIC = "offline_ledger:Location.PaymentStored"
        offline_id: str
        device_id: str
        currency: str
        amount: int
        breaches: list[str]
        occurred_at: datetime

        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, object]) -> None:
            state["breaches"] = []

        def apply(self, aggregate: Location) -> None:
            aggregate.add_stored(self.offline_id, self.device_id, self.currency, self.amount)
            aggregate.place(
                self.offline_id, [self.device_id, self.currency, self.amount], self.breaches
            )
            aggregate.mark(self.offline_id, 3, self.occurred_at)
            if self.device_id in aggregate.allowances:  # most devices are granted none
                aggregate.use_allowance(
                    self.device_id, self.currency, self.amount, self.occurred_at
                )

    class AllowanceGranted(Event):
        """A device may decide offline on its own, without reaching the ledger, up to
        `amounts` (per currency) and `count` payments until `valid_until`: carved out of the
        location's limits (held like a reservation), so that stored payments and every
        outstanding allowance together stay within them. Granting again renews or shrinks
        it: the earlier one ends now."""

        TOPIC = "offline_ledger:Location.AllowanceGranted"
        device_id: str
        amounts: dict[str, int]
        count: int
        valid_until: datetime
        occurred_at: datetime

        def apply(self, aggregate: Location) -> None:
            granted = aggregate.allowances.setdefault(self.device_id, [])
            if granted and granted[-1][1] > self.occurred_at:
                granted[-1][1] = self.occurred_at
            granted.append(
                [self.occurred_at, self.valid_until, dict(self.amounts), self.count, {}, 0]
            )
            oldest = self.occurred_at - LATE_WINDOW
            granted[:] = [a for a in granted if a[1] >= oldest]
            aggregate.holds[f"allowance/{self.device_id}"] = [
                self.device_id,
                dict(self.amounts),
                self.count,
                self.valid_until,
            ]

    class BreachesChanged(Event):
        """A stored payment was judged again (a fact earlier by `occurred_at` came late)."""

        TOPIC = "offline_ledger:Location.BreachesChanged"
        offline_id: str
        breaches: list[str]
        occurred_at: datetime

        def apply(self, aggregate: Location) -> None:
            entry = aggregate.timeline.get(self.offline_id)
            if entry is not None:
                entry[5] = list(self.breaches)

    class PaymentReleased(Event):
        """The amount left the stored totals: forwarded, declined or canceled."""

        TOPIC = "offline_ledger:Location.PaymentReleased"
        offline_id: str
        reason: str
        occurred_at: datetime

        def apply(self, aggregate: Location) -> None:
            aggregate.remove_stored(self.offline_id)
            aggregate.mark(self.offline_id, 4, self.occurred_at)

    class HeadroomHeld(Event):
        """Headroom held until `expires_at` under `key` (a reservation's offline_id, or
        "allowance/<device_id>"): counted against every limit of the location and device."""

        TOPIC = "offline_ledger:Location.HeadroomHeld"
        key: str
        device_id: str
        amounts: dict[str, int]
        count: int
        expires_at: datetime
        occurred_at: datetime

        def apply(self, aggregate: Location) -> None:
            aggregate.holds[self.key] = [
                self.device_id,
                dict(self.amounts),
                self.count,
                self.expires_at,
            ]

    class HeadroomFreed(Event):
        """A hold ended: `reason` consumed (the payment was stored), released, expired,
        shrunk (replaced by a smaller one)."""

        TOPIC = "offline_ledger:Location.HeadroomFreed"
        key: str
        reason: str
        occurred_at: datetime

        def apply(self, aggregate: Location) -> None:
            aggregate.holds.pop(self.key, None)

    class MomentRestated(Event):
        """A step reported late moved when a payment was stored (`which` "stored") or
        released ("released"): the step had been implied by a later one, at a moment that
        was a bound, and is now known. The totals do not change, only when they held."""

        TOPIC = "offline_ledger:Location.MomentRestated"
        offline_id: str
        which: str
        occurred_at: datetime

        def apply(self, aggregate: Location) -> None:
            aggregate.mark(self.offline_id, 3 if self.which == "stored" else 4, self.occurred_at)

    if TYPE_CHECKING:  # set by the events' apply(); runtime annotations would make
        # the eventsourcing metaclass generate a dataclass __init__
        location_id: str
        config: LocationConfig  # in force now: the latest by moment
        configured_at: datetime  # its moment
        # Every configuration recorded, [moment, config], in the order recorded.
        configs: list[list[Any]]
        stored: dict[str, list[Any]]  # offline_id -> [device_id, currency, amount]
        stored_amounts: dict[str, int]
        stored_count: int
        device_stored_amounts: dict[str, dict[str, int]]
        device_stored_counts: dict[str, int]
        timeline: dict[str, Entry]  # offline_id -> entry, stored or released lately
        horizon: datetime | None  # the newest moment in the timeline
        arrivals: int  # payments stored so far (numbers the timeline's entries)
        # Headroom held for sales about to be taken offline (reservations), and carved out
        # for devices (allowances): key -> [device_id, {currency: amount}, count, expires_at].
        holds: dict[str, list[Any]]
        # device_id -> its allowances of the last LATE_WINDOW: [granted_at, valid_until,
        # amounts, count, used amounts, used count], oldest first.
        allowances: dict[str, list[list[Any]]]

    class_version = 3

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        """A snapshot taken before the timeline: the stored payments count from the
        configuration's moment (the earliest they can have been stored)."""
        since = state["configured_at"]
        state["timeline"] = {
            offline_id: [*entry, since, None, [], 0]
            for offline_id, entry in state["stored"].items()
        }
        state["arrivals"] = 0
        state["horizon"] = since if state["stored"] else None
        state["holds"] = {}
        state["allowances"] = {}

    @staticmethod
    def upcast_v2_v3(state: dict[str, Any]) -> None:
        """A snapshot taken before the configurations were kept: the one it holds is in
        force from its moment (and before, as the first)."""
        state["configs"] = [[state["configured_at"], state["config"]]]

    @classmethod
    def configure(
        cls, location_id: str, config: LocationConfig | dict[str, Any], occurred_at: datetime
    ) -> Location:
        """`config` as a `location.configured` gives it, or as a what-if replay holds it."""
        return cls._create(
            cls.Configured,
            id=location_stream_id(location_id),
            location_id=location_id,
            config=config,
            occurred_at=occurred_at,
        )

    def reconfigure(self, config: LocationConfig, occurred_at: datetime) -> bool:
        """Record a configuration in force from `occurred_at`; False when that changes
        nothing (the one in force then is the same)."""
        if config == self.config_at(occurred_at):
            return False
        self.trigger_event(self.Reconfigured, config=config, occurred_at=occurred_at)
        return True

    def in_force(self) -> list[tuple[datetime, LocationConfig]]:
        """The configurations by moment (those of one moment in the order recorded, the last
        recorded in force)."""
        return sorted(((at, config) for at, config in self.configs), key=_moment)

    def config_at(self, moment: datetime) -> LocationConfig:
        """The configuration in force at `moment`: the latest by moment at or before it, the
        first before any."""
        if len(self.configs) == 1:
            return self.config
        ordered = self.in_force()
        found = ordered[0][1]
        for at, config in ordered:
            if at > moment:
                break
            found = config
        return found

    def judged_at(self, moment: datetime) -> AbstractContextManager[None]:
        """Judge (limits, offline mode, currencies) by the configuration in force at
        `moment` inside the block (`judge_by` moves it), the one in force now after it.
        Nothing to do (and no block made per payment) while the location has had only one."""
        if len(self.configs) == 1:
            return _AS_NOW
        return JudgedAt(self, moment)

    def judge_by(self, moment: datetime) -> None:
        """Inside `judged_at`, judge by the configuration in force at `moment` from now on
        (no context per payment: a late fact may judge thousands again)."""
        if len(self.configs) > 1:
            self.config = self.config_at(moment)

    def store_payment(
        self,
        offline_id: str,
        device_id: str,
        currency: str,
        amount: int,
        breaches: list[str],
        occurred_at: datetime,
    ) -> None:
        """Count a payment as stored, with the codes of the rules it broke (`ledger.limits`)."""
        assert offline_id not in self.stored, offline_id
        self.trigger_fields(
            self.PaymentStored,
            {
                "offline_id": offline_id,
                "device_id": device_id,
                "currency": currency,
                "amount": amount,
                "breaches": breaches,
                "occurred_at": occurred_at,
            },
        )

    def change_breaches(self, offline_id: str, breaches: list[str], occurred_at: datetime) -> None:
        entry = self.timeline.get(offline_id)
        if entry is not None and entry[5] != breaches:
            self.trigger_fields(
                self.BreachesChanged,
                {"offline_id": offline_id, "breaches": breaches, "occurred_at": occurred_at},
            )

    def stored_beyond_policy(self, device_id: str | None = None) -> dict[str, BeyondPolicy]:
        """Per breach code, the payments stored now (of one device, if given) that broke it:
        `{code: {"count": n, "amounts_by_currency": {...}}}`."""
        found: dict[str, BeyondPolicy] = {}
        for offline_id in self.stored:
            entry = self.timeline.get(offline_id)
            if entry is None or (device_id is not None and entry[0] != device_id):
                continue
            for code in entry[5]:
                row = found.setdefault(code, {"count": 0, "amounts_by_currency": {}})
                row["count"] += 1
                amounts = row["amounts_by_currency"]
                amounts[entry[1]] = amounts.get(entry[1], 0) + entry[2]
        return dict(sorted(found.items()))

    def release_payment(self, offline_id: str, reason: str, occurred_at: datetime) -> None:
        assert offline_id in self.stored, offline_id
        self.trigger_fields(
            self.PaymentReleased,
            {"offline_id": offline_id, "reason": reason, "occurred_at": occurred_at},
        )

    def restate(self, offline_id: str, which: str, occurred_at: datetime) -> bool:
        """Move when a payment was stored or released; False if the moment is already that
        (or the payment left the timeline, past `LATE_WINDOW`)."""
        entry = self.timeline.get(offline_id)
        if entry is None or entry[3 if which == "stored" else 4] == occurred_at:
            return False
        self.trigger_event(
            self.MomentRestated, offline_id=offline_id, which=which, occurred_at=occurred_at
        )
        return True

    # -- holds --------------------------------------------------------------------------------

    def hold(
        self,
        key: str,
        device_id: str,
        amounts: dict[str, int],
        count: int,
        expires_at: datetime,
        occurred_at: datetime,
    ) -> None:
        self.trigger_event(
            self.HeadroomHeld,
            key=key,
            device_id=device_id,
            amounts=amounts,
            count=count,
            expires_at=expires_at,
            occurred_at=occurred_at,
        )

    def free(self, key: str, reason: str, occurred_at: datetime) -> bool:
        if key not in self.holds:
            return False
        self.trigger_fields(
            self.HeadroomFreed, {"key": key, "reason": reason, "occurred_at": occurred_at}
        )
        return True

    def free_expired(self, at: datetime) -> None:
        """Give back the holds that expired by `at` (keeps the stream's state small)."""
        for key in sorted(k for k, hold in self.holds.items() if hold[3] <= at):
            self.free(key, "expired", at)

    def held(self, at: datetime, excluding: str | None = None) -> list[list[Any]]:
        """The holds in force at `at`: [device_id, amounts, count, expires_at] each; of an
        allowance, what is left of it (what the device stored under it is stored already)."""
        found = []
        for key, hold in self.holds.items():
            if key == excluding or hold[3] <= at:
                continue
            allowance = self.allowance_at(hold[0], at) if key.startswith("allowance/") else None
            if allowance is not None:
                left = {c: max(v - allowance[4].get(c, 0), 0) for c, v in allowance[2].items()}
                hold = [hold[0], left, max(allowance[3] - allowance[5], 0), hold[3]]
            found.append(hold)
        return found

    def grant_allowance(
        self,
        device_id: str,
        amounts: dict[str, int],
        count: int,
        valid_until: datetime,
        occurred_at: datetime,
    ) -> None:
        self.trigger_event(
            self.AllowanceGranted,
            device_id=device_id,
            amounts=amounts,
            count=count,
            valid_until=valid_until,
            occurred_at=occurred_at,
        )

    def allowance_at(self, device_id: str, moment: datetime) -> list[Any] | None:
        """The allowance the device held at `moment`, if any."""
        granted: list[list[Any]] = self.allowances.get(device_id, [])
        # The last granted that held then: from the newest back, as a sale now finds the
        # allowance in force at the end (a week of renewals is kept).
        for allowance in reversed(granted):
            if allowance[0] <= moment < allowance[1]:
                found: list[Any] = allowance
                return found
        return None

    def use_allowance(self, device_id: str, currency: str, amount: int, moment: datetime) -> None:
        allowance = self.allowance_at(device_id, moment)
        if allowance is not None:
            allowance[4][currency] = allowance[4].get(currency, 0) + amount
            allowance[5] += 1

    # -- the timeline -------------------------------------------------------------------------

    def place(self, offline_id: str, entry: Entry, breaches: list[str]) -> None:
        self.arrivals += 1
        placed = [*entry, None, None, list(breaches), self.arrivals]
        self.timeline[offline_id] = placed
        index: TimelineIndex | None = self.__dict__.get(INDEX)
        if index is not None:
            index.add(placed)

    def mark(self, offline_id: str, index: int, moment: datetime) -> None:
        """Set when a payment was stored (index 3) or released (4), then forget the payments
        released more than LATE_WINDOW before the newest moment."""
        entry = self.timeline.get(offline_id)
        if entry is None:
            return
        ordered: TimelineIndex | None = self.__dict__.get(INDEX)
        if ordered is not None:
            if index == 3:
                if entry[3] is not None:
                    ordered.stores.remove((entry[3], entry[6], offline_id))
                ordered.stores.add((moment, entry[6], offline_id))
            else:
                if entry[4] is not None:
                    ordered.releases.remove((entry[4], offline_id))
                ordered.releases.add((moment, offline_id))
        entry[index] = moment
        if self.horizon is None or is_after(moment, self.horizon):
            new_day = self.horizon is None or moment.date() > self.horizon.date()
            self.horizon = moment
            if new_day:  # once a day of moments: a scan per event would be quadratic
                oldest = moment - LATE_WINDOW
                gone = [k for k, e in self.timeline.items() if e[4] is not None and e[4] < oldest]
                for key in gone:
                    del self.timeline[key]
                if gone:
                    self.__dict__.pop(INDEX, None)  # rebuilt when next asked for

    def indexed(self) -> TimelineIndex:
        """The timeline's index, built from the timeline if this object has none yet."""
        index: TimelineIndex | None = self.__dict__.get(INDEX)
        if index is None:
            index = TimelineIndex(self.timeline)
            self.__dict__[INDEX] = index
        return index

    def held_before(self, moment: datetime, offline_id: str, device_id: str) -> Held:
        """What was stored just before `offline_id` was, at `moment` (stored earlier, or at the
        same moment and arrived before it, and not released by then), in all and of
        `device_id`: from the totals stored now,
        less those stored at or after the payment's place, plus those released after
        `moment` that were stored before it. The work is that of the payments stored after
        the moment (few, when the facts come about in order) and of the blocks of those
        released after it, not of the whole timeline."""
        timeline = self.timeline
        own = timeline.get(offline_id)
        position = (moment, own[6] if own is not None else self.arrivals + 1)
        index = self.indexed()
        total: list[Any] = [dict(self.stored_amounts), self.stored_count]
        device: list[Any] = [
            dict(self.device_stored_amounts.get(device_id, {})),
            self.device_stored_counts.get(device_id, 0),
        ]

        def count(entry: Entry, sign: int) -> None:
            _count(total, entry, sign)
            if entry[0] == device_id:
                _count(device, entry, sign)

        # Those released after the moment count, less those among them stored after it.
        released_total, released_device = index.releases.held_after(moment, device_id)
        _merge(total, *released_total)
        _merge(device, *released_device)
        for _, _, key in index.stores.from_(position):
            entry = timeline[key]
            if entry[4] is None or entry[4] > moment:
                count(entry, -1)
        if own is not None and (own[3], own[6]) < position and (own[4] is None or own[4] > moment):
            count(own, -1)
        return (
            {c: a for c, a in total[0].items() if a},
            total[1],
            {c: a for c, a in device[0].items() if a},
            device[1],
        )

    def held_before_each(self, offline_ids: Iterable[str]) -> dict[str, Held]:
        """`held_before` each of the timeline's payments `offline_ids`, at the moment it was
        stored, for its own device: one sweep in stored order from the first of them, not a
        walk per payment (a fact that comes late can move the judgment of every payment
        stored after it, and a day's payments may all share one moment)."""
        timeline = self.timeline
        wanted = sorted((timeline[k][3], timeline[k][6], k) for k in offline_ids)
        if not wanted:
            return {}
        index = self.indexed()
        total: list[Any] = [dict(self.stored_amounts), self.stored_count]
        devices: dict[str, list[Any]] = {
            d: [dict(amounts), self.device_stored_counts[d]]
            for d, amounts in self.device_stored_amounts.items()
        }

        def count(entry: Entry, sign: int) -> None:
            _count(total, entry, sign)
            _count(devices.setdefault(entry[0], [{}, 0]), entry, sign)

        # Held just before the first: stored before its place, not released by its moment.
        first, last = (wanted[0][0], wanted[0][1]), wanted[0][0]
        stores, next_store = index.stores.from_(first), 0
        for _, _, key in stores:
            if timeline[key][4] is None:
                count(timeline[key], -1)
        releases, next_release = index.releases.after(last), 0
        for _, key in releases:
            entry = timeline[key]
            if (entry[3], entry[6]) < first:
                count(entry, 1)
        found: dict[str, Held] = {}
        for moment, arrival, offline_id in wanted:
            position = (moment, arrival)
            # Stored before it (strictly: the same place is not before), not released by the
            # previous one's moment ...
            while next_store < len(stores) and stores[next_store][:2] < position:
                entry = timeline[stores[next_store][2]]
                next_store += 1
                if entry[4] is None or entry[4] > last:
                    count(entry, 1)
            # ... and not released by its own (those stored before it were counted).
            while next_release < len(releases) and releases[next_release][0] <= moment:
                entry = timeline[releases[next_release][1]]
                next_release += 1
                if (entry[3], entry[6]) < position:
                    count(entry, -1)
            last = moment
            amounts, device_count = devices.get(timeline[offline_id][0], ({}, 0))
            found[offline_id] = (
                {c: a for c, a in total[0].items() if a},
                total[1],
                {c: a for c, a in amounts.items() if a},
                device_count,
            )
        return found

    def stored_after(
        self, moment: datetime, horizon: datetime | None, arrival: int | None = None
    ) -> list[str]:
        """The payments whose judgment a change at `moment` may alter: stored later, or at
        the same moment and arrived after `arrival` (None: every payment stored at the
        moment). None when nothing known (up to `horizon`, the newest moment before the
        change) is at or after the moment."""
        if horizon is None or moment > horizon:
            return []
        probe = (moment,) if arrival is None else (moment, arrival + 1)
        return sorted(key for _, _, key in self.indexed().stores.from_(probe))

    # -- state --------------------------------------------------------------------------------

    @property
    def offline_enabled(self) -> bool:
        return bool(self.config["offline_enabled"])

    @property
    def sca_required(self) -> bool:
        return bool(self.config["sca_required"])

    def sca_required_at(self, moment: datetime) -> bool:
        """`sca_required` as `judged_at(moment)` reads it, without the block: asked for
        every card collected."""
        return bool(self.config_at(moment)["sca_required"])

    @property
    def offline_currencies(self) -> frozenset[str]:
        """Explicit `currencies`, else every currency named in the limits."""
        explicit = self.config.get("currencies")
        if explicit is not None:
            return frozenset(explicit)
        limits = self.limits
        return frozenset(limits.per_payment_max) | frozenset(limits.stored_amount_max)

    def takes_offline(self, currency: str) -> bool:
        """`currency in offline_currencies`, read from the configuration without making the
        set: asked for every payment stored."""
        explicit = self.config.get("currencies")
        if explicit is not None:
            return currency in explicit
        limits = self.config["limits"]
        return currency in limits["per_payment_max"] or currency in limits["stored_amount_max"]

    @property
    def limits(self) -> LocationLimits:
        """The location's limits, as configured (the recorded configuration stays a dict)."""
        limits = self.config["limits"]
        return LocationLimits(
            limits["stored_amount_max"], limits.get("stored_count_max"), limits["per_payment_max"]
        )

    @property
    def device_limits(self) -> StoredLimits:
        """The limits each device of the location has, as configured."""
        limits = self.config["device_limits"]
        return StoredLimits(limits["stored_amount_max"], limits.get("stored_count_max"))

    def add_stored(self, offline_id: str, device_id: str, currency: str, amount: int) -> None:
        self.stored[offline_id] = [device_id, currency, amount]
        self.stored_amounts[currency] = self.stored_amounts.get(currency, 0) + amount
        self.stored_count += 1
        by_currency = self.device_stored_amounts.setdefault(device_id, {})
        by_currency[currency] = by_currency.get(currency, 0) + amount
        self.device_stored_counts[device_id] = self.device_stored_counts.get(device_id, 0) + 1

    def remove_stored(self, offline_id: str) -> None:
        device_id, currency, amount = self.stored.pop(offline_id)
        self.stored_amounts[currency] -= amount
        if self.stored_amounts[currency] == 0:
            del self.stored_amounts[currency]
        self.stored_count -= 1
        by_currency = self.device_stored_amounts[device_id]
        by_currency[currency] -= amount
        if by_currency[currency] == 0:
            del by_currency[currency]
        self.device_stored_counts[device_id] -= 1
        if self.device_stored_counts[device_id] == 0:
            del self.device_stored_counts[device_id]
            del self.device_stored_amounts[device_id]
        # `min` rather than `all` over a generator: checked on every release.
        assert self.stored_count >= 0 and min(self.stored_amounts.values(), default=1) > 0


def _moment(pair: tuple[datetime, Any]) -> datetime:
    return pair[0]


class JudgedAt:
    """`Location.judged_at`'s block: a class rather than a generator made a context manager,
    whose machinery cost more than the swap itself (several a record)."""

    __slots__ = ("location", "moment", "now")

    def __init__(self, location: Location, moment: datetime) -> None:
        self.location = location
        self.moment = moment

    def __enter__(self) -> None:
        location = self.location
        self.now = location.config
        location.config = location.config_at(self.moment)

    def __exit__(self, *error: object) -> None:
        self.location.config = self.now
