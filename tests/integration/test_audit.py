"""Tamper evidence: rows edited, deleted, inserted or reordered directly in the database
(a real SQLite file, real PostgreSQL) are found by `offline-ledger audit verify` at the first
bad position; an untouched log verifies with its head hash; invariants hold."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from adapters.audit import check_invariants, verify
from ledger import Ledger, LedgerError, identity
from ledger.chain import link
from ledger.location import Location
from ledger.payment import Payment
from ledger.postgres import APPEND_EVENTS_MAX
from tests.support import records as r
from tests.support.cli import run
from tests.support.event_tables import event_table

Edit = Callable[[sa.Connection, str, str], None]  # connection, events table, position column


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest) -> str:
    """A ledger with a few hundred events: payments in every state."""
    chosen = str(request.getfixturevalue(f"{request.param}_url"))
    with Ledger.open(chosen) as ledger:
        ledger.record(r.location())
        ledger.record(r.device())
        for n in range(40):
            records = r.stored_payment(amount=1000 + n, capture_method="manual")
            offline_id = records[0]["offline_id"]
            if n % 3 == 0:
                records.append(r.forwarded(offline_id, f"pi_{n}", "requires_capture"))
            if n % 9 == 0:
                records.append(r.captured(offline_id, f"pi_{n}", 1000 + n))
            ledger.record_many(records)
    return chosen


def verified(url: str, status: int) -> dict[str, Any]:
    done = run("audit", "verify", "--db", url, "--json")
    assert done.returncode == status, done.stdout + done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def row(conn: sa.Connection, table: str, column: str, position: int) -> dict[str, Any]:
    found = conn.execute(
        sa.text(
            f"SELECT originator_id, originator_version, topic, state "
            f"FROM {table} WHERE {column} = :p"
        ),
        {"p": position},
    ).one()
    return dict(found._mapping)


def edit_state(conn: sa.Connection, table: str, column: str) -> None:
    state = bytes(row(conn, table, column, 50)["state"]).replace(b"1", b"2", 1)
    conn.execute(sa.text(f"UPDATE {table} SET state = :s WHERE {column} = 50"), {"s": state})


def delete(conn: sa.Connection, table: str, column: str) -> None:
    conn.execute(sa.text(f"DELETE FROM {table} WHERE {column} = 50"))


def insert(conn: sa.Connection, table: str, column: str) -> None:
    copied = row(conn, table, column, 50) | {"originator_version": 999, "p": 100_000}
    conn.execute(
        sa.text(
            f"INSERT INTO {table} ({column}, originator_id, originator_version, "
            "topic, state) VALUES (:p, :originator_id, :originator_version, "
            ":topic, :state)"
        ),
        copied,
    )


def reorder(conn: sa.Connection, table: str, column: str) -> None:
    first, second = row(conn, table, column, 50), row(conn, table, column, 51)
    conn.execute(sa.text(f"DELETE FROM {table} WHERE {column} IN (50, 51)"))
    for position, content in ((50, second), (51, first)):
        conn.execute(
            sa.text(
                f"INSERT INTO {table} ({column}, originator_id, "
                "originator_version, topic, state) VALUES (:p, :originator_id, "
                ":originator_version, :topic, :state)"
            ),
            content | {"p": position},
        )


def edit_link(conn: sa.Connection, table: str, column: str) -> None:
    conn.execute(
        sa.text("UPDATE event_chain SET chain_hash = :h WHERE position = 70"), {"h": bytes(32)}
    )


def test_an_untouched_log_verifies_with_its_head_hash_and_count(url: str) -> None:
    result = verified(url, 0)
    with Ledger.open(url) as ledger:
        last = ledger.store.recorder.max_notification_id()
        assert result["count"] == last  # every event, none skipped
        assert verify(ledger).head_hash == result["head_hash"]
        assert check_invariants(ledger) == []
    assert result["ok"] and len(result["head_hash"]) == 64
    assert run("audit", "verify", "--db", url).stdout.startswith("OK: ")


@pytest.mark.parametrize(
    ("tamper", "kind", "position"),
    [
        (edit_state, "altered", 50),
        (delete, "deleted", 50),
        (insert, "inserted", 100_000),
        (reorder, "reordered", 50),
        (edit_link, "link_altered", 70),
    ],
)
def test_a_direct_change_to_the_database_is_found_at_the_first_bad_position(
    url: str,
    tamper: Edit,
    kind: str,
    position: int,
) -> None:
    with event_table(url) as (conn, table, column):
        tamper(conn, table, column)
    result = verified(url, 1)
    assert (result["problem"]["kind"], result["problem"]["position"]) == (kind, position)
    assert not result["ok"]
    done = run("audit", "verify", "--db", url)
    assert f"TAMPERED at position {position}" in done.stderr


def rechain_after(conn: sa.Connection, table: str, column: str, position: int) -> None:
    """Every link after `position` computed again from the one before it, as whoever deleted
    the event there and wanted the rest of the chain to hold would."""
    previous = conn.execute(
        sa.text(
            "SELECT chain_hash FROM event_chain WHERE position < :p ORDER BY position DESC LIMIT 1"
        ),
        {"p": position},
    ).scalar_one()
    rows = conn.execute(
        sa.text(
            f"SELECT {column}, originator_id, originator_version, topic, state FROM {table} "
            f"WHERE {column} > :p ORDER BY {column}"
        ),
        {"p": position},
    ).all()
    events = [
        (at, stream, version, topic, bytes(state)) for at, stream, version, topic, state in rows
    ]
    for at, _, chained in link(bytes(previous), events):
        conn.execute(
            sa.text("UPDATE event_chain SET chain_hash = :h WHERE position = :p"),
            {"h": chained, "p": at},
        )


@pytest.mark.parametrize(("deleted", "rechained"), [(50, False), (50, True), (None, False)])
def test_a_deleted_event_is_found_at_its_position_with_what_verified_before_it(
    url: str, deleted: int | None, rechained: bool
) -> None:
    """The event deleted and its link left, in the middle (with the links after it computed
    again, or not) or at the end: reported at its position, with the count, head hash and
    marks of the events before it."""
    with event_table(url) as (conn, table, column):
        last = int(conn.execute(sa.text(f"SELECT max({column}) FROM {table}")).scalar_one())
    position = last if deleted is None else deleted
    marks = {position - 1, last}
    with Ledger.open(url) as ledger:
        before = verify(ledger, marks=marks)
    with event_table(url) as (conn, table, column):
        conn.execute(sa.text(f"DELETE FROM {table} WHERE {column} = :p"), {"p": position})
        if rechained:
            rechain_after(conn, table, column, position)
    with Ledger.open(url) as ledger:
        result = verify(ledger, marks=marks)
    assert result.problem is not None
    assert (result.problem.kind, result.problem.position) == ("deleted", position)
    assert (result.count, result.head_hash) == before.marks[position - 1]
    assert result.marks == {position - 1: before.marks[position - 1]}


def test_a_walk_over_many_pages_stops_at_the_first_problem_and_leaves_no_reader(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pages of a few rows (PostgreSQL's next page read by a thread while one is walked): the
    same count and head hash as in one page, the invariants read alike, and a problem found
    midway leaves no thread reading."""
    with Ledger.open(url) as ledger:
        whole = verify(ledger)
        monkeypatch.setattr("adapters.audit.STREAM_ROWS", 7)
        paged = verify(ledger)
        assert (paged.ok, paged.count, paged.head_hash) == (True, whole.count, whole.head_hash)
        assert check_invariants(ledger) == []
    with event_table(url) as (conn, table, column):
        edit_state(conn, table, column)
    with Ledger.open(url) as ledger:
        result = verify(ledger)
    assert result.problem is not None
    assert (result.problem.kind, result.problem.position, result.count) == ("altered", 50, 49)
    assert not [t for t in threading.enumerate() if t.name == "verify-prefetch"]


