"""Taking and giving back reservations on a unit of work (see `ledger.reservation`)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from ledger import identity
from ledger.device import Device
from ledger.errors import Code, NotFound
from ledger.limits import Policy, Sale, Totals, breaches_of
from ledger.location import Location
from ledger.reservation import Reservation
from ledger.unit_of_work import UnitOfWork

HOLD_DEFAULT = timedelta(minutes=5)  # long enough to collect a card and confirm


def reserve(
    uow: UnitOfWork,
    policy: Policy,
    offline_id: str,
    request: dict[str, Any],
    at: datetime,
    hold_for: timedelta,
) -> Reservation:
    """The recorded answer for this sale, or a new one: granted (and the headroom held until
    `at + hold_for`) when storing it would break no rule beside what is stored and held."""
    known: Reservation | None = uow.get(identity.reservation_id(offline_id))
    if known is not None:
        known.check_same(request)
        return known
    location = require_location(uow, request["location_id"])
    device: Device | None = uow.get(identity.device_id(request["device_id"]))
    location.free_expired(at)
    sale = Sale(request["amount"], request["currency"], request["device_id"], "prefer_online", at)
    totals = Totals.held(location, request["device_id"], at)
    reasons = breaches_of(policy.violations(sale, location, device, totals))
    expires_at = at + hold_for
    reservation = Reservation.answer(
        offline_id,
        request,
        reasons=reasons,
        headroom=[row.to_dict() for row in policy.headroom(sale, location, totals)],
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


def require_location(uow: UnitOfWork, location_id: str) -> Location:
    location: Location | None = uow.get(identity.location_id(location_id))
    if location is None:
        raise NotFound(
            Code.UNKNOWN_LOCATION,
            f"location {location_id} is unknown: record location.configured for it first",
            field="location_id",
        )
    return location
