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

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from itertools import compress
from typing import Any, Self
from uuid import UUID

from eventsourcing import domain
from eventsourcing.domain import (
    Aggregate,
    CanCreateTimestamp,
    CanInitAggregate,
    CanMutateAggregate,
    DomainEvent,
    ProgrammingError,
    _check_explicit_topic_is_registered,
)
from eventsourcing.utils import get_topic

# An event of an aggregate of the ledger, as its aggregate holds it until it is saved.
PendingEvent = CanMutateAggregate[UUID]

# Event classes whose topic was checked, with the names of their own fields (those after the
# id, version and timestamp) in `__init__`'s order (None: made by their `__init__`). An event's
# fields are set in that order directly: a frozen dataclass's `__init__` sets each through
# `object.__setattr__`, several times the cost of filling its `__dict__`, for the same
# attributes in the same order.
_FIELDS: dict[type[PendingEvent], tuple[str, ...] | None] = {}
_UNSEEN: Any = ("",)  # `_FIELDS`' and `_MADE`'s answer for a class not yet seen
# Per aggregate class and created event class, what `_made_directly` found, once: as with
# `_FIELDS`, the classes are taken as they are at their first creation (an `__init__` or a
# `mutate` given to one later would not be seen; nothing in the ledger does that).
_MADE: dict[tuple[type, type], tuple[tuple[str, ...], str] | None] = {}
_FIXED_NAMES = ("originator_id", "originator_version", "timestamp")
_FIXED = len(_FIXED_NAMES)
# The library's only check after `__init__`: that the id is a UUID, as an aggregate's id is.
_LIBRARY_POST_INIT = DomainEvent.__post_init__
_LIBRARY_MUTATE = CanInitAggregate.mutate
# The library's clock, as every event class of the ledger keeps it (`_registered` checks): an
# event's timestamp is read from it directly, one call instead of three.
_LIBRARY_TIMESTAMP = CanCreateTimestamp.create_timestamp
# The library's clock function: while it is the one in place (a test may patch it), an event's
# timestamp is what it returns, made here without its Python frame.
_LIBRARY_NOW = domain.datetime_now_with_tzinfo
_now = datetime.now
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
        """The library's `trigger_event`: by `trigger_fields` when the keywords name the
        event's own fields in their order, else by the event's `__init__` (which sets them in
        its order, and says what is wrong with names it does not have)."""
        names = _FIELDS.get(event_class, _UNSEEN)
        if names is _UNSEEN:
            names = _registered(event_class, checked=bool(getattr(type(self), "TOPIC", None)))
        if names is not None and tuple(kwargs) == names:
            self.trigger_fields(event_class, kwargs)
            return
        timestamp = event_class.create_timestamp()
        made: Any = event_class  # the dataclass's own __init__
        event = made(
            originator_id=self._id,
            originator_version=self._version + 1,
            timestamp=timestamp,
            **kwargs,
        )
        self._triggered(event)

    def trigger_fields(self, event_class: type[PendingEvent], kwargs: dict[str, Any]) -> None:
        """The library's `trigger_event` with the event's own fields as one dict, in the
        fields' order and no other name (the hot triggers build it as a literal so: a call
        with keywords into `**kwargs` matches each against the parameters' names, about 600
        instructions a keyword; tests/unit/test_journal.py checks every literal), less what
        costs time on every event and checks nothing that can fail here: its check that the
        class's topic is registered runs once per class, and `mutate`'s checks that the
        event is the aggregate's next (it is made so just here) and its property setters
        give way to the attributes they set. The fields' order is not asked again here
        (`trigger_event` asks it of keywords): a tuple of the keys and its comparison cost
        about 900 instructions an event."""
        names = _FIELDS.get(event_class, _UNSEEN)
        if names is _UNSEEN:
            names = _registered(event_class, checked=bool(getattr(type(self), "TOPIC", None)))
        if names is None:  # made by its `__init__`
            self.trigger_event(event_class, **kwargs)
            return
        version = self._version + 1
        clock = domain.datetime_now_with_tzinfo
        timestamp = _now(domain.TZINFO) if clock is _LIBRARY_NOW else clock()
        # The fields fill the event's `__dict__` in one update, in their order: `|=`, which
        # `dict.update` is less its arguments' tuple and parse (about 500 instructions an
        # event).
        event: PendingEvent = object.__new__(event_class)
        state = event.__dict__  # not `vars()`: a tuple and a lookup more a call
        state["originator_id"] = self._id
        state["originator_version"] = version
        state["timestamp"] = timestamp
        state |= kwargs
        event.apply(self)
        self._version = version
        self._modified_on = timestamp
        self._pending_events.append(event)
        journal = _JOURNAL.get()
        if journal is not None:
            journal.append(event)

    def _triggered(self, event: PendingEvent) -> None:
        """An event made by its `__init__` applied and noted, as `trigger_fields` does."""
        event.apply(self)
        self._version = event.originator_version
        self._modified_on = event.timestamp
        self._pending_events.append(event)
        journal = _JOURNAL.get()
        if journal is not None:
            journal.append(event)

    def collect_events(self) -> list[PendingEvent]:
        """The library's `collect_events` (the pending events, which the aggregate then
        forgets) in one copy: the library pops them one at a time from the list's front."""
        collected = self._pending_events.copy()
        self._pending_events.clear()
        return collected

    @classmethod
    def _create(
        cls, event_class: type[CanInitAggregate[UUID]], *, id: UUID | None = None, **kwargs: Any
    ) -> Self:
        """The library's `_create`, as `_create_fields` makes it."""
        return cls._create_fields(event_class, id, kwargs)

    @classmethod
    def _create_fields(
        cls, event_class: type[CanInitAggregate[UUID]], id: UUID | None, kwargs: dict[str, Any]
    ) -> Self:
        """The library's `_create` with the created event's own fields as one dict (as
        `trigger_fields` takes them), made directly when the aggregate is as plain as the
        ledger's: given its id, no `__init__` of its own, its created event a plain dataclass
        (`_registered`) mutated by the library's own `mutate`. Then the event's fields are
        filled in their order and the aggregate made as that `mutate` makes it (its base
        fields set, the event applied) without the library's per-creation work: the event's
        frozen `__init__`, the topic resolved back to this class, two signatures' parameters
        filtered out of the event's fields."""
        made = _MADE.get((cls, event_class), _UNSEEN)
        if made is _UNSEEN:
            made = _made_directly(cls, event_class)
        own, topic = made if made is not None else ((), "")
        # In the fields' order, as the ledger's creations name them; any other order of the
        # same names is filled name by name, and other names get the library's own error.
        ordered = tuple(kwargs) == own
        if made is None or type(id) is not UUID or not (ordered or kwargs.keys() == set(own)):
            aggregate = super()._create(event_class, id=id, **kwargs)
            event = aggregate.pending_events[-1]
        else:
            version = cls.INITIAL_VERSION
            clock = domain.datetime_now_with_tzinfo
            timestamp = _now(domain.TZINFO) if clock is _LIBRARY_NOW else clock()
            event = object.__new__(event_class)
            state = event.__dict__  # not `vars()`: a tuple and a lookup more a call
            state["originator_id"] = id
            state["originator_version"] = version
            state["timestamp"] = timestamp
            state["originator_topic"] = topic
            if ordered:
                state |= kwargs
            else:
                for name in own:
                    state[name] = kwargs[name]
            aggregate = object.__new__(cls)
            aggregate.__base_init__(id, version, timestamp)
            event.apply(aggregate)
            aggregate._pending_events.append(event)
        journal = _JOURNAL.get()
        if journal is not None:
            journal.append(event)
        return aggregate


