"""Every stored topic resolves to its class whichever aggregates a process has loaded:
`ledger.topics` names each aggregate's module, which is imported when one of its topics is
first met."""

from __future__ import annotations

import importlib
import json
import pkgutil
import subprocess
import sys

from eventsourcing.domain import Aggregate
from eventsourcing.utils import resolve_topic

import ledger
from ledger import topics


def _stored_topics() -> dict[str, str]:
    """Each explicit topic of the ledger's aggregates and their events, and the qualified
    name of its class, every module of the ledger loaded."""
    for module in pkgutil.iter_modules(ledger.__path__):
        if module.name not in {"postgres"}:  # the PostgreSQL driver's module needs psycopg
            importlib.import_module(f"ledger.{module.name}")
    found: dict[str, str] = {}
    pending: list[type] = [Aggregate]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        for owner in (cls, *vars(cls).values()):
            topic = isinstance(owner, type) and owner.__dict__.get("TOPIC")
            if isinstance(topic, str) and owner.__module__.startswith("ledger."):
                found[topic] = _name(owner)
    return found


def test_every_aggregate_with_topics_is_listed() -> None:
    stored = _stored_topics()
    prefixes = {topic.partition(":")[0] for topic in stored}
    assert prefixes == {topics.PREFIX}, prefixes
    named = {topic.partition(":")[2].split(".")[0] for topic in stored}
    assert named == set(topics.MODULES), named ^ set(topics.MODULES)
    for topic, where in stored.items():
        aggregate = topic.partition(":")[2].split(".")[0]
        assert where.startswith(topics.MODULES[aggregate] + ":"), (topic, where)


def test_a_fresh_process_resolves_every_topic_with_the_event_store_alone() -> None:
    stored = _stored_topics()
    script = (
        "import json, sys\n"
        "import ledger.event_store\n"
        "from eventsourcing.utils import resolve_topic\n"
        "loaded = 'ledger.payment' in sys.modules\n"
        "found = {}\n"
        "for topic in json.loads(sys.stdin.read()):\n"
        "    cls = resolve_topic(topic)\n"
        "    found[topic] = f'{cls.__module__}:{cls.__qualname__}'\n"
        "print(json.dumps({'loaded_before': loaded, 'found': found}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(sorted(stored)),
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    answer = json.loads(done.stdout)
    assert answer["loaded_before"] is False  # the payment's topics resolved on demand
    # The same class as here, where every aggregate's module was imported first.
    assert answer["found"] == {topic: _name(resolve_topic(topic)) for topic in stored}


def _name(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"
