"""Card numbers planted in every disguise and position, from outside: the installed command
(`ingest`, `import-stripe-json`, `import-stripe-report`, id arguments), the library
(`Ledger.record`) and the webhook endpoint over HTTP. Each must be refused with
CARD_NUMBER_DETECTED, store nothing, and appear nowhere: not in any table of the database
(SQLite file bytes, or every table of the PostgreSQL test schema), the rejects file, stdout,
stderr, nor the server's log. A fresh random number is planted each time, and an independent
checker (`tests.support.pan_disguises.leaked`: the digits of a text, in order) looks for it.

The tallies (tried, refused, leaked) are printed by each test (`pytest -s`).
"""

from __future__ import annotations

import csv
import io
import json
import random
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import stripe
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import make_url

from ledger import Ledger, LedgerError
from ledger.application import BATCH_SIZE_MAX
from ledger.errors import Code
from ledger.observations import BalanceTransactionObservation, Observation, PaymentIntentObservation
from tests.conftest import postgres_base_url
from tests.support import records as r
from tests.support.cli import run
from tests.support.pan_disguises import RAW_JSON_DISGUISES, TEXT_DISGUISES, leaked, random_pan
from tests.support.serve import SECRET, event, payment_intent, running

CARD = "CARD_NUMBER_DETECTED"


def database_text(url: str) -> str:
    """Everything the database holds, as text: the SQLite file's bytes (and its WAL), or
    every row of every table of the PostgreSQL test schema."""
    parsed = make_url(url)
    if parsed.drivername.startswith("sqlite"):
        path = Path(str(parsed.database))
        files = [path, path.with_name(path.name + "-wal")]
        texts = [f.read_bytes().decode("utf-8", errors="replace") for f in files if f.exists()]
        with sqlite3.connect(path) as conn:
            tables = [
                t for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            ]
            for table in tables:
                rows = conn.execute(f'SELECT * FROM "{table}"').fetchall()
                texts.append(_rows_text(table, rows))
        return "\n".join(texts)
    schema = str(parsed.query["schema"])
    base = postgres_base_url()
    assert base is not None
    with psycopg.connect(base, autocommit=True) as conn:
        tables = [
            t
            for (t,) in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (schema,),
            )
        ]
        # No table at all when the command refused its input before opening the ledger.
        return "\n".join(
            _rows_text(t, conn.execute(f'SELECT * FROM "{schema}"."{t}"').fetchall())
            for t in tables
        )


def _rows_text(table: str, rows: list[Any]) -> str:
    def cell(value: Any) -> str:
        if isinstance(value, bytes | memoryview):
            return bytes(value).decode("utf-8", errors="replace")
        return str(value)

    return table + "\n" + "\n".join(" | ".join(cell(v) for v in row) for row in rows)


