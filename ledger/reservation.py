"""A reservation: the offline decision for one sale that also holds the headroom.

`decide` is advice and holds nothing: two devices asking at once both hear "yes" for the last
slot. A reservation is the same decision taken on the location's stream, so granting it and
holding its amount are one write: two devices (or processes) racing for the last slot collide
on the location's next version, and the second decides again against the first one's hold (a
pending transfer, in ledger terms). The hold counts against every limit until the payment is
confirmed offline (the confirmation consumes it), the sale is abandoned (released) or it
expires.

The answer is a fact too: this stream records it, granted or refused, with what the check saw
(its reasons and the headroom), so a retry of the same request gets the same answer, even
after the headroom changed; a different request for the same sale is an IDEMPOTENCY_CONFLICT.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from eventsourcing.domain import Aggregate
from typing_extensions import TypedDict

from ledger.errors import Breach, Code, Conflict
from ledger.identity import reservation_id
from ledger.journal import Journaled
from ledger.limits import HeadroomRow


class ReservationRequest(TypedDict):
    """What a sale asked to reserve: a retry must ask the same."""

    amount: int
    currency: str
    device_id: str
    location_id: str


class Reservation(Journaled):
    TOPIC = "offline_ledger:Reservation"

    class Event(Aggregate.Event):
        TOPIC = "offline_ledger:Reservation.Event"

    class Created(Event, Aggregate.Created):
        TOPIC = "offline_ledger:Reservation.Created"

    class Answered(Created):
        """The decision: `granted`, or refused with `reasons` (code, message, details)."""

        TOPIC = "offline_ledger:Reservation.Answered"
        offline_id: str
        request: ReservationRequest
        granted: bool
        reasons: list[Breach]
        headroom: list[HeadroomRow]
        expires_at: datetime | None
        occurred_at: datetime

        def apply(self, aggregate: Reservation) -> None:
            reservation: Reservation = aggregate
            reservation.offline_id = self.offline_id
            reservation.request = self.request.copy()
            reservation.granted = self.granted
            reservation.reasons = list(self.reasons)
            reservation.headroom = list(self.headroom)
            reservation.expires_at = self.expires_at
            reservation.answered_at = self.occurred_at
            reservation.released_at = None

    class Released(Event):
        """The sale was abandoned: the hold is given back before it expires."""

        TOPIC = "offline_ledger:Reservation.Released"
        occurred_at: datetime

        def apply(self, aggregate: Reservation) -> None:
            aggregate.released_at = self.occurred_at

    if TYPE_CHECKING:  # set by the events' apply()
        offline_id: str
        request: ReservationRequest
        granted: bool
        reasons: list[Breach]
        headroom: list[HeadroomRow]
        expires_at: datetime | None
        answered_at: datetime
        released_at: datetime | None

    @classmethod
    def answer(
        cls,
        offline_id: str,
        request: ReservationRequest,
        *,
        reasons: list[Breach],
        headroom: list[HeadroomRow],
        expires_at: datetime | None,
        occurred_at: datetime,
    ) -> Reservation:
        return cls._create(
            cls.Answered,
            id=reservation_id(offline_id),
            offline_id=offline_id,
            request=request,
            granted=not reasons,
            reasons=reasons,
            headroom=headroom,
            expires_at=expires_at if not reasons else None,
            occurred_at=occurred_at,
        )

    def check_same(self, request: ReservationRequest) -> None:
        """A retry must be the same request: the answer was given for that one."""
        recorded: dict[str, object] = dict(self.request)
        for name, value in request.items():
            if recorded[name] != value:
                raise Conflict(
                    Code.IDEMPOTENCY_CONFLICT,
                    f"a reservation for sale {self.offline_id} was already answered with "
                    f"{name}={recorded[name]}, not {value}; a new sale needs a new offline_id",
                    field=name,
                )

    def release(self, occurred_at: datetime) -> bool:
        """False when there is nothing to give back (refused, or released already)."""
        if not self.granted or self.released_at is not None:
            return False
        self.trigger_event(self.Released, occurred_at=occurred_at)
        return True
