"""Taking and giving back reservations on a unit of work (see `ledger.reservation`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ledger import identity
from ledger.device import Device
from ledger.errors import Code, Conflict, NotFound
from ledger.idempotency import IdempotencyKey, field_digests
from ledger.limits import Policy, Sale, Totals, breaches_of
from ledger.location import Location
from ledger.reservation import Reservation, ReservationRequest
from ledger.unit_of_work import UnitOfWork, require_location


def reserve(
    uow: UnitOfWork,
    policy: Policy,
    offline_id: str,
    request: ReservationRequest,
    at: datetime,
    hold_for: timedelta,
) -> Reservation:
    """The recorded answer for this sale, or a new one: granted (and the headroom held until
    `at + hold_for`) when storing it would break no rule beside what is stored and held, by
    the configuration in force at `at`."""
    known: Reservation | None = uow.get(identity.reservation_id(offline_id))
    if known is not None:
        known.check_same(request)
        return known
    location = require_location(uow, request["location_id"])
    device: Device | None = uow.get(identity.device_id(request["device_id"]))
    location.free_expired(at)
    sale = Sale(request["amount"], request["currency"], request["device_id"], "prefer_online", at)
    totals = Totals.held(location, request["device_id"], at)
    with location.judged_at(at):
        reasons = breaches_of(policy.violations(sale, location, device, totals))
        headroom = [row.to_dict() for row in policy.headroom(sale, location, totals)]
    expires_at = at + hold_for
    reservation = Reservation.answer(
        offline_id,
        request,
        reasons=reasons,
        headroom=headroom,
        expires_at=expires_at,
        occurred_at=at,
    )
    uow.add(reservation)
    if reservation.granted:
        amounts = {request["currency"]: request["amount"]}
        location.hold(offline_id, request["device_id"], amounts, 1, expires_at, at)
    return reservation


def release(uow: UnitOfWork, offline_id: str, at: datetime) -> Reservation:
    """Give the held headroom back (the sale was abandoned); a no-op when nothing is held."""
    reservation: Reservation | None = uow.get(identity.reservation_id(offline_id))
    if reservation is None:
        raise NotFound(
            Code.UNKNOWN_RESERVATION,
            f"no reservation was asked for sale {offline_id}",
            field="offline_id",
        )
    if reservation.release(at):
        require_location(uow, reservation.request["location_id"]).free(offline_id, "released", at)
    return reservation


def allow(
    uow: UnitOfWork,
    device_id: str,
    location_id: str,
    amounts: dict[str, int],
    count: int,
    valid_until: datetime,
    at: datetime,
) -> Location:
    """Grant (or renew, or shrink) the device's offline allowance: what was asked, cut down
    to what the location's and the device's limits leave beside what is stored and every
    other hold, so that all of it together stays within them (those in force at `at`).

    A request is its device, location and moment `at`: asked again (a retry after a lost
    answer), nothing is stored and the location is returned as it is (the grant of that
    moment is in it); asked again with other amounts, count or valid_until, it is an
    IDEMPOTENCY_CONFLICT naming the field, nothing stored."""
    stream = identity.allowance_request_id(location_id, device_id, at)
    request = field_digests(
        {"amounts": amounts, "count": count, "valid_until": valid_until.astimezone(UTC).isoformat()}
    )
    known: IdempotencyKey | None = uow.get(stream)
    if known is not None:
        try:
            known.check_same(request)
        except Conflict as conflict:
            raise Conflict(
                Code.IDEMPOTENCY_CONFLICT,
                f"device {device_id} already asked location {location_id} for an allowance "
                f"at {at.isoformat()} with another '{conflict.field}'; a new request needs a "
                "new `at`",
                field=conflict.field,
            ) from None
        return require_location(uow, location_id)
    uow.add(IdempotencyKey.record(stream.hex, "allowance", request, stream))
    location = require_location(uow, location_id)
    if uow.get(identity.device_id(device_id)) is None:
        raise NotFound(
            Code.UNKNOWN_DEVICE,
            f"device {device_id} is unknown: record device.connected_online for it first",
            field="device_id",
        )
    location.free_expired(at)
    totals = Totals.held(location, device_id, at, excluding=f"allowance/{device_id}")
    with location.judged_at(at):
        limits, device_limits = location.limits, location.device_limits
    granted: dict[str, int] = {}
    for currency, asked in sorted(amounts.items()):
        room = [asked]
        if currency in limits.stored_amount_max:
            room.append(limits.stored_amount_max[currency] - totals.amounts.get(currency, 0))
        if currency in device_limits.stored_amount_max:
            maximum = device_limits.stored_amount_max[currency]
            room.append(maximum - totals.device_amounts.get(currency, 0))
        granted[currency] = max(min(room), 0)
    counts = [count]
    if limits.stored_count_max is not None:
        counts.append(limits.stored_count_max - totals.count)
    if device_limits.stored_count_max is not None:
        counts.append(device_limits.stored_count_max - totals.device_count)
    location.grant_allowance(device_id, granted, max(min(counts), 0), valid_until, at)
    return location
