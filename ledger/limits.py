"""The offline rules and limits, in one place.

The limits can prevent something only before the sale; after it they can only report it. So
`decide` and reservations apply them to a prospective sale and may refuse it, while the facts
(a card collected, a payment confirmed offline) are recorded whatever they break: each broken
rule becomes a breach on the fact, its code and what the check saw. Card rules are judged at
the collection; location, device and amount rules at the confirmation (the moment its amount
becomes stored), against the stored totals at that moment by `occurred_at`. Sources: Stripe
Terminal's offline docs and SDK error codes.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from typing_extensions import TypedDict  # pydantic reads typing.TypedDict on 3.12+ only

from ledger.card import CollectedCard
from ledger.device import Device
from ledger.errors import Breach, Code, RuleViolation
from ledger.location import DeviceLimitsConfig, Location, StoredLimits
from ledger.money import format_minor

# Stripe: "the SDK must have connected to a reader of the same type within the last 30 days",
# at that Location, with reader software updated within that time.
CONNECTION_MAX_AGE = timedelta(days=30)

# Brands Stripe supports offline; everything else is refused when the card is read.
SUPPORTED_OFFLINE_BRANDS = frozenset(
    {
        "visa",
        "mastercard",
        "discover",
        "amex",
        "unionpay",
        "jcb",
        "maestro",
        "eftpos_au",
        "cartes_bancaires",
    }
)
# Debit networks that route a card of a supported brand but do not work offline.
UNSUPPORTED_OFFLINE_NETWORKS = frozenset({"girocard", "nyce", "pulse", "star"})
SWIPE_READ_METHODS = frozenset(
    {"magnetic_stripe_track2", "magnetic_stripe_fallback", "contactless_magstripe_mode"}
)
CONTACTLESS_READ_METHODS = frozenset({"contactless_emv", "contactless_magstripe_mode"})


# The codes judged against the stored totals: a fact arriving late, earlier by `occurred_at`,
# can change them for the payments stored after it.
LIMIT_CODES = frozenset(
    {
        Code.INVALID_OFFLINE_CURRENCY,
        Code.AMOUNT_EXCEEDS_MAX_OFFLINE_AMOUNT,
        Code.STORED_AMOUNT_LIMIT_EXCEEDED,
        Code.OFFLINE_PAYMENTS_DATABASE_TOO_LARGE,
    }
)


# The codes of the card rules, judged when the card is read (never a storing rule's code).
CARD_CODES = frozenset(
    {
        Code.INTERAC_NOT_SUPPORTED_OFFLINE,
        Code.PAYMENT_METHOD_NOT_SUPPORTED_OFFLINE,
        Code.CARD_SWIPE_NOT_AVAILABLE,
        Code.CONTACTLESS_NOT_ALLOWED_OFFLINE,
        Code.ONLINE_PIN_NOT_SUPPORTED_OFFLINE,
        Code.OFFLINE_AND_CARD_EXPIRED,
    }
)


def breaches_of(violations: list[RuleViolation]) -> list[Breach]:
    """Broken rules as a fact records them: code, message and what the check saw."""
    if not violations:
        return []  # most payments break nothing: no comprehension made for them
    return [
        {"code": str(v.code), "message": v.message, "field": v.field, "details": dict(v.details)}
        for v in violations
    ]


def card_breaches(
    card: CollectedCard, *, sca_required: bool, occurred_at: datetime
) -> list[Breach]:
    try:
        check_card(card, sca_required=sca_required, occurred_at=occurred_at)
    except RuleViolation as violation:
        return breaches_of([violation])
    return []


def check_card(card: CollectedCard, *, sca_required: bool, occurred_at: datetime) -> None:
    """Raise the first rule the card breaks if taken offline (the card as the POS reported
    it, checked for shape and card numbers already, in the form its event records)."""
    brand, network = card["brand"], card["network"]
    if "interac" in (brand, network):
        raise _card(Code.INTERAC_NOT_SUPPORTED_OFFLINE, "brand", "Interac cards must go online")
    if brand not in SUPPORTED_OFFLINE_BRANDS:
        raise _card(
            Code.PAYMENT_METHOD_NOT_SUPPORTED_OFFLINE,
            "brand",
            f"brand '{brand}' is not supported offline; take it online",
        )
    if network in UNSUPPORTED_OFFLINE_NETWORKS:
        raise _card(
            Code.PAYMENT_METHOD_NOT_SUPPORTED_OFFLINE,
            "network",
            f"network '{network}' is not supported offline; take it online",
        )
    read_method = card["read_method"]
    if read_method in SWIPE_READ_METHODS:
        raise _card(
            Code.CARD_SWIPE_NOT_AVAILABLE,
            "read_method",
            "magnetic stripe data is not accepted offline; insert the card",
        )
    if sca_required and read_method in CONTACTLESS_READ_METHODS:
        raise _card(
            Code.CONTACTLESS_NOT_ALLOWED_OFFLINE,
            "read_method",
            "this location requires strong customer authentication: insert the card "
            "and enter the PIN",
        )
    if card["cardholder_verification"] == "online_pin":
        raise _card(
            Code.ONLINE_PIN_NOT_SUPPORTED_OFFLINE,
            "cardholder_verification",
            "an online PIN cannot be verified offline; take the payment online",
        )
    exp_month, exp_year = card["exp_month"], card["exp_year"]
    if _expired(exp_month, exp_year, occurred_at):
        raise _card(
            Code.OFFLINE_AND_CARD_EXPIRED,
            "exp_year",
            f"the card expired at the end of {exp_month:02d}/{exp_year}",
        )


def _expired(exp_month: int, exp_year: int, at: datetime) -> bool:
    """A card is valid through the last day of its expiry month."""
    return (at.year, at.month) > (exp_year, exp_month)


def _card(code: Code, name: str, message: str) -> RuleViolation:
    return RuleViolation(code, message, field=f"card.{name}")


class HeadroomRow(TypedDict):
    """A headroom row's JSON form (`Headroom.to_dict`): what the document of the HTTP API
    shows."""

    scope: str
    limit: str
    currency: str | None
    max: int
    used: int
    remaining: int


@dataclass(frozen=True)
class Headroom:
    """How much of one limit is used and what is left: the one shape of headroom, for the
    decision, a reservation's recorded answer and the status of a location or device. Its JSON
    form (`to_dict`) names the limit's ceiling `max`, as the CLI and the POS API print it."""

    scope: str  # "payment", "location" or "device"
    limit: str  # per_payment_max, stripe_offline_max, stored_amount_max, stored_count_max
    currency: str | None  # None for a count limit
    maximum: int
    used: int

    @property
    def remaining(self) -> int:
        return max(self.maximum - self.used, 0)

    def to_dict(self) -> HeadroomRow:
        return row_dict(self.scope, self.limit, self.currency, self.maximum, self.used)

    @classmethod
    def from_dict(cls, row: HeadroomRow) -> Headroom:
        """A row as `to_dict` wrote it (a reservation records its answer's headroom so)."""
        return cls(row["scope"], row["limit"], row["currency"], row["max"], row["used"])