def test_events_saved_past_the_domain_rules_break_the_invariants_verify_reports(
    url: str,
) -> None:
    """Stored through the recorder (the chain holds), a capture above the authorization and a
    second forward: the same pass that verifies the chain reports both."""
    with Ledger.open(url) as ledger:
        records = r.stored_payment(amount=1000, capture_method="manual")
        offline_id = records[0]["offline_id"]
        ledger.record_many([*records, r.forwarded(offline_id, "pi_9", "requires_capture")])
        stream = identity.payment_id(offline_id)
        version = list(ledger.store.events.get(stream))[-1].originator_version
        moment = datetime(2026, 11, 22, 12, tzinfo=UTC)
        common = {"originator_id": stream, "timestamp": moment, "occurred_at": moment}
        past_the_rules = [
            Payment.Captured(
                originator_version=version + 1,
                payment_intent_id="pi_9",
                amount_captured=5000,
                **common,
            ),
            Payment.Forwarded(
                originator_version=version + 2,
                payment_intent_id="pi_9",
                status="succeeded",
                implied=False,
                reported_late=False,
                **common,
            ),
        ]
        ledger.store.recorder.insert_events(
            [ledger.store.mapper.to_stored_event(event) for event in past_the_rules]
        )
        result = verify(ledger)
        assert result.problem is None
        assert result.invariant_problems == [
            f"payment {offline_id}: 5000 captured, 1000 authorized",
            f"payment {offline_id} was forwarded twice without a DuplicateForwardDetected",
        ]
        assert check_invariants(ledger) == result.invariant_problems