def _made_directly(
    cls: type[Journaled], event_class: type[CanInitAggregate[UUID]]
) -> tuple[tuple[str, ...], str] | None:
    """Whether `_create_fields` makes `cls` with `event_class` directly, asked once per pair
    of classes (the answer is the classes', not the creation's): the created event's own
    fields (after its topic) and the aggregate's topic, or None (by the library)."""
    names = _FIELDS.get(event_class, _UNSEEN)
    if names is _UNSEEN:
        names = _registered(event_class, checked=bool(getattr(cls, "TOPIC", None)))
    plain = (
        names is not None
        and names[:1] == ("originator_topic",)
        and cls.__init__ is object.__init__
        and event_class.mutate is _LIBRARY_MUTATE
    )
    made = (names[1:], get_topic(cls)) if plain and names is not None else None
    _MADE[(cls, event_class)] = made
    return made


def _registered(event_class: type[PendingEvent], *, checked: bool) -> tuple[str, ...] | None:
    """Check once that the class's topic is registered (as the library's `trigger_event` does
    every time), and note its own fields (after the id, version and timestamp) in the order
    its dataclass `__init__` sets them: the order the mapper writes them in, byte for byte.
    None when the `__init__` does more than
    set every field from its argument (a default, a field it leaves out, a `__post_init__`
    beyond the library's check of the id, a clock of its own): such events are made by the
    `__init__`."""
    if checked:
        if event_class.__name__ == "Event":
            raise ProgrammingError("Triggering base 'Event' class is prohibited.")
        _check_explicit_topic_is_registered(event_class)
    dataclass: Any = event_class  # every event class is made a dataclass by its metaclass
    fields = dataclasses.fields(dataclass)
    plain = (
        [field.name for field in fields[:_FIXED]] == list(_FIXED_NAMES)
        and all(
            field.init
            and field.default is dataclasses.MISSING
            and field.default_factory is dataclasses.MISSING
            for field in fields
        )
        and getattr(event_class, "__post_init__", None) is _LIBRARY_POST_INIT
        and event_class.create_timestamp is _LIBRARY_TIMESTAMP
    )
    names = tuple(field.name for field in fields[_FIXED:]) if plain else None
    _FIELDS[event_class] = names
    return names


def in_journal_order(
    journal: list[PendingEvent], pending: list[PendingEvent]
) -> list[PendingEvent]:
    """`pending` (every event about to be saved) in the journal's order. When the journal did
    not see them all (some triggered outside `recording`), `pending` as it is, aggregate by
    aggregate: mixing the two orders could put an aggregate's later event before its earlier
    one."""
    # Built by `map` and `compress` in C: no bytecode per event, as comprehensions would run.
    waiting = set(map(id, pending))
    ordered = list(compress(journal, map(waiting.__contains__, map(id, journal))))
    return ordered if len(ordered) == len(pending) else pending