def row_dict(scope: str, limit: str, currency: str | None, maximum: int, used: int) -> HeadroomRow:
    """A headroom row's JSON form, from its plain values (a `Headroom` or a `Row`)."""
    return {
        "scope": scope,
        "limit": limit,
        "currency": currency,
        "max": maximum,
        "used": used,
        "remaining": max(maximum - used, 0),
    }


# A headroom row as plain values, in `Headroom`'s field order: what the rules compare. The
# `Headroom` objects are made from them only where they are shown, not for every judgment.
Row = tuple[str, str, str | None, int, int]


def stored_headroom(
    scope: str,
    limits: StoredLimits,
    amounts: dict[str, int],
    count: int,
    currencies: Iterable[str] | None = None,
) -> list[Headroom]:
    """The stored-amount rows (per currency, all of them unless `currencies` narrows them) and
    the stored-count row of one scope's limits ("location" or "device"), against what it holds."""
    maxima = limits.stored_amount_max
    wanted = sorted(maxima) if currencies is None else [c for c in currencies if c in maxima]
    rows = [
        Headroom(scope, "stored_amount_max", currency, maxima[currency], amounts.get(currency, 0))
        for currency in wanted
    ]
    if limits.stored_count_max is not None:
        rows.append(Headroom(scope, "stored_count_max", None, limits.stored_count_max, count))
    return rows


def _stored_rows(
    rows: list[Row], scope: str, limits: DeviceLimitsConfig, currency: str, amounts: Any, count: int
) -> None:
    """`stored_headroom`'s rows of one currency, as plain values, read from the recorded
    configuration's limits (a location's `limits` or `device_limits`)."""
    maxima = limits["stored_amount_max"]
    if currency in maxima:
        rows.append(
            (scope, "stored_amount_max", currency, maxima[currency], amounts.get(currency, 0))
        )
    count_max = limits.get("stored_count_max")
    if count_max is not None:
        rows.append((scope, "stored_count_max", None, count_max, count))


