"""`Journaled` makes an aggregate's created event directly from its fields: the same event
as the library's `_create` for the same names in any order, and the library's own error for
names the event does not have."""

from __future__ import annotations

from uuid import uuid4

import pytest
from eventsourcing.domain import Aggregate

from ledger.journal import Journaled


class Toy(Journaled):
    class Created(Aggregate.Created):
        first: int
        second: str


def test_the_same_names_in_another_order_make_the_same_event() -> None:
    in_order = Toy._create_fields(Toy.Created, uuid4(), {"first": 1, "second": "b"})
    reordered = Toy._create_fields(Toy.Created, uuid4(), {"second": "b", "first": 1})
    made, remade = in_order.pending_events[-1], reordered.pending_events[-1]
    assert (made.first, made.second) == (remade.first, remade.second) == (1, "b")  # type: ignore[attr-defined]
    assert list(vars(made))[3:] == list(vars(remade))[3:]


def test_a_name_the_event_does_not_have_gets_the_librarys_error() -> None:
    with pytest.raises(TypeError, match="third"):
        Toy._create_fields(Toy.Created, uuid4(), {"first": 1, "third": "c"})