def test_events_written_after_verification_extend_the_chain(url: str) -> None:
    before = verified(url, 0)
    with Ledger.open(url) as ledger:
        ledger.record_many(r.stored_payment())
    after = verified(url, 0)
    assert after["count"] == before["count"] + 4  # created, collected, confirmed; stored
    assert after["head_hash"] != before["head_hash"]


def test_a_rebuild_finds_a_corrupted_projection_row_and_swaps_in_the_right_one(
    url: str,
) -> None:
    assert run("report", "--db", url, "--format", "json").returncode == 0  # live read models
    clean = run("audit", "rebuild", "--db", url, "--json")
    assert clean.returncode == 0 and json.loads(clean.stdout)["clean"]
    with event_table(url) as (conn, _, _):
        offline_id = conn.execute(sa.text("SELECT offline_id FROM payments LIMIT 1")).scalar()
        conn.execute(
            sa.text("UPDATE payments SET amount = amount + 1 WHERE offline_id = :o"),
            {"o": offline_id},
        )
        conn.execute(
            sa.text(
                "DELETE FROM offline_stored WHERE offline_id IN "
                "(SELECT offline_id FROM offline_stored LIMIT 1)"
            )
        )
    drifted = run("audit", "rebuild", "--db", url, "--json")
    assert drifted.returncode == 1
    tables = {t["table"]: t for t in json.loads(drifted.stdout)["tables"]}
    assert tables["payments"]["differing_count"] == 1
    assert len(tables["offline_stored"]["only_rebuilt"]) == 1
    assert run("audit", "rebuild", "--db", url, "--swap").returncode == 0
    after = run("audit", "rebuild", "--db", url, "--json")
    assert after.returncode == 0 and json.loads(after.stdout)["clean"]


def newest_event_at(ledger: Ledger) -> datetime:
    """When the newest event in the store was recorded: as of that moment everything recorded
    so far counts, and nothing recorded after it (read from the store, not the test's clock)."""
    return max(
        ledger.decode(notification).timestamp
        for notification in ledger.store.recorder.select_notifications(start=None, limit=1_000)
    )


def test_as_of_gives_each_state_as_it_was_recorded_then(sqlite_url: str) -> None:
    """Moments between the records (each the newest event's): at each one, the payment's status
    and the location's stored count are those the records so far imply, computed here by hand."""
    with Ledger.open(sqlite_url) as ledger:
        ledger.record(r.location())
        ledger.record(r.device())
        records = r.stored_payment(amount=1500)
        offline_id = records[0]["offline_id"]
        records.append(r.forwarded(offline_id, "pi_1", "succeeded"))
        expected = [("created", 0), ("collected", 0), ("stored", 1), ("captured", 0)]
        moments = []
        for record in records:
            ledger.record(record)
            moments.append(newest_event_at(ledger))
    for moment, (status, stored) in zip(moments, expected, strict=True):
        payment = json.loads(
            run(
                "audit",
                "as-of",
                moment.isoformat(),
                "--offline-id",
                offline_id,
                "--db",
                sqlite_url,
                "--json",
            ).stdout
        )
        location = json.loads(
            run(
                "audit",
                "as-of",
                moment.isoformat(),
                "--location",
                "tml_1",
                "--db",
                sqlite_url,
                "--json",
            ).stdout
        )
        whole = json.loads(
            run("audit", "as-of", moment.isoformat(), "--db", sqlite_url, "--json").stdout
        )
        assert payment["status"] == status
        assert location["offline_payments_count"] == stored
        assert whole["payments_by_status"] == {status: {"usd": {"count": 1, "amount": 1500}}}
    before = run("audit", "as-of", "2000-01-01", "--offline-id", offline_id, "--db", sqlite_url)
    assert before.returncode == 1 and "did not exist" in before.stderr