_NO_AMOUNTS: dict[str, int] = {}  # a device that stores nothing: read, never written


@dataclass(slots=True)
class Totals:
    """What a location and one of its devices hold stored at some moment. Only read once
    made; not frozen, because a frozen dataclass sets each field through `object.__setattr__`
    and one is made for every payment stored, several times the cost of the slots."""

    amounts: dict[str, int]
    count: int
    device_amounts: dict[str, int]
    device_count: int

    @classmethod
    def current(cls, location: Location, device_id: str) -> Totals:
        """The location's own tallies, not copies: totals are only read (`at` copies before
        it takes a payment out), and this is made for every payment stored."""
        return cls(
            location.stored_amounts,
            location.stored_count,
            location.device_stored_amounts.get(device_id, _NO_AMOUNTS),
            location.device_stored_counts.get(device_id, 0),
        )

    @classmethod
    def held(
        cls, location: Location, device_id: str, at: datetime, excluding: str | None = None
    ) -> Totals:
        """Stored now plus the headroom held at `at` (reservations, allowances): what a new
        offline decision must fit beside."""
        amounts = dict(location.stored_amounts)
        count = location.stored_count
        device_amounts = dict(location.device_stored_amounts.get(device_id, {}))
        device_count = location.device_stored_counts.get(device_id, 0)
        for holder, held, held_count, _ in location.held(at, excluding):
            for currency, amount in held.items():
                amounts[currency] = amounts.get(currency, 0) + amount
                if holder == device_id:
                    device_amounts[currency] = device_amounts.get(currency, 0) + amount
            count += held_count
            if holder == device_id:
                device_count += held_count
        return cls(amounts, count, device_amounts, device_count)

    @classmethod
    def before_each(cls, location: Location, offline_ids: list[str]) -> dict[str, Totals]:
        """`at` for each of the timeline's payments `offline_ids`, at the moment it was
        stored, for its own device: one sweep over the timeline in stored order, not a walk
        per payment (a fact that comes late can move the judgment of every payment stored
        after it, and a day's payments may all share one moment)."""
        held = location.held_before_each(offline_ids)
        return {offline_id: cls(*totals) for offline_id, totals in held.items()}

    @classmethod
    def at(
        cls,
        location: Location,
        offline_id: str,
        moment: datetime,
        device_id: str,
        known_after: bool | None = None,
    ) -> Totals:
        """Stored just before `offline_id` was, at `moment` (by occurred_at). `known_after`:
        whether the location knows a moment at or after `moment` (its horizon), when the
        caller has compared them already (None: compared here)."""
        if known_after is None:
            known_after = location.horizon is not None and moment <= location.horizon
        if known_after:
            return cls(*location.held_before(moment, offline_id, device_id))
        # Nothing known happened at or after the moment (facts in order): the current
        # totals hold, less the payment itself. No walk over the stored payments.
        totals = cls.current(location, device_id)
        own = location.stored.get(offline_id)
        if own is None:
            return totals
        own_device, currency, amount = own
        amounts = dict(totals.amounts)
        amounts[currency] -= amount
        device_amounts = dict(totals.device_amounts)
        mine = own_device == device_id
        if mine:
            device_amounts[currency] -= amount
        return cls(amounts, totals.count - 1, device_amounts, totals.device_count - mine)


class Sale(NamedTuple):
    """What the rules need to know of a payment about to be stored: a tuple, made for every
    payment stored at a fraction of a frozen dataclass's cost, and as immutable."""

    amount: int
    currency: str
    device_id: str
    offline_behavior: str
    occurred_at: datetime


