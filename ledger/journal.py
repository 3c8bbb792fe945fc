"""The order in which a unit of work's events happened, across all the aggregates it touched.

An aggregate keeps its own new events in order, but a batch of records touches many aggregates,
and saving them aggregate by aggregate would put the log (and so the hash chain over it) in an
order that depends on how the records were batched: a payment's second step would land before
another payment's first step because both payments were in the same batch. Saving the events in
the order they were triggered makes the log the same whether a file is recorded one record at a
time or in batches of any size. `Journaled` notes every new event of an aggregate in the journal
of the unit of work that is applying records (`recording`); outside one it notes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Self
from uuid import UUID

from eventsourcing.domain import (
    Aggregate,
    CanInitAggregate,
    CanMutateAggregate,
    ProgrammingError,
    _check_explicit_topic_is_registered,
)

# An event of an aggregate of the ledger, as its aggregate holds it until it is saved.
PendingEvent = CanMutateAggregate[UUID]

_REGISTERED: set[type[PendingEvent]] = set()  # event classes whose topic was checked
_JOURNAL: ContextVar[list[PendingEvent] | None] = ContextVar("ledger_journal", default=None)


@contextmanager
def recording(journal: list[PendingEvent]) -> Iterator[None]:
    """Append to `journal` every event a `Journaled` aggregate triggers or is created with."""
    token = _JOURNAL.set(journal)
    try:
        yield
    finally:
        _JOURNAL.reset(token)


class Journaled(Aggregate):
    """An aggregate whose new events are noted in the journal being recorded, if any."""

    def trigger_event(self, event_class: type[PendingEvent], **kwargs: Any) -> None:
        """The library's `trigger_event`, less what costs time on every event and checks
        nothing that can fail here: its check that the class's topic is registered runs once
        per class, and `mutate`'s checks that the event is the aggregate's next (it is made
        so just here) and its property setters give way to the attributes they set."""
        if event_class not in _REGISTERED and getattr(type(self), "TOPIC", None):
            if event_class.__name__ == "Event":
                raise ProgrammingError("Triggering base 'Event' class is prohibited.")
            _check_explicit_topic_is_registered(event_class)
            _REGISTERED.add(event_class)
        version = self._version + 1
        make: Any = event_class
        event: PendingEvent = make(
            originator_id=self._id,
            originator_version=version,
            timestamp=event_class.create_timestamp(),
            **kwargs,
        )
        event.apply(self)
        self._version = version
        self._modified_on = event.timestamp
        self._pending_events.append(event)
        journal = _JOURNAL.get()
        if journal is not None:
            journal.append(event)

    @classmethod
    def _create(
        cls, event_class: type[CanInitAggregate[UUID]], *, id: UUID | None = None, **kwargs: Any
    ) -> Self:
        aggregate = super()._create(event_class, id=id, **kwargs)
        journal = _JOURNAL.get()
        if journal is not None:
            journal.append(aggregate.pending_events[-1])
        return aggregate


def in_journal_order(
    journal: list[PendingEvent], pending: list[PendingEvent]
) -> list[PendingEvent]:
    """`pending` (every event about to be saved) in the journal's order. When the journal did
    not see them all (some triggered outside `recording`), `pending` as it is, aggregate by
    aggregate: mixing the two orders could put an aggregate's later event before its earlier
    one."""
    waiting = {id(event) for event in pending}
    ordered = [event for event in journal if id(event) in waiting]
    return ordered if len(ordered) == len(pending) else pending
