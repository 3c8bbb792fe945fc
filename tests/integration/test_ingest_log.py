"""The ingest path stores what one `Ledger.record` per line stores (hypothesis).

Each example is a random record file (`tests.support.generators.scenarios`: refusals, repeats
and idempotent retries, out-of-order steps, limit breaches, plus lines that do not parse),
written once through `adapters.jsonl.ingest` in batches of a random size and once line by line
through `Ledger.record`, each into a fresh store, under the same fixed clock (the library
stamps every event and snapshot with the time it was made: the only input the file does not
give). Then the two stores must hold the same log: the same events in the same notification
order, each byte for byte (topic, state, stream id and version), and every line must have had
the same outcome. The audit's verify must find both hash chains intact and ending in the same
head hash.

Snapshots are not part of the log and may differ: a batch snapshots an aggregate at the version
it leaves it, one record at a time at the interval's own version. Taken every few events here,
they must load to the same ledger: both stores, reopened with nothing in memory, say the same
about every location, device and payment.
"""

from __future__ import annotations

import json
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.audit import verify
from adapters.jsonl import IngestSummary, ingest
from ledger import Ledger, LedgerError
from ledger.wire import parse_line
from tests.conftest import POSTGRES_ENV, POSTGRES_SKIP, postgres_base_url
from tests.support.fixed_clock import fixed_clock_frequent_snapshots
from tests.support.generators import Scenario, scenarios, snapshot

SETTINGS = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}
# Lines that never reach the rules: not JSON, an unknown type, a record missing its fields.
UNPARSEABLE = (b"{not json", b'{"type": "payment.teleported"}', b'{"type": "payment.created"}')

StoredRow = tuple[str, int, str, bytes]  # stream id, version, topic, state


def lines_of(scenario: Scenario, junk: Sequence[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
    """The scenario as numbered JSON Lines, with the unparseable lines inserted at random."""
    texts = [json.dumps(record).encode() for record in scenario.all_records]
    for index, text in junk:
        texts.insert(index % (len(texts) + 1), text)
    return list(enumerate(texts, start=1))


def record_one_by_one(ledger: Ledger, lines: list[tuple[int, bytes]]) -> dict[str, Any]:
    """Each line through `Ledger.record`, told as the ingest summary tells it (`told`)."""
    summary = IngestSummary()
    for number, text in lines:
        try:
            result = ledger.record(parse_line(text))
        except LedgerError as error:
            summary.rejected.append({"line": number, "code": str(error.code)})
            continue
        if not result.recorded:
            summary.duplicates += 1
            continue
        summary.accepted += 1
        summary.flagged += [
            {"line": number, "code": b["code"], "message": b["message"]} for b in result.breaches
        ]
    return told(summary)


def told(summary: IngestSummary) -> dict[str, Any]:
    """What a summary says about each line: refused (with its code), flagged, repeats."""
    return {
        "accepted": summary.accepted,
        "duplicates": summary.duplicates,
        "rejected": [(entry["line"], entry["code"]) for entry in summary.rejected],
        "flagged": [(entry["line"], entry["code"], entry["message"]) for entry in summary.flagged],
    }


def stored_log(ledger: Ledger) -> list[StoredRow]:
    """Every stored event in notification order, as the library reads it back."""
    notifications = ledger.store.recorder.select_notifications(start=None, limit=1_000_000)
    return [
        (str(n.originator_id), n.originator_version, n.topic, bytes(n.state)) for n in notifications
    ]


def compare(
    single_url: str,
    ingested_url: str,
    scenario: Scenario,
    lines: list[tuple[int, bytes]],
    size: int,
) -> None:
    with fixed_clock_frequent_snapshots():
        with Ledger.open(single_url) as single:
            one_by_one = record_one_by_one(single, lines)
            single_log = stored_log(single)
            single_chain = verify(single)
        with Ledger.open(ingested_url) as ingested:
            summary = ingest(ingested, iter(lines), batch_size=size)
            ingested_log = stored_log(ingested)
            ingested_chain = verify(ingested)
        with Ledger.open(single_url) as single, Ledger.open(ingested_url) as ingested:
            ids = scenario.offline_ids
            assert snapshot(ingested, ids) == snapshot(single, ids)
    assert told(summary) == one_by_one
    assert ingested_log == single_log
    assert single_chain.ok and ingested_chain.ok
    assert ingested_chain.count == single_chain.count == len(single_log)
    assert ingested_chain.head_hash == single_chain.head_hash


junk_lines = st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from(UNPARSEABLE)), max_size=3)


@settings(max_examples=25, **SETTINGS)
@given(scenario=scenarios(max_payments=10), junk=junk_lines, size=st.integers(1, 40))
def test_ingest_into_sqlite_stores_what_one_record_at_a_time_stores(
    scenario: Scenario, junk: list[tuple[int, bytes]], size: int
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        compare(
            f"sqlite:///{Path(directory) / 'single.db'}",
            f"sqlite:///{Path(directory) / 'ingested.db'}",
            scenario,
            lines_of(scenario, junk),
            size,
        )


@pytest.fixture(scope="module")
def postgres_server() -> None:
    if postgres_base_url() is None:
        pytest.skip(f"{POSTGRES_SKIP} set {POSTGRES_ENV} to run it")


@contextmanager
def fresh_schemas(count: int) -> Iterator[list[str]]:
    """`count` fresh schemas on the test server as ledger URLs, dropped afterwards (one
    example of a property test needs stores of its own, which a test's fixture cannot give)."""
    base = postgres_base_url()
    assert base is not None
    names = [f"t_{uuid.uuid4().hex[:16]}" for _ in range(count)]
    with psycopg.connect(base, autocommit=True, connect_timeout=5) as conn:
        for name in names:
            conn.execute(f'CREATE SCHEMA "{name}"')
    separator = "&" if "?" in base else "?"
    try:
        yield [f"{base}{separator}schema={name}" for name in names]
    finally:
        with psycopg.connect(base, autocommit=True, connect_timeout=5) as conn:
            for name in names:
                conn.execute(f'DROP SCHEMA "{name}" CASCADE')


@pytest.mark.postgres
@settings(max_examples=10, **SETTINGS)
@given(scenario=scenarios(max_payments=8), junk=junk_lines, size=st.integers(1, 40))
def test_ingest_into_postgres_stores_what_one_record_at_a_time_stores(
    postgres_server: None, scenario: Scenario, junk: list[tuple[int, bytes]], size: int
) -> None:
    with fresh_schemas(2) as (single_url, ingested_url):
        compare(single_url, ingested_url, scenario, lines_of(scenario, junk), size)