@dataclass(frozen=True)
class Policy:
    stripe_offline_max: dict[str, int] = field(default_factory=dict)

    def violations(
        self, sale: Sale, location: Location, device: Device | None, totals: Totals | None = None
    ) -> list[RuleViolation]:
        """Every rule the sale would break if stored with `totals` already stored (now's when
        not given), in the order they are checked."""
        found = self.offline_disabled(location)
        if sale.offline_behavior == "require_online":
            found.append(
                RuleViolation(
                    Code.NOT_CONNECTED_TO_INTERNET_AND_REQUIRE_ONLINE_SET,
                    "the payment was created with offline_behavior=require_online and cannot be "
                    "stored offline",
                    field="offline_behavior",
                )
            )
        found.extend(self._device_violations(sale, location, device))
        found.extend(self.limit_violations(sale, location, totals))
        return found

    def offline_disabled(self, location: Location) -> list[RuleViolation]:
        """OFFLINE_MODE_DISABLED, when the location's configuration disables offline mode."""
        if location.offline_enabled:
            return []
        return [
            RuleViolation(
                Code.OFFLINE_MODE_DISABLED,
                f"offline mode is disabled for location {location.location_id}; enable it in "
                "the location's Terminal configuration (offline[enabled]=true)",
            )
        ]

    def headroom(
        self, sale: Sale, location: Location, totals: Totals | None = None
    ) -> list[Headroom]:
        return [Headroom(*row) for row in self.rows(sale, location, totals)]

    def rows(self, sale: Sale, location: Location, totals: Totals | None = None) -> list[Row]:
        """The headroom rows of the sale's currency as plain values, read from the recorded
        configuration in force: a payment stored is judged against them, and most break
        nothing, so no `Headroom` or limits object is made for it."""
        config = location.config
        limits, device_limits = config["limits"], config["device_limits"]
        currency, device_id = sale.currency, sale.device_id
        held = totals or Totals.current(location, device_id)
        rows: list[Row] = []
        if currency in self.stripe_offline_max:
            rows.append(
                (
                    "payment",
                    "stripe_offline_max",
                    currency,
                    self.stripe_offline_max[currency],
                    sale.amount,
                )
            )
        per_payment_max = limits["per_payment_max"]
        if currency in per_payment_max:
            rows.append(
                ("payment", "per_payment_max", currency, per_payment_max[currency], sale.amount)
            )
        _stored_rows(rows, "location", limits, currency, held.amounts, held.count)
        _stored_rows(
            rows, "device", device_limits, currency, held.device_amounts, held.device_count
        )
        return rows

    def _device_violations(
        self, sale: Sale, location: Location, device: Device | None
    ) -> list[RuleViolation]:
        oldest = sale.occurred_at - CONNECTION_MAX_AGE
        # Connected here lately is asked first: then it connected lately at all (its last
        # connection is the latest of those at each location), and the first rule needs no
        # comparison of its own (two parsed moments compared ask both their zones for their
        # offsets, about 3,000 instructions). The rules' order, and so the answer, is kept.
        connected_here = None if device is None else device.connections.get(location.location_id)
        lately_here = connected_here is not None and connected_here >= oldest
        if not lately_here and (device is None or device.last_connected_at < oldest):
            return [
                RuleViolation(
                    Code.READER_CONNECTION_NOT_AVAILABLE_OFFLINE,
                    f"device {sale.device_id} has not connected online in the 30 days before "
                    "this payment; connect it online before taking payments offline",
                )
            ]
        assert device is not None  # lately here, or lately connected
        if device.software_updated_at is not None and device.software_updated_at < oldest:
            return [
                RuleViolation(
                    Code.READER_CONNECTION_NOT_AVAILABLE_OFFLINE,
                    f"device {sale.device_id}'s software was last updated "
                    f"{device.software_updated_at.isoformat()}, over 30 days ago; update it online",
                )
            ]
        if not lately_here:
            return [
                RuleViolation(
                    Code.LOCATION_CONNECTION_NOT_AVAILABLE_OFFLINE,
                    f"device {sale.device_id} has not connected online at location "
                    f"{location.location_id} in the last 30 days; connect it online there first",
                )
            ]
        return []

    def limit_violations(
        self, sale: Sale, location: Location, totals: Totals | None = None
    ) -> list[RuleViolation]:
        """The currency, amount and stored limits (LIMIT_CODES), against `totals`."""
        if self._within_limits(sale, location, totals):
            return []  # most payments break none: no rows made for them
        currency, amount = sale.currency, sale.amount
        found: list[RuleViolation] = []
        rows = self.rows(sale, location, totals)
        if not self.offline_currency(location, currency):
            found.append(
                RuleViolation(
                    Code.INVALID_OFFLINE_CURRENCY,
                    f"{currency.upper()} is not configured for offline payments at location "
                    f"{location.location_id}; add it to the location's limits or take it online",
                    field="currency",
                )
            )
            rows = counted_only(rows)
        for row in rows:
            scope, limit, _, maximum, used = row
            if scope == "payment" and over_payment_max(amount, maximum):
                found.append(
                    RuleViolation(
                        Code.AMOUNT_EXCEEDS_MAX_OFFLINE_AMOUNT,
                        f"{format_minor(amount, currency)} is over the {limit} of "
                        f"{format_minor(maximum, currency)}; take it online",
                        field="amount",
                        details=dict(row_dict(*row)),
                    )
                )
            elif limit == "stored_amount_max" and over_stored_amount(used, amount, maximum):
                found.append(
                    RuleViolation(
                        Code.STORED_AMOUNT_LIMIT_EXCEEDED,
                        f"storing {format_minor(amount, currency)} would bring the {scope}'s "
                        f"stored total to {format_minor(used + amount, currency)}, over its "
                        f"limit of {format_minor(maximum, currency)}; forward stored payments "
                        "or take this one online",
                        details=dict(row_dict(*row)),
                    )
                )
            elif limit == "stored_count_max" and over_stored_count(used, maximum):
                found.append(
                    RuleViolation(
                        Code.OFFLINE_PAYMENTS_DATABASE_TOO_LARGE,
                        f"the {scope} already stores {used} payments, its limit is "
                        f"{maximum}; forward stored payments or take this one online",
                        details=dict(row_dict(*row)),
                    )
                )
        return found

    def _within_limits(self, sale: Sale, location: Location, totals: Totals | None) -> bool:
        """Whether `limit_violations` finds nothing, asked by its comparisons on the recorded
        configuration's values as `rows` reads them, without making the rows and the loop
        over them (about a tenth of a stored payment's deciding)."""
        currency, amount = sale.currency, sale.amount
        if not self.offline_currency(location, currency):
            return False
        if over_payment_max(amount, self.stripe_offline_max[currency]):
            return False
        config = location.config
        limits = config["limits"]
        per_payment_max = limits["per_payment_max"]
        if currency in per_payment_max and over_payment_max(amount, per_payment_max[currency]):
            return False
        held = totals or Totals.current(location, sale.device_id)
        return _fits(limits, currency, amount, held.amounts, held.count) and _fits(
            config["device_limits"], currency, amount, held.device_amounts, held.device_count
        )

    def offline_currency(self, location: Location, currency: str) -> bool:
        """Whether the location takes `currency` offline and Stripe allows it offline."""
        return currency in self.stripe_offline_max and location.takes_offline(currency)


