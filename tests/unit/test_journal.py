"""`Journaled` makes an aggregate's events directly from their fields: the same event as the
library's for the same names in any order (keywords; a created event's fields as a dict), and
the library's own error for names the event does not have."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path
from uuid import uuid4

import pytest
from eventsourcing.domain import Aggregate

import ledger
from ledger.journal import Journaled
from ledger.location import Location
from ledger.payment import Payment


class Toy(Journaled):
    class Created(Aggregate.Created):
        first: int
        second: str

    class Renamed(Aggregate.Event):
        first: int
        second: str

        def apply(self, aggregate: Toy) -> None:
            aggregate.first = self.first  # type: ignore[attr-defined]
            aggregate.second = self.second  # type: ignore[attr-defined]


def test_the_same_names_in_another_order_make_the_same_event() -> None:
    in_order = Toy._create_fields(Toy.Created, uuid4(), {"first": 1, "second": "b"})
    reordered = Toy._create_fields(Toy.Created, uuid4(), {"second": "b", "first": 1})
    made, remade = in_order.pending_events[-1], reordered.pending_events[-1]
    assert (made.first, made.second) == (remade.first, remade.second) == (1, "b")  # type: ignore[attr-defined]
    assert list(vars(made))[3:] == list(vars(remade))[3:]


def test_a_name_the_event_does_not_have_gets_the_librarys_error() -> None:
    with pytest.raises(TypeError, match="third"):
        Toy._create_fields(Toy.Created, uuid4(), {"first": 1, "third": "c"})


def _trigger_fields_calls() -> list[tuple[str, str, str, ast.expr]]:
    """Every `<receiver>.trigger_fields(<aggregate>.<Event>, <dict>)` in the ledger (the
    journal's own excepted), whatever its receiver: its module, its event's owner (`self` or
    a class's name), the event's name and the dict. Every mention of `trigger_fields` must be
    such a call: one taken as a value (and called by another name) could not be read."""
    found = []
    for path in sorted(Path(ledger.__file__).parent.glob("*.py")):
        if path.stem == "journal":
            continue
        tree = ast.parse(path.read_text(), str(path))
        calls = [
            node
            for node in ast.walk(tree)
            if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "trigger_fields"
        ]
        mentions = [
            node
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and node.attr == "trigger_fields"
        ]
        assert len(mentions) == len(calls), f"{path.stem}: trigger_fields taken as a value"
        for node in calls:
            shown = f"{path.stem}: {ast.unparse(node)}"
            assert len(node.args) == 2 and not node.keywords, f"{shown}: not (event, fields)"
            event, fields = node.args
            assert isinstance(event, ast.Attribute), shown
            assert isinstance(event.value, ast.Name), shown
            found.append((path.stem, event.value.id, event.attr, fields))
    return found


def test_every_trigger_names_its_events_fields_in_their_order() -> None:
    """`trigger_fields` takes the fields in their order without asking (the stored bytes
    follow it): each of the ledger's triggers writes them so, as a literal whose keys are
    all written out (no `**`, no name), each of the event's fields once."""
    aggregates = {"payment": Payment, "location": Location, "Payment": Payment}
    aggregates["Location"] = Location
    calls = _trigger_fields_calls()
    assert {module for module, owner, _, _ in calls if owner == "self"} == {"payment", "location"}
    for module, owner, name, fields in calls:
        where = f"{module}: {owner}.{name}"
        owned = module if owner == "self" else owner
        assert owned in aggregates, f"{where}: an event of an aggregate this test does not know"
        event = getattr(aggregates[owned], name)
        own = [field.name for field in dataclasses.fields(event)][3:]
        assert isinstance(fields, ast.Dict), f"{where}: not a literal"
        assert all(isinstance(key, ast.Constant) for key in fields.keys), (
            f"{where}: a key not written out"
        )
        assert [key.value for key in fields.keys if isinstance(key, ast.Constant)] == own, where


def test_keywords_in_another_order_make_the_same_event() -> None:
    toy = Toy._create_fields(Toy.Created, uuid4(), {"first": 1, "second": "b"})
    toy.trigger_event(Toy.Renamed, second="c", first=2)
    toy.trigger_event(Toy.Renamed, first=3, second="d")
    reordered, in_order = toy.pending_events[-2:]
    assert list(vars(reordered)) == list(vars(in_order))
    assert (reordered.first, reordered.second, toy.version) == (2, "c", 3)  # type: ignore[attr-defined]
    with pytest.raises(TypeError, match="third"):
        toy.trigger_event(Toy.Renamed, first=1, third="c")