class Tally:
    """Counts of a test's planted numbers, printed at its end."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.pans: list[str] = []
        self.refused = 0

    def plant(self, rng: random.Random, length: int | None = None) -> str:
        number = random_pan(rng, length)
        self.pans.append(number)
        return number

    def report(self, leaks: list[str]) -> None:
        print(f"\n{self.name}: tried {len(self.pans)}, refused {self.refused}, leaked {len(leaks)}")
        assert leaks == [], f"{len(leaks)} planted card numbers leaked"
        assert self.refused == len(self.pans)


# -- positions of a string in a wire record ----------------------------------------------------

OID = "00000000-0000-4000-8000-00000000000a"

WIRE_POSITIONS: dict[str, Callable[[Any], dict[str, Any]]] = {
    "metadata value": lambda v: r.created(metadata={"note": v}),
    "metadata key": lambda v: r.created(metadata={v: "x"}),
    "nested metadata": lambda v: r.created(metadata={"note": {"deep": [v]}}),
    "idempotency_key": lambda v: r.created(idempotency_key=v),
    "device_id": lambda v: r.created(device_id=v),
    "location_id": lambda v: r.created(location_id=v),
    "payment_intent_id": lambda v: r.created(payment_intent_id=v),
    "offline_id": lambda v: r.created(v),
    "unknown field value": lambda v: r.created() | {"colour": v},
    "unknown field name": lambda v: r.created() | {v: "blue"},
    "record type": lambda v: r.created() | {"type": v},
    "card last4": lambda v: r.collected(OID, last4=v),
    "forward_failed message": lambda v: r.forward_failed(OID, message=v),
    "location_id of a location": lambda v: r.location(v),
}


def _wire_lines(tally: Tally, rng: random.Random) -> list[str]:
    lines = []
    for disguise in TEXT_DISGUISES.values():
        for position in WIRE_POSITIONS.values():
            record = position(disguise(tally.plant(rng)))
            lines.append(json.dumps(record, ensure_ascii=rng.random() < 0.5))
    raw_positions = (
        r.created(metadata={"note": "@"}),
        r.created(idempotency_key="@"),
        r.created() | {"colour": "@"},
    )
    for raw in RAW_JSON_DISGUISES.values():
        for base in raw_positions:
            lines.append(json.dumps(base).replace('"@"', raw(tally.plant(rng))))
    # Lines that fail before any field is read, each holding a number.
    for broken in (
        lambda p: '{"type": "payment.created", "note": "' + p,  # cut
        lambda p: '{"type": "payment.created", "amount": NaN, "note": "' + p + '"}',
        lambda p: '{"type": "payment.created", "note": "\\ud800 ' + p + '"}',  # lone surrogate
        lambda p: "\ufeff" + json.dumps(r.created(metadata={"note": p})),  # a BOM
        lambda p: json.dumps(r.created(metadata={"note": p}))[:-1],  # not closed
        lambda p: p,  # not JSON at all
        lambda p: json.dumps([p]),  # not an object
    ):
        lines.append(broken(tally.plant(rng)))
    return lines


def test_ingest_refuses_every_planted_card_number_and_repeats_none(
    database: str, tmp_path: Path
) -> None:
    tally = Tally(f"ingest ({make_url(database).drivername})")
    rng = random.Random(1)
    good = [json.dumps(r.location()), json.dumps(r.device())]
    planted = _wire_lines(tally, rng)
    source = tmp_path / "planted.jsonl"
    source.write_text("\n".join(good + planted) + "\n", encoding="utf-8")
    rejects = tmp_path / "rejects.jsonl"

    done = run("ingest", str(source), "--db", database, "--rejects", str(rejects), "--json")

    summary = json.loads(done.stdout)
    assert done.returncode == 1, done.stderr
    assert summary["accepted"] == 2
    codes = {entry["line"]: entry["code"] for entry in summary["rejected"]}
    assert len(codes) == len(planted)
    tally.refused = sum(code == CARD for code in codes.values())
    wrong = {line: code for line, code in codes.items() if code != CARD}
    assert wrong == {}, [(planted[line - 3][:80], code) for line, code in wrong.items()]
    written = rejects.read_text()
    assert all(json.loads(entry)["record"] is None for entry in written.splitlines())
    tally.report(leaked(tally.pans, database_text(database), done.stdout, done.stderr, written))


def test_rejects_keep_a_masked_copy_of_lines_refused_for_other_reasons(
    sqlite_url: str, tmp_path: Path
) -> None:
    lines = [
        json.dumps(r.created() | {"colour": "ref 123456789"}),  # an unknown field
        '{"type": "payment.created", "ref": "987654321", ',  # not JSON
        json.dumps(r.created(metadata={"ref": {"deep": "55555555"}})),  # nested metadata
    ]
    source = tmp_path / "bad.jsonl"
    source.write_text("\n".join(lines) + "\n")
    rejects = tmp_path / "rejects.jsonl"

    done = run("ingest", str(source), "--db", sqlite_url, "--rejects", str(rejects))

    assert done.returncode == 1
    records = [json.loads(line)["record"] for line in rejects.read_text().splitlines()]
    assert len(records) == 3
    assert "*****6789" in records[0] and "123456789" not in records[0]
    assert "*****4321" in records[1] and "987654321" not in records[1]
    assert "****5555" in records[2] and "55555555" not in records[2]


# -- the library -------------------------------------------------------------------------------


def test_the_library_refuses_every_planted_card_number_and_stores_nothing(
    sqlite_url: str,
) -> None:
    tally = Tally("Ledger.record")
    rng = random.Random(2)
    with Ledger.open(sqlite_url) as ledger:
        ledger.record(r.location())
        ledger.record(r.device())
        before = ledger.store.recorder.max_notification_id()
        said: list[str] = []
        records = [
            position(disguise(tally.plant(rng)))
            for disguise in TEXT_DISGUISES.values()
            for position in WIRE_POSITIONS.values()
        ]
        for kind in (int, float, str):  # 15 digits: exact as a float
            records.append(r.created() | {"amount": kind(tally.plant(rng, 15))})
            records.append(r.created(metadata={"n": kind(tally.plant(rng, 15))}))
        for record in records:
            with pytest.raises(LedgerError) as refused:
                ledger.record(record)
            error = refused.value
            said += [str(error), repr(error), json.dumps(error.to_dict())]
            tally.refused += error.code is Code.CARD_NUMBER_DETECTED
        for result in ledger.record_many(records[:50]):
            assert isinstance(result, LedgerError)
            said.append(json.dumps(result.to_dict()))
        assert ledger.store.recorder.max_notification_id() == before
    tally.report(leaked(tally.pans, database_text(sqlite_url), *said))


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    disguise=st.sampled_from(sorted(TEXT_DISGUISES)),
    position=st.sampled_from(sorted(WIRE_POSITIONS)),
    length=st.integers(13, 19),
    seed=st.integers(0, 2**32),
)
def test_property_any_disguise_in_any_position_is_refused_unsaid(
    disguise: str, position: str, length: int, seed: int
) -> None:
    number = random_pan(random.Random(seed), length)
    record = WIRE_POSITIONS[position](TEXT_DISGUISES[disguise](number))
    with Ledger.open("memory://") as ledger:
        ledger.record(r.location())
        ledger.record(r.device())
        with pytest.raises(LedgerError) as refused:
            ledger.record(record)
        assert ledger.store.recorder.max_notification_id() == 2
    error = refused.value
    assert error.code is Code.CARD_NUMBER_DETECTED
    assert leaked([number], str(error), json.dumps(error.to_dict())) == []


# -- Stripe's files ----------------------------------------------------------------------------


def _pi(pi_id: str, offline_id: str, **fields: Any) -> dict[str, Any]:
    return payment_intent(offline_id, "succeeded", pi_id, **fields)


STRIPE_JSON_POSITIONS: dict[str, Callable[[str], dict[str, Any]]] = {
    "pi_ id": lambda v: _pi("pi_" + v, str(uuid.uuid4())),
    "metadata.offline_id": lambda v: _pi("pi_" + uuid.uuid4().hex[:24], v),
    "description": lambda v: _pi("pi_" + uuid.uuid4().hex[:24], str(uuid.uuid4()), description=v),
    "latest_charge": lambda v: (
        _pi("pi_" + uuid.uuid4().hex[:24], str(uuid.uuid4())) | {"latest_charge": "ch_" + v}
    ),
}


def test_import_stripe_json_refuses_every_object_holding_a_card_number(
    database: str, tmp_path: Path
) -> None:
    tally = Tally(f"import-stripe-json ({make_url(database).drivername})")
    rng = random.Random(3)
    objects = [
        position(disguise(tally.plant(rng)))
        for disguise in TEXT_DISGUISES.values()
        for position in STRIPE_JSON_POSITIONS.values()
    ]
    path = tmp_path / "payment_intents.json"
    path.write_text(json.dumps({"object": "list", "data": objects}, ensure_ascii=False))

    done = run("import-stripe-json", str(path), "--db", database, "--json")

    assert done.returncode == 1, done.stderr
    problems = json.loads(done.stdout)["problems"]
    tally.refused = sum(p["code"] == CARD for p in problems)
    outputs = [done.stdout, done.stderr]
    report = run("report", "--db", database, "--format", "json")
    tally.report(leaked(tally.pans, database_text(database), *outputs, report.stdout))


def test_import_stripe_report_refuses_every_row_holding_a_card_number(
    database: str, tmp_path: Path
) -> None:
    tally = Tally(f"import-stripe-report ({make_url(database).drivername})")
    rng = random.Random(4)
    header = [
        "balance_transaction_id",
        "created_utc",
        "currency",
        "gross",
        "fee",
        "net",
        "reporting_category",
        "payment_intent_id",
        "payment_metadata[offline_id]",
        "description",
    ]
    rows = []
    for index, disguise in enumerate(TEXT_DISGUISES.values()):
        for column in ("payment_metadata[offline_id]", "payment_intent_id", "description"):
            row = {
                "balance_transaction_id": f"txn_{index}{column[:3]}",
                "created_utc": "2026-11-22 10:15:00",
                "currency": "usd",
                "gross": "12.50",
                "fee": "0.66",
                "net": "11.84",
                "reporting_category": "charge",
                "payment_intent_id": "pi_" + uuid.uuid4().hex[:24],
                "payment_metadata[offline_id]": str(uuid.uuid4()),
                "description": "sale",
            }
            value = disguise(tally.plant(rng))
            row[column] = ("pi_" + value) if column == "payment_intent_id" else value
            rows.append([row[name] for name in header])
    text = io.StringIO()
    csv.writer(text).writerows([header, *rows])
    path = tmp_path / "report.csv"
    path.write_text(text.getvalue(), encoding="utf-8")

    done = run("import-stripe-report", str(path), "--db", database, "--json")

    assert done.returncode == 1, done.stderr
    problems = json.loads(done.stdout)["problems"]
    tally.refused = sum(p["code"] == CARD for p in problems)
    tally.report(leaked(tally.pans, database_text(database), done.stdout, done.stderr))


def test_a_real_report_and_real_payment_intents_are_not_refused(
    sqlite_url: str, tmp_path: Path
) -> None:
    """The false-positive side of the two imports above: the same files without a number."""
    path = tmp_path / "payment_intents.json"
    objects = [_pi("pi_" + uuid.uuid4().hex[:24], str(uuid.uuid4())) for _ in range(200)]
    path.write_text(json.dumps({"object": "list", "data": objects}))

    done = run("import-stripe-json", str(path), "--db", sqlite_url, "--json")

    assert done.returncode == 0, done.stdout + done.stderr


# -- id arguments of the command line ----------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["history", "@"],
        ["capture", "@"],
        ["status", "--location", "@"],
        ["report", "--location", "@"],
        ["decide", "--amount", "100", "--currency", "usd", "--device", "@", "--location", "x"],
        ["audit", "as-of", "2026-11-22T08:00:00Z", "--offline-id", "@"],
    ],
    ids=lambda args: " ".join(a for a in args if a != "@")[:30],
)
def test_an_id_argument_holding_a_card_number_is_refused_unsaid(
    sqlite_url: str, args: list[str]
) -> None:
    number = random_pan(random.Random(" ".join(args)))
    shown = TEXT_DISGUISES["dots"](number)

    done = run(*[shown if a == "@" else a for a in args], "--db", sqlite_url)

    assert done.returncode == 2
    assert CARD in done.stderr
    assert leaked([number], done.stdout, done.stderr) == []


# -- the webhook endpoint ----------------------------------------------------------------------


@pytest.fixture
def server(database: str, tmp_path: Path) -> Iterator[Any]:
    with running(database, tmp_path) as started:
        yield started


def test_the_webhook_refuses_every_event_holding_a_card_number(server: Any, database: str) -> None:
    tally = Tally(f"webhook ({make_url(database).drivername})")
    rng = random.Random(5)
    events: list[dict[str, Any]] = []
    for disguise in TEXT_DISGUISES.values():
        pi_id = "pi_" + uuid.uuid4().hex[:24]
        offline_id = str(uuid.uuid4())
        succeeded = payment_intent(offline_id, "succeeded", pi_id)
        events.append(
            event("payment_intent.succeeded", succeeded)
            | {"id": "evt_" + disguise(tally.plant(rng))}
        )
        events.append(
            event("payment_intent.succeeded", succeeded) | {"type": disguise(tally.plant(rng))}
        )
        events.append(
            event(
                "payment_intent.succeeded",
                payment_intent(offline_id, "succeeded", "pi_" + disguise(tally.plant(rng))),
            )
        )
        events.append(
            event(
                "payment_intent.succeeded",
                payment_intent(disguise(tally.plant(rng)), "succeeded", pi_id),
            )
        )
        refunded = {
            "id": "ch_" + uuid.uuid4().hex[:24],
            "object": "charge",
            "amount_refunded": 100,
            "currency": "usd",
            "payment_intent": pi_id,
            "metadata": {"offline_id": disguise(tally.plant(rng))},
        }
        events.append(event("charge.refunded", refunded))
    for sent in events:
        status, answer = server.send(sent)
        assert status == 400, answer
        tally.refused += answer["error"]["code"] == CARD
    log = server.log.read_text()
    assert "card number" in log
    tally.report(leaked(tally.pans, database_text(database), log))


def test_the_webhook_still_takes_a_real_event(server: Any, database: str) -> None:
    """The refusals above are the card check, not a broken endpoint."""
    sent = event(
        "payment_intent.succeeded", payment_intent(str(uuid.uuid4()), "succeeded", "pi_1x")
    )
    header = stripe.WebhookSignature.generate_signature_header(json.dumps(sent), SECRET)

    status, answer = server.post(json.dumps(sent).encode(), header)

    assert (status, answer["received"]) == (200, True)


def test_the_leak_checker_finds_a_number_in_any_disguise() -> None:
    """The checker above would see a leak: it reads digits through every disguise."""
    for disguise in TEXT_DISGUISES.values():
        number = random_pan(random.Random(7))
        assert leaked([number], "x", json.dumps(disguise(number))) == [number]
        assert leaked([number], disguise(number).encode()) == [number]
    assert leaked(["4242424242424242"], "****4242 4242 ****") == []


# -- observations from a library caller ---------------------------------------------------------


def _intent(**fields: Any) -> PaymentIntentObservation:
    values: dict[str, Any] = {
        "source": "api",
        "payment_intent_id": "pi_" + uuid.uuid4().hex[:24],
        "amount": 1250,
        "currency": "usd",
        "status": "succeeded",
        "offline_id": str(uuid.uuid4()),
    }
    return PaymentIntentObservation(**(values | fields))


OBSERVATION_POSITIONS: dict[str, Callable[[str], Observation]] = {
    "offline_id": lambda v: _intent(offline_id=v),
    "decline_code": lambda v: _intent(status="requires_payment_method", decline_code=v),
    "balance_transaction_id": lambda v: BalanceTransactionObservation(
        source="report_file",
        balance_transaction_id=v,
        payment_intent_id="pi_" + uuid.uuid4().hex[:24],
        currency="usd",
        gross=1250,
    ),
}


def test_observations_holding_a_card_number_are_refused_whole(sqlite_url: str) -> None:
    """`Ledger.observe` and `observe_file` take observations a library caller built, which no
    edge searched: one holding a number refuses the call, even after good ones."""
    tally = Tally("Ledger.observe / observe_file")
    rng = random.Random(6)
    said: list[str] = []
    with Ledger.open(sqlite_url) as ledger:
        before = ledger.store.recorder.max_notification_id()
        for disguise in TEXT_DISGUISES.values():
            for position in OBSERVATION_POSITIONS.values():
                for call in (ledger.observe, ledger.observe_file):
                    planted = position(disguise(tally.plant(rng)))
                    with pytest.raises(LedgerError) as refused:
                        call([_intent() for _ in range(3)] + [planted])
                    said += [str(refused.value), json.dumps(refused.value.to_dict())]
                    tally.refused += refused.value.code == Code.CARD_NUMBER_DETECTED
        assert ledger.store.recorder.max_notification_id() == before
        assert ledger.observe([_intent(), _intent()]).recorded == 2  # the check, not a refusal
    tally.report(leaked(tally.pans, database_text(sqlite_url), *said))


def test_observe_takes_at_most_a_batch_in_one_transaction(sqlite_url: str) -> None:
    with Ledger.open(sqlite_url) as ledger:
        with pytest.raises(LedgerError) as refused:
            ledger.observe([_intent() for _ in range(BATCH_SIZE_MAX + 1)])
        assert refused.value.code == Code.INVALID_VALUE and "observe_file" in str(refused.value)
        assert ledger.store.recorder.max_notification_id() in (None, 0)