# The rules' comparisons, shared by the ledger's check (`Policy.limit_violations`) and the
# replay of many sales (`ResolvedLimits.codes`): one place says what "over a limit" means.


def over_payment_max(amount: int, maximum: int) -> bool:
    return amount > maximum


def over_stored_amount(used: int, amount: int, maximum: int) -> bool:
    return used + amount > maximum


def over_stored_count(used: int, maximum: int) -> bool:
    return used + 1 > maximum


def _fits(limits: DeviceLimitsConfig, currency: str, amount: int, amounts: Any, count: int) -> bool:
    """Whether a sale of `amount` fits beside `amounts` and `count` the stored limits of one
    scope (as `_stored_rows` reads them, as `Policy.limit_violations` compares them)."""
    maxima = limits["stored_amount_max"]
    if currency in maxima and over_stored_amount(
        amounts.get(currency, 0), amount, maxima[currency]
    ):
        return False
    count_max = limits.get("stored_count_max")
    return count_max is None or not over_stored_count(count, count_max)


def counted_only(rows: list[Row]) -> list[Row]:
    """The rows a sale in a currency not taken offline still meets: stored anyway, it still
    counts, so only the count limits apply to it."""
    return [row for row in rows if row[1] == "stored_count_max"]


_NO_TOTALS = Totals({}, 0, {}, 0)
_ANY_MOMENT = datetime(2000, 1, 1)  # headroom rows do not depend on the sale's moment