def test_an_export_imports_into_an_empty_database_with_the_same_head_hash(
    url: str,
    sqlite_url: str,
    tmp_path: Path,
) -> None:
    source = verified(url, 0)
    exported = run("audit", "export", "--db", url, "--out", str(tmp_path / "export"), "--json")
    assert exported.returncode == 0, exported.stderr
    assert json.loads(exported.stdout)["head_hash"] == source["head_hash"]
    target = sqlite_url.replace("ledger.db", "imported.db")
    imported = run("audit", "import", str(tmp_path / "export"), "--db", target, "--json")
    assert imported.returncode == 0, imported.stderr
    assert verified(target, 0)["head_hash"] == source["head_hash"]
    lines = (tmp_path / "export" / "events-00001.jsonl").read_text().splitlines()
    lines[3], lines[4] = lines[4], lines[3]
    (tmp_path / "export" / "events-00001.jsonl").write_text("\n".join(lines) + "\n")
    refused = run(
        "audit",
        "import",
        str(tmp_path / "export"),
        "--db",
        sqlite_url.replace("ledger.db", "other.db"),
    )
    assert refused.returncode == 1 and "EXPORT_INVALID" in refused.stderr


def test_large_batches_and_single_records_chain_alike(url: str) -> None:
    """On PostgreSQL a live record's few events are linked by the insert statement itself, a
    larger batch's in Python (`ledger.postgres.APPEND_EVENTS_MAX`): interleaved, they make one
    chain."""
    with Ledger.open(url) as ledger:
        before = verify(ledger)
        batch = [record for _ in range(12) for record in r.stored_payment(amount=900)]
        assert not any(isinstance(x, LedgerError) for x in ledger.record_many(batch))
        for record in r.stored_payment(amount=901):
            ledger.record(record)
        ledger.record_many([record for _ in range(12) for record in r.stored_payment()])
        after = verify(ledger)
    assert after.ok and after.count > before.count + 2 * APPEND_EVENTS_MAX


def test_a_release_past_the_domain_rules_breaks_the_stored_totals_verify_reports(
    url: str,
) -> None:
    """A location's release of a payment that was never forwarded, declined or canceled,
    stored through the recorder: the location's stored totals and its payments' disagree, and
    the problem names the location's stream as the log does (its id in hex)."""
    with Ledger.open(url) as ledger:
        records = r.stored_payment(amount=1000)
        offline_id = records[0]["offline_id"]
        ledger.record_many(records)
        stream = identity.location_id(records[0]["location_id"])
        version = list(ledger.store.events.get(stream))[-1].originator_version
        moment = datetime(2026, 11, 22, 12, tzinfo=UTC)
        released = Location.PaymentReleased(
            originator_id=stream,
            originator_version=version + 1,
            timestamp=moment,
            occurred_at=moment,
            offline_id=offline_id,
            reason="forwarded",
        )
        ledger.store.recorder.insert_events([ledger.store.mapper.to_stored_event(released)])
        result = verify(ledger)
        assert result.problem is None
        [problem] = result.invariant_problems
        shown = re.fullmatch(
            rf"stored at location stream {stream.hex}, device {records[0]['device_id']}, usd: "
            r"the location counts \((\d+), (\d+)\) \(count, amount\), "
            r"its payments \((\d+), (\d+)\)",
            problem,
        )
        assert shown is not None, problem
        by_location, by_payments = map(int, shown.groups()[:2]), map(int, shown.groups()[2:])
        assert [p - q for p, q in zip(by_payments, by_location, strict=True)] == [1, 1000]
        assert check_invariants(ledger) == result.invariant_problems
