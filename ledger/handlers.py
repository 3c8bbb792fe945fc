"""What each wire record does to the aggregates it touches.

One function per record type. Each first runs every check that can refuse it (shape,
references, idempotency, contradictions) and only then triggers events, so a refused record
leaves nothing behind; the unit of work verifies that after every refusal. The offline rules
and limits never refuse a fact: what they find is recorded on it as breaches.

A step may arrive before the steps it implies: a forward, decline or forward failure implies
the confirmation (stored from the payment's creation at the latest), a capture implies the
forward too. The implied steps are recorded first, marked `implied`; their own reports, when
they come, fix the moments. Whenever a stored moment or release moment changes what was held
before a later payment, that payment's limit breaches are judged again (`Payment.Rejudged`),
so the final state does not depend on the order the facts arrived in.

The handlers of the records a day holds most of read a record's fields from its `__dict__`,
once: a pydantic model defines `__getattr__`, so each of its attribute reads goes through the
slot hook Python's interpreter cannot specialize, several times the cost of a plain dict's item.
(`__dict__` read as an attribute, not through `vars()`: that builtin takes its argument in a
tuple and looks the same attribute up, about 870 instructions a call against 340.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any
from uuid import UUID

from ledger import identity, wire
from ledger.card import CollectedCard
from ledger.device import Device
from ledger.errors import Breach, Code, NotFound
from ledger.idempotency import IdempotencyKey, field_digests
from ledger.limits import (
    LIMIT_CODES,
    Policy,
    Sale,
    Totals,
    allowance_violations,
    breaches_of,
    card_breaches,
)
from ledger.location import Location, LocationConfig, StoredLimits
from ledger.payment import LATE, NEW, REPEAT, Payment, field_conflict
from ledger.unit_of_work import UnitOfWork, require_location, require_payment


def stream_ids(records: Iterable[object], created: list[UUID] | None = None) -> dict[int, UUID]:
    """The streams the records need, known before anything is loaded, by their ids' integers
    (as `UnitOfWork.prefetch_keyed` takes them), in the order the records name them; items
    that are no record (a refusal passed through) name none. One loop over the batch: a call
    and a list per record cost more than most records' ids.

    With `created`, the streams the records create when they are absent, as they usually
    find them (a new payment's, an idempotency key's: `UnitOfWork.presume_absent`), are
    appended to it in the records' order, found in the same loop: a second walk over the
    batch, with a call per record, cost about as much as this whole one."""
    wanted: dict[int, UUID] = {}
    location_id, device_id, payment_id = (
        identity.location_id,
        identity.device_id,
        identity.payment_id,
    )
    for record in records:
        kind = type(record)  # compared, not `isinstance`d: the handlers are keyed by it too
        if kind not in HANDLERS:
            continue
        values = record.__dict__  # read as plain values (the module's docstring says why)
        key = values["idempotency_key"]
        if key is not None:
            stream = identity.idempotency_key_id(key)
            wanted[stream.int] = stream
            if created is not None:
                created.append(stream)
        if kind is wire.LocationConfigured:
            streams: tuple[UUID, ...] = (location_id(values["location_id"]),)
        elif kind is wire.DeviceConnectedOnline:
            streams = (device_id(values["device_id"]), location_id(values["location_id"]))
        elif kind is wire.PaymentCreated:
            stream = payment_id(values["offline_id"])
            if created is not None:
                created.append(stream)
            streams = (
                stream,
                location_id(values["location_id"]),
                device_id(values["device_id"]),
            )
        else:  # the other steps of a payment, most records: its stream alone
            stream = payment_id(values["offline_id"])
            wanted[stream.int] = stream
            continue
        for stream in streams:
            wanted[stream.int] = stream
    return wanted


def related_ids(aggregates: Iterable[object]) -> list[UUID]:
    """Streams a loaded payment points to (its location and device)."""
    ids: list[UUID] = []
    for aggregate in aggregates:
        # By its type: an aggregate's class is an ABC, and `isinstance` of another class
        # asks `ABCMeta.__instancecheck__` (a Python call, its caches) for each.
        if type(aggregate) is Payment:
            ids += [
                identity.location_id(aggregate.location_id),
                identity.device_id(aggregate.device_id),
            ]
    return ids


def apply_record(record: wire.Record, uow: UnitOfWork, policy: Policy) -> bool:
    """Apply one record; True if it recorded something new, False for a repeat."""
    key = record.__dict__["idempotency_key"]  # a plain value (the module's docstring says why)
    if key is None:
        return HANDLERS[type(record)](record, uow, policy)
    digests = field_digests(record.model_dump(mode="json", exclude={"idempotency_key"}))
    known: IdempotencyKey | None = uow.get(identity.idempotency_key_id(key))
    if known is not None:
        known.check_same(digests)
        return False
    outcome = HANDLERS[type(record)](record, uow, policy)
    uow.add(IdempotencyKey.record(key, record.type, digests))
    return outcome


def subject(record: wire.Record) -> tuple[str, UUID]:
    """The key a record is about (offline_id, location_id or device_id) and its stream."""
    if isinstance(record, wire.LocationConfigured):
        return record.location_id, identity.location_id(record.location_id)
    if isinstance(record, wire.DeviceConnectedOnline):
        return record.device_id, identity.device_id(record.device_id)
    return str(record.offline_id), identity.payment_id(record.offline_id)


# -- locations and devices ------------------------------------------------------------------


def _location_configured(record: wire.LocationConfigured, uow: UnitOfWork, policy: Policy) -> bool:
    config = location_config(record)
    location: Location | None = uow.get(identity.location_id(record.location_id))
    if location is None:
        uow.add(Location.configure(record.location_id, config, record.occurred_at))
        return True
    horizon = location.horizon
    if not location.reconfigure(config, record.occurred_at):
        return False
    # In force from its moment: the payments stored since are judged by it (recorded late).
    _rejudge(uow, policy, location, None, record.occurred_at, horizon)
    return True


def location_config(record: wire.LocationConfigured) -> LocationConfig:
    """The configuration as its event records it: the wire's fields in the wire's order
    (a reconfiguration that changes nothing is a repeat)."""
    limits, device_limits = record.limits, record.device_limits
    return {
        "offline_enabled": record.offline_enabled,
        "sca_required": record.sca_required,
        "currencies": None if record.currencies is None else list(record.currencies),
        "limits": {
            "per_payment_max": dict(limits.per_payment_max),
            "stored_amount_max": dict(limits.stored_amount_max),
            "stored_count_max": limits.stored_count_max,
        },
        "device_limits": {
            "stored_amount_max": dict(device_limits.stored_amount_max),
            "stored_count_max": device_limits.stored_count_max,
        },
    }


def _device_connected(record: wire.DeviceConnectedOnline, uow: UnitOfWork, policy: Policy) -> bool:
    require_location(uow, record.location_id)
    device: Device | None = uow.get(identity.device_id(record.device_id))
    if device is None:
        uow.add(
            Device.register(
                record.device_id,
                record.location_id,
                record.reader_type,
                record.software_updated_at,
                record.occurred_at,
            )
        )
        return True
    if not device.is_news(record.location_id, record.occurred_at):
        return False
    device.connect_online(
        record.location_id, record.reader_type, record.software_updated_at, record.occurred_at
    )
    return True


# -- payments ---------------------------------------------------------------------------------


def _created(record: wire.PaymentCreated, uow: UnitOfWork, policy: Policy) -> bool:
    values = record.__dict__  # read as plain values (the module's docstring says why)
    location_id: str = values["location_id"]
    device_id: str = values["device_id"]
    require_location(uow, location_id)
    if uow.get(identity.device_id(device_id)) is None:
        raise NotFound(
            Code.UNKNOWN_DEVICE,
            f"device {device_id} is unknown: record device.connected_online for it first",
            field="device_id",
        )
    fields: dict[str, Any] = {
        "device_id": device_id,
        "location_id": location_id,
        "amount": values["amount"],
        "currency": values["currency"],
        "capture_method": values["capture_method"],
        "offline_behavior": values["offline_behavior"],
        "payment_intent_id": values["payment_intent_id"],
        "metadata": values["metadata"],  # copied by `Payment.create`, only compared here
    }
    offline_id: UUID = values["offline_id"]
    existing: Payment | None = uow.get(identity.payment_id(offline_id))
    if existing is not None:
        differs = existing.creation_difference(**fields)
        if differs is not None:
            recorded = existing.creation_fields()[differs]
            raise field_conflict(differs, recorded, fields[differs])
        return False
    uow.add(Payment.create(offline_id, fields, values["occurred_at"]))
    return True


def collected_card(card: wire.Card) -> CollectedCard:
    """The card as its event records it: the wire's fields in the wire's order (the event's
    stored bytes, and so a repeat's equality with a recorded card, depend on both)."""
    values = card.__dict__  # read as plain values (the module's docstring says why)
    return {
        "brand": values["brand"],
        "network": values["network"],
        "last4": values["last4"],
        "exp_month": values["exp_month"],
        "exp_year": values["exp_year"],
        "funding": values["funding"],
        "read_method": values["read_method"],
        "cardholder_verification": values["cardholder_verification"],
        "country": values["country"],
        "payment_method_id": values["payment_method_id"],
        "customer_id": values["customer_id"],
    }


def _collected(record: wire.PaymentMethodCollected, uow: UnitOfWork, policy: Policy) -> bool:
    values = record.__dict__  # read as plain values (the module's docstring says why)
    payment = require_payment(uow, values["offline_id"])
    card = collected_card(values["card"])
    if payment.plan_collect(card) is REPEAT:
        return False
    occurred_at: datetime = values["occurred_at"]
    location = require_location(uow, payment.location_id)
    sca_required = location.sca_required_at(occurred_at)
    breaches = card_breaches(card, sca_required=sca_required, occurred_at=occurred_at)
    payment.collect(card, breaches, occurred_at)
    if payment.offline_id in location.timeline:  # stored already: a card reported late
        location.change_breaches(payment.offline_id, _codes(payment.breaches), occurred_at)
    return True


def _confirmed(record: wire.PaymentConfirmedOffline, uow: UnitOfWork, policy: Policy) -> bool:
    values = record.__dict__  # read as plain values (the module's docstring says why)
    stored_at: datetime = values["stored_at"]
    occurred_at: datetime = values["occurred_at"]
    payment = require_payment(uow, values["offline_id"])
    plan = payment.plan_confirm(stored_at)
    if plan is REPEAT:
        return False
    location = require_location(uow, payment.location_id)
    if plan is NEW:
        _store(uow, policy, payment, location, stored_at, occurred_at)
        return True
    # Reported late: a later step implied it (stored from the creation at the latest), or the
    # payment was canceled before this report came.
    breaches = _judge(uow, policy, payment, location, occurred_at)
    payment.confirm_offline(plan, stored_at, breaches, occurred_at)
    horizon, entry = location.horizon, location.timeline.get(payment.offline_id)
    if entry is not None:
        implied_at = entry[3]
        location.change_breaches(payment.offline_id, _codes(payment.breaches), occurred_at)
        if location.restate(payment.offline_id, "stored", occurred_at):
            since = min(occurred_at, implied_at)
            _rejudge(uow, policy, location, payment, since, horizon)
    elif payment.canceled_at is not None:
        location.store_payment(
            payment.offline_id,
            payment.device_id,
            payment.currency,
            payment.amount,
            _codes(payment.breaches),
            occurred_at,
        )
        location.release_payment(payment.offline_id, "canceled", payment.canceled_at)
        _rejudge(uow, policy, location, payment, occurred_at, horizon)
    return True


def _store(
    uow: UnitOfWork,
    policy: Policy,
    payment: Payment,
    location: Location,
    stored_at: datetime,
    occurred_at: datetime,
    *,
    implied: bool = False,
) -> None:
    """Record the payment as stored at `occurred_at` with every rule it broke then.

    Whether the location knew a moment at or after it is asked once, here, for the totals
    and the rejudgment both: each comparison of two parsed moments asks both their zones for
    their offsets (about 3,000 instructions), and facts in order answer no."""
    horizon = location.horizon
    known_after = horizon is not None and occurred_at <= horizon
    breaches = _judge(uow, policy, payment, location, occurred_at, known_after)
    payment.confirm_offline(NEW, stored_at, breaches, occurred_at, implied=implied)
    location.store_payment(
        payment.offline_id,
        payment.device_id,
        payment.currency,
        payment.amount,
        _codes(payment.breaches),
        occurred_at,
    )
    if location.holds:  # its reservation, if any (most locations hold none: no call)
        location.free(payment.offline_id, "consumed", occurred_at)
    # Those stored at the same moment and arrived before it were judged without it. Asked
    # here first (as `_rejudge` would): facts in order leave nothing to judge again.
    if known_after:
        arrival = location.timeline[payment.offline_id][6]
        _rejudge(uow, policy, location, payment, occurred_at, horizon, arrival)


def _imply_stored(uow: UnitOfWork, policy: Policy, payment: Payment) -> None:
    """A later step came first: the payment was stored, from its creation at the latest."""
    if payment.needs_storing:
        location = require_location(uow, payment.location_id)
        moment = payment.created_at
        _store(uow, policy, payment, location, moment, moment, implied=True)


def _judge(
    uow: UnitOfWork,
    policy: Policy,
    payment: Payment,
    location: Location,
    moment: datetime,
    known_after: bool | None = None,
) -> list[Breach]:
    """Every rule storing the payment at `moment` breaks, against what was stored then
    (`known_after` as `Totals.at` takes it)."""
    device: Device | None = uow.get(identity.device_id(payment.device_id))
    sale = Sale(
        payment.amount, payment.currency, payment.device_id, payment.offline_behavior, moment
    )
    totals = Totals.at(location, payment.offline_id, moment, payment.device_id, known_after)
    if len(location.configs) == 1:  # judged by the one it has: no block (three Python calls)
        violations = policy.violations(sale, location, device, totals)
    else:
        with location.judged_at(moment):
            violations = policy.violations(sale, location, device, totals)
    return breaches_of([*violations, *allowance_violations(sale, location)])


def _rejudge(
    uow: UnitOfWork,
    policy: Policy,
    location: Location,
    cause: Payment | None,
    since: datetime,
    horizon: datetime | None,
    arrival: int | None = None,
) -> None:
    """Judge again the limits of the payments stored from `since` on (of those stored at
    that very moment, the ones arrived after `arrival`, if given): what was held before
    them changed, or (`cause` None) the configuration in force, which also decides
    whether offline mode was enabled. `horizon` is the newest moment the location knew
    before the change: a change after it (facts in order) moves nothing already judged."""
    if horizon is None or since > horizon:
        return  # facts in order: nothing known at or after the change (the common case)
    after = location.stored_after(since, horizon, arrival)
    if not after:
        return
    cause_id = "" if cause is None else cause.offline_id
    judged = LIMIT_CODES if cause is not None else _CONFIGURED_CODES
    affected = [k for k in after if k != cause_id]
    if affected and cause is not None and not _limits_within_reach(location):
        # Even all of the timeline's payments together fit every stored limit: judging
        # again (the configurations unchanged) can only clear a stored-limit breach, so
        # only those that carry one.
        affected = [k for k in affected if _TOTALS_CODES & set(location.timeline[k][5])]
    if not affected:
        return
    totals_of = Totals.before_each(location, affected)
    # By the configuration in force at each payment's moment; the one now after.
    with location.judged_at(since):
        for offline_id in affected:
            payment: Payment | None = uow.get(identity.payment_id(UUID(offline_id)))
            assert payment is not None, offline_id
            moment = location.timeline[offline_id][3]
            sale = Sale(
                payment.amount,
                payment.currency,
                payment.device_id,
                payment.offline_behavior,
                moment,
            )
            location.judge_by(moment)
            limits = breaches_of(policy.limit_violations(sale, location, totals_of[offline_id]))
            disabled = policy.offline_disabled(location) if cause is None else []
            kept = [b for b in payment.store_breaches if b["code"] not in judged]
            # In the order `Policy.violations` checks them: offline mode first, the limits last.
            breaches = breaches_of(disabled) + kept + limits
            if breaches != payment.store_breaches:
                payment.rejudge(breaches, cause_id, since)
                location.change_breaches(offline_id, _codes(payment.breaches), since)


# The codes a late configuration judges again (a late fact: LIMIT_CODES).
_CONFIGURED_CODES = LIMIT_CODES | {Code.OFFLINE_MODE_DISABLED}
# The codes that depend on what else is stored (the others are the sale's own).
_TOTALS_CODES = frozenset(
    {str(Code.STORED_AMOUNT_LIMIT_EXCEEDED), str(Code.OFFLINE_PAYMENTS_DATABASE_TOO_LARGE)}
)


def _limits_within_reach(location: Location) -> bool:
    """Could some payment of the location's timeline break a stored limit of any of its
    configurations? Not when all of them together (stored and released, hence more than is
    stored at any moment) fit each."""
    for moment, _ in location.in_force():
        with location.judged_at(moment):
            if _within_reach(location, location.limits, location.device_limits):
                return True
    return False


def _within_reach(location: Location, limits: StoredLimits, device_limits: StoredLimits) -> bool:
    index = location.indexed()  # what the whole timeline holds, kept as it grows
    if _over(limits, index.amounts, index.count):
        return True
    return any(_over(device_limits, a, n) for a, n in index.devices.values())


def _over(limits: StoredLimits, amounts: dict[str, int], count: int) -> bool:
    count_max = limits.stored_count_max
    if count_max is not None and count > count_max:
        return True
    return any(amounts.get(c, 0) > m for c, m in limits.stored_amount_max.items())


def _codes(breaches: list[Breach]) -> list[str]:
    if not breaches:
        return []  # most payments break nothing
    return sorted({b["code"] for b in breaches})


def _forwarded(record: wire.PaymentForwarded, uow: UnitOfWork, policy: Policy) -> bool:
    values = record.__dict__  # read as plain values (the module's docstring says why)
    payment_intent_id: str = values["payment_intent_id"]
    status: str = values["status"]
    occurred_at: datetime = values["occurred_at"]
    payment = require_payment(uow, values["offline_id"])
    plan = payment.plan_forward(payment_intent_id)
    if plan is REPEAT:
        return False
    if plan is LATE:  # a capture implied it; this report fixes the moment
        location = require_location(uow, payment.location_id)
        implied_at, horizon = payment.forwarded_at, location.horizon
        assert implied_at is not None
        payment.forward(plan, payment_intent_id, status, occurred_at)
        if location.restate(payment.offline_id, "released", occurred_at):
            since = min(implied_at, occurred_at)
            _rejudge(uow, policy, location, payment, since, horizon)
        return True
    _imply_stored(uow, policy, payment)
    _release_then(
        uow,
        policy,
        payment,
        "forwarded",
        occurred_at,
        payment.forward,
        plan,
        payment_intent_id,
        status,
        occurred_at,
    )
    return True


def _forward_failed(record: wire.PaymentForwardFailed, uow: UnitOfWork, policy: Policy) -> bool:
    payment = require_payment(uow, record.offline_id)
    if payment.plan_forward_failure(record.error_code, record.occurred_at) is REPEAT:
        return False
    _imply_stored(uow, policy, payment)
    payment.record_forward_failure(
        record.error_code, record.message, record.retryable, record.occurred_at
    )
    return True


def _declined(record: wire.PaymentDeclined, uow: UnitOfWork, policy: Policy) -> bool:
    payment = require_payment(uow, record.offline_id)
    if payment.plan_decline(record.payment_intent_id, record.decline_code) is REPEAT:
        return False
    _imply_stored(uow, policy, payment)
    _release_then(
        uow,
        policy,
        payment,
        "declined",
        record.occurred_at,
        payment.decline,
        record.payment_intent_id,
        record.decline_code,
        record.occurred_at,
    )
    return True


def _captured(record: wire.PaymentCaptured, uow: UnitOfWork, policy: Policy) -> bool:
    values = record.__dict__  # read as plain values (the module's docstring says why)
    payment_intent_id: str = values["payment_intent_id"]
    amount_captured: int = values["amount_captured"]
    occurred_at: datetime = values["occurred_at"]
    payment = require_payment(uow, values["offline_id"])
    if payment.plan_capture(payment_intent_id, amount_captured) is REPEAT:
        return False
    if payment.needs_forwarding:  # Stripe had it, so it was forwarded (and stored)
        _imply_stored(uow, policy, payment)
        _release_then(
            uow,
            policy,
            payment,
            "forwarded",
            occurred_at,
            payment.forward,
            NEW,  # a payment not yet forwarded (`needs_forwarding`)
            payment_intent_id,
            "requires_capture",
            occurred_at,
            True,  # implied
        )
    payment.capture(payment_intent_id, amount_captured, occurred_at)
    return True


def _canceled(record: wire.PaymentCanceled, uow: UnitOfWork, policy: Policy) -> bool:
    payment = require_payment(uow, record.offline_id)
    if payment.plan_cancel(record.reason) is REPEAT:
        return False
    # An abandoned sale gives its reservation back.
    require_location(uow, payment.location_id).free(
        payment.offline_id, "released", record.occurred_at
    )
    _release_then(
        uow,
        policy,
        payment,
        "canceled",
        record.occurred_at,
        payment.cancel,
        record.reason,
        record.occurred_at,
    )
    return True


def _release_then(
    uow: UnitOfWork,
    policy: Policy,
    payment: Payment,
    reason: str,
    occurred_at: datetime,
    trigger: Callable[..., None],
    *args: Any,
) -> None:
    """Trigger the payment's event (`trigger(*args)`: a bound method and its arguments, not
    a closure, whose frame is one Python call more) and, if it was stored, release it from
    the stored totals (and judge again the payments stored after the release, if any came
    first)."""
    was_stored = payment.is_stored
    location = require_location(uow, payment.location_id) if was_stored else None
    trigger(*args)
    if location is not None:
        horizon = location.horizon
        location.release_payment(payment.offline_id, reason, occurred_at)
        # Facts in order release after every moment the location knew: its stored moment is
        # one of them, so nothing stored after it is known. Asked first (as `_rejudge` would):
        # a comparison of two parsed moments asks both their zones for their offsets.
        if horizon is None or occurred_at > horizon:
            return
        # It counted only for those stored after it: from the later of the release and its
        # own place in the stored order.
        entry = location.timeline.get(payment.offline_id)
        if entry is not None and entry[3] >= occurred_at:
            since, arrival = entry[3], entry[6]
        else:
            since, arrival = occurred_at, None
        _rejudge(uow, policy, location, payment, since, horizon, arrival)


# Each handler takes the one record type it is keyed by (a mapping cannot say so per key).
HANDLERS: dict[type[wire.Record], Callable[..., bool]] = {
    wire.LocationConfigured: _location_configured,
    wire.DeviceConnectedOnline: _device_connected,
    wire.PaymentCreated: _created,
    wire.PaymentMethodCollected: _collected,
    wire.PaymentConfirmedOffline: _confirmed,
    wire.PaymentForwarded: _forwarded,
    wire.PaymentForwardFailed: _forward_failed,
    wire.PaymentDeclined: _declined,
    wire.PaymentCaptured: _captured,
    wire.PaymentCanceled: _canceled,
}