@dataclass(frozen=True, slots=True)
class ResolvedLimits:
    """The limits a sale in one currency meets at one location, resolved once from the
    ledger's own headroom rows (`Policy.headroom`), for a replay that judges many sales: each
    is then judged on plain integers by the same comparisons as `Policy.limit_violations`,
    and gets the same codes (sorted, distinct: as a location's stream records them)."""

    valid_currency: bool
    payment_max: int  # the lowest of the payment's ceilings (Stripe's, the location's)
    location_amount: int
    location_count: int
    device_amount: int
    device_count: int

    @classmethod
    def of(cls, policy: Policy, location: Location, currency: str) -> ResolvedLimits:
        """A limit the location does not set is `UNLIMITED`: no sale reaches it."""
        sale = Sale(0, currency, "", "prefer_online", _ANY_MOMENT)
        rows = policy.rows(sale, location, _NO_TOTALS)
        valid = policy.offline_currency(location, currency)
        if not valid:
            rows = counted_only(rows)

        def lowest(scope: str, limit: str | None = None) -> int:
            found = [
                row[3] for row in rows if row[0] == scope and (limit is None or row[1] == limit)
            ]
            return min(found, default=UNLIMITED)

        return cls(
            valid,
            lowest("payment"),
            lowest("location", "stored_amount_max"),
            lowest("location", "stored_count_max"),
            lowest("device", "stored_amount_max"),
            lowest("device", "stored_count_max"),
        )

    def codes(
        self, amount: int, stored: int, count: int, device_stored: int, device_count: int
    ) -> tuple[str, ...]:
        """The LIMIT_CODES a sale of `amount` breaks beside what the location (`stored`,
        `count`) and its device hold in this currency."""
        return _CODES[
            not self.valid_currency,
            over_payment_max(amount, self.payment_max),
            over_stored_amount(stored, amount, self.location_amount)
            or over_stored_amount(device_stored, amount, self.device_amount),
            over_stored_count(count, self.location_count)
            or over_stored_count(device_count, self.device_count),
        ]


UNLIMITED = 1 << 62  # above any amount or count: a limit that is not set
_LIMIT_ORDER = (
    Code.INVALID_OFFLINE_CURRENCY,
    Code.AMOUNT_EXCEEDS_MAX_OFFLINE_AMOUNT,
    Code.STORED_AMOUNT_LIMIT_EXCEEDED,
    Code.OFFLINE_PAYMENTS_DATABASE_TOO_LARGE,
)
# Which limits a sale breaks -> its codes, sorted: (currency, amount, stored amount, count).
_CODES = {
    broken: tuple(sorted(str(code) for code, hit in zip(_LIMIT_ORDER, broken, strict=True) if hit))
    for broken in itertools.product((False, True), repeat=4)
}


def allowance_violations(sale: Sale, location: Location) -> list[RuleViolation]:
    """What storing the sale breaks of the allowance its device held at that moment (none
    when it held none): the breach names the device."""
    if sale.device_id not in location.allowances:
        return []  # granted none (most devices): not even looked for
    allowance = location.allowance_at(sale.device_id, sale.occurred_at)
    if allowance is None:
        return []
    granted_at, valid_until, amounts, count, used, used_count = allowance
    details = {
        "device_id": sale.device_id,
        "granted_at": granted_at.isoformat(),
        "valid_until": valid_until.isoformat(),
        "amounts": dict(amounts),
        "count": count,
        "used_amounts": dict(used),
        "used_count": used_count,
        "amount": sale.amount,
        "currency": sale.currency,
    }
    maximum = amounts.get(sale.currency, 0)
    if used.get(sale.currency, 0) + sale.amount > maximum or used_count + 1 > count:
        return [
            RuleViolation(
                Code.OFFLINE_ALLOWANCE_EXCEEDED,
                f"device {sale.device_id} stored {format_minor(sale.amount, sale.currency)} "
                f"beyond the offline allowance it held ({format_minor(maximum, sale.currency)}"
                f" and {count} payments until {valid_until.isoformat()}; "
                f"{format_minor(used.get(sale.currency, 0), sale.currency)} and {used_count} "
                "used before)",
                details=details,
            )
        ]
    return []


@dataclass(frozen=True)
class Decision:
    """The answer to "may this sale be taken offline?" (nothing is recorded)."""

    offline_allowed: bool
    offline_behavior: str  # what to pass to the Terminal SDK: prefer_online | require_online
    reasons: list[RuleViolation]
    headroom: list[Headroom]

    def to_dict(self) -> dict[str, Any]:
        return {
            "offline_allowed": self.offline_allowed,
            "offline_behavior": self.offline_behavior,
            "code": str(self.reasons[0].code) if self.reasons else None,
            "reasons": [reason.to_dict() for reason in self.reasons],
            "headroom": [row.to_dict() for row in self.headroom],
        }


def decide(policy: Policy, sale: Sale, location: Location, device: Device | None) -> Decision:
    """The advice, against what is stored and what reservations and allowances hold, by the
    location's configuration in force at the sale's moment (one recorded for a later moment
    does not apply yet)."""
    totals = Totals.held(location, sale.device_id, sale.occurred_at)
    with location.judged_at(sale.occurred_at):
        reasons = policy.violations(sale, location, device, totals)
        headroom = policy.headroom(sale, location, totals)
    return Decision(
        offline_allowed=not reasons,
        offline_behavior="prefer_online" if not reasons else "require_online",
        reasons=reasons,
        headroom=headroom,
    )
