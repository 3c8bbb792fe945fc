"""The installed `offline-ledger` command, run in real subprocesses (README "Commands").

Exit statuses: 0 success, 1 refused input, 2 usage, configuration or connection errors; no
input ever produces a traceback (every run here checks stdout and stderr for one).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from adapters.trading_day import write_jsonl
from ledger.pan import mask
from ledger.wire import RECORD_TYPES
from migrations import HEAD
from tests.support import records as r
from tests.support.cli import AT, P1, P2, P3, PAN, UNKNOWN, UNREACHABLE, day, run, run_json

COMMANDS = (
    "ingest",
    "status",
    "history",
    "decide",
    "schema",
    "migrate",
    "import-stripe-report",
    "import-stripe-json",
    "report",
    "project",
    "sync-stripe",
    "serve",
    "forward",
    "capture",
    "audit",
    "demo",
)
# -- a whole session on each database ----------------------------------------------------------


def test_ingest_then_read_everything_back(database: str, day_file: Path) -> None:
    lines = len(day())
    done = run("ingest", str(day_file), "--db", database)
    assert done.returncode == 0, done.stderr
    assert f"{lines} records: {lines} accepted, 0 duplicates" in done.stdout
    assert "0 rejected" in done.stdout

    status = run_json("status", "--db", database)
    (location,) = status["locations"]
    assert location["location_id"] == "tml_1"
    assert location["offline_payments_count"] == 2  # P1 and P4; P2 forwarded, P3 declined
    assert location["offline_payment_amounts_by_currency"] == {"usd": 3_750}
    devices = {d["device_id"]: d for d in status["devices"]}
    assert set(devices) == {"tmr_1", "tmr_2"}
    assert {d["location_id"] for d in devices.values()} == {"tml_1"}
    assert devices["tmr_1"]["offline_payments_count"] == 1
    assert devices["tmr_1"]["offline_payment_amounts_by_currency"] == {"usd": 1_250}
    assert devices["tmr_2"]["offline_payment_amounts_by_currency"] == {"usd": 2_500}

    history = run_json("history", P2, "--db", database)
    assert [entry["event"] for entry in history] == [
        "Created",
        "PaymentMethodCollected",
        "ConfirmedOffline",
        "Forwarded",
    ]
    assert history[3]["data"]["payment_intent_id"] == "pi_2"
    assert [entry["version"] for entry in history] == [1, 2, 3, 4]

    fits = run_json(
        "decide",
        "--amount",
        "1000",
        "--currency",
        "usd",
        "--device",
        "tmr_1",
        "--location",
        "tml_1",
        "--at",
        AT,
        "--db",
        database,
    )
    assert fits["offline_allowed"] is True
    assert fits["offline_behavior"] == "prefer_online"
    stored_row = next(
        row
        for row in fits["headroom"]
        if (row["scope"], row["limit"]) == ("location", "stored_amount_max")
    )
    assert (stored_row["max"], stored_row["used"], stored_row["remaining"]) == (
        10_000,
        3_750,
        6_250,
    )

    too_much = run_json(
        "decide",
        "--amount",
        "9000",
        "--currency",
        "usd",
        "--device",
        "tmr_1",
        "--location",
        "tml_1",
        "--at",
        AT,
        "--db",
        database,
    )
    assert too_much["offline_allowed"] is False
    assert too_much["offline_behavior"] == "require_online"
    assert too_much["code"] == "STORED_AMOUNT_LIMIT_EXCEEDED"

    again = run_json("ingest", str(day_file), "--db", database)
    assert again == {
        "lines": lines,
        "last_applied_line": lines,
        "stopped": None,
        "accepted": 0,
        "duplicates": lines,
        "rejected_count": 0,
        "rejected": [],
        "rejected_truncated": False,
        "flagged_count": 0,
        "flagged": [],
        "flagged_truncated": False,
    }
    assert run_json("status", "--db", database) == status


# -- ingest ------------------------------------------------------------------------------------


def bad_file(tmp_path: Path) -> Path:
    """Good records, a blank line, and bad ones on known lines."""
    path = tmp_path / "bad.jsonl"
    lines: list[dict[str, Any] | str] = [
        r.location(),
        r.device(),  # lines 1, 2
        '{"type": "payment.created", "offline_id": ',  # 3: not JSON
        "",  # 4: blank
        r.created(P1) | {"colour": "blue"},  # 5: unknown field
        r.created(P2, metadata={"note": f"card {PAN}"}),  # 6: a card number
        r.confirmed(UNKNOWN),  # 7: unknown payment
        *r.stored_payment(P3),  # 8, 9, 10
        r.captured(P3, "pi_3", 5_000),  # 11: more than was authorized (1,250)
    ]
    write_jsonl(path, lines)
    return path


def test_ingest_reports_each_rejected_line_and_exits_1(sqlite_url: str, tmp_path: Path) -> None:
    path = bad_file(tmp_path)

    summary = run_json("ingest", str(path), "--db", sqlite_url, status=1)

    assert (summary["lines"], summary["accepted"], summary["duplicates"]) == (10, 5, 0)
    assert summary["rejected_count"] == 5
    assert [(x["line"], x["code"]) for x in summary["rejected"]] == [
        (3, "MALFORMED_JSON"),
        (5, "UNKNOWN_FIELD"),
        (6, "CARD_NUMBER_DETECTED"),
        (7, "UNKNOWN_PAYMENT"),
        (11, "CAPTURE_EXCEEDS_AMOUNT"),
    ]
    assert all(x["message"] for x in summary["rejected"])
    unknown_field = summary["rejected"][1]
    assert unknown_field["field"] == "colour" and "colour" in unknown_field["message"]
    assert PAN not in json.dumps(summary) and PAN.replace(" ", "") not in json.dumps(summary)

    human = run("ingest", str(path), "--db", sqlite_url)
    assert human.returncode == 1
    assert "10 records: 0 accepted, 5 duplicates" in human.stdout and "5 rejected" in human.stdout
    assert "line 5 colour: UNKNOWN_FIELD" in human.stderr
    assert "line 11 amount_captured: CAPTURE_EXCEEDS_AMOUNT" in human.stderr


def test_rejects_file_keeps_the_rejected_lines_but_never_a_card_number(
    sqlite_url: str, tmp_path: Path
) -> None:
    path = bad_file(tmp_path)
    rejects = tmp_path / "rejects.jsonl"

    done = run("ingest", str(path), "--db", sqlite_url, "--rejects", str(rejects))

    assert done.returncode == 1
    entries = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert [(e["line"], e["code"]) for e in entries] == [
        (3, "MALFORMED_JSON"),
        (5, "UNKNOWN_FIELD"),
        (6, "CARD_NUMBER_DETECTED"),
        (7, "UNKNOWN_PAYMENT"),
        (11, "CAPTURE_EXCEEDS_AMOUNT"),
    ]
    source = path.read_text().splitlines()
    for entry in entries:
        assert entry["message"]
        if entry["code"] == "CARD_NUMBER_DETECTED":
            assert entry["record"] is None
        else:
            # The line as it was, every run of 6 or more digits masked but its last 4.
            assert entry["record"] == mask(source[entry["line"] - 1].strip())
    everything = rejects.read_text() + done.stdout + done.stderr
    assert PAN not in everything and PAN.replace(" ", "") not in everything
    assert P2 not in rejects.read_text()  # nothing of the card-number line is copied


def test_ingest_reads_stdin_when_the_file_is_a_dash(sqlite_url: str) -> None:
    text = "\n".join(json.dumps(record) for record in day()) + "\n"

    summary = run_json("ingest", "-", "--db", sqlite_url, stdin=text)

    assert (summary["accepted"], summary["rejected_count"]) == (len(day()), 0)
    assert run_json("status", "--db", sqlite_url)["locations"][0]["offline_payments_count"] == 2


def test_ingest_of_a_missing_file_is_a_usage_error(sqlite_url: str, tmp_path: Path) -> None:
    done = run("ingest", str(tmp_path / "missing.jsonl"), "--db", sqlite_url)
    assert done.returncode == 2
    assert "missing.jsonl" in done.stderr and "No such file" in done.stderr


# -- reading commands --------------------------------------------------------------------------


def test_status_history_and_decide_print_tables_for_people(loaded_sqlite: str) -> None:
    sqlite_url = loaded_sqlite
    status = run("status", "--db", sqlite_url)
    assert status.returncode == 0
    assert "tml_1" in status.stdout and "tmr_2" in status.stdout
    assert "37.50 USD" in status.stdout  # the location's stored total

    history = run("history", P3, "--db", sqlite_url)
    assert history.returncode == 0
    assert "confirmed offline" in history.stdout and "declined" in history.stdout

    decide = run(
        "decide",
        "--amount",
        "9000",
        "--currency",
        "usd",
        "--device",
        "tmr_1",
        "--location",
        "tml_1",
        "--at",
        AT,
        "--db",
        sqlite_url,
    )
    assert decide.returncode == 0
    assert "take it online" in decide.stdout
    assert "STORED_AMOUNT_LIMIT_EXCEEDED" in decide.stdout


def test_status_of_an_empty_ledger_says_what_to_do(sqlite_url: str) -> None:
    assert run("migrate", "--db", sqlite_url).returncode == 0
    done = run("status", "--db", sqlite_url)
    assert done.returncode == 0
    assert "location.configured" in done.stdout
    assert run_json("status", "--db", sqlite_url) == {"locations": [], "devices": []}


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("history", UNKNOWN), "UNKNOWN_PAYMENT"),
        (("history", "not-a-uuid"), "INVALID_UUID"),
        (("status", "--location", "tml_nowhere"), "UNKNOWN_LOCATION"),
        (
            (
                "decide",
                "--amount",
                "100",
                "--currency",
                "usd",
                "--device",
                "tmr_1",
                "--location",
                "tml_nowhere",
                "--at",
                AT,
            ),
            "UNKNOWN_LOCATION",
        ),
        (
            (
                "decide",
                "--amount",
                "100",
                "--currency",
                "USD",
                "--device",
                "tmr_1",
                "--location",
                "tml_1",
                "--at",
                AT,
            ),
            "UNKNOWN_CURRENCY",
        ),
    ],
)
def test_a_refused_question_exits_1_with_its_code(
    loaded_sqlite: str, args: tuple[str, ...], code: str
) -> None:
    human = run(*args, "--db", loaded_sqlite)
    assert human.returncode == 1
    assert code in human.stderr
    assert run_json(*args, "--db", loaded_sqlite, status=1)["error"]["code"] == code


def test_schema_prints_the_json_schema_of_every_record_type() -> None:
    done = run("schema")
    assert done.returncode == 0
    schema = json.loads(done.stdout)
    assert schema["title"] == "offline-ledger wire record"
    variants = schema["oneOf"]
    assert len(variants) == len(RECORD_TYPES)
    mapping = schema["discriminator"]["mapping"]
    assert set(mapping) == set(RECORD_TYPES)
    created = schema["$defs"][mapping["payment.created"].rsplit("/", 1)[-1]]
    assert created["additionalProperties"] is False
    assert {"offline_id", "amount", "currency", "occurred_at"} <= set(created["required"])


# -- databases and configuration ---------------------------------------------------------------


def test_migrate_creates_the_schema_and_is_repeatable(database: str, day_file: Path) -> None:
    for _ in range(2):
        done = run("migrate", "--db", database)
        assert done.returncode == 0, done.stderr
        assert f"schema revision {HEAD}" in done.stdout
    assert run("ingest", str(day_file), "--db", database).returncode == 0


@pytest.mark.parametrize("command", [(), *[(c,) for c in COMMANDS]])
def test_every_command_has_help(command: tuple[str, ...]) -> None:
    done = run(*command, "--help")
    assert done.returncode == 0
    assert done.stdout.startswith("Usage: offline-ledger")
    if command:
        # schema reads no database, audit is a group of commands, demo makes its own
        assert "--db" in done.stdout or command in (("schema",), ("audit",), ("demo",))
    else:
        assert all(name in done.stdout for name in COMMANDS)


@pytest.mark.parametrize(
    ("url", "code", "says"),
    [
        ("mysql://root@db/ledger", "INVALID_DATABASE_URL", "cannot use database URL"),
        ("sqlite://", "INVALID_DATABASE_URL", "needs a file"),
        (UNREACHABLE, "DATABASE_UNAVAILABLE", "cannot connect"),
    ],
)
def test_a_bad_or_unreachable_database_exits_2_with_a_clear_message(
    day_file: Path, url: str, code: str, says: str
) -> None:
    for command in [("ingest", str(day_file)), ("migrate",)]:
        human = run(*command, "--db", url)
        assert human.returncode == 2, (command, human.stderr)
        assert code in human.stderr and says in human.stderr, (command, human.stderr)
    error = run_json("status", "--db", url, status=2)["error"]
    assert error["code"] == code and says in error["message"]


@pytest.mark.parametrize(
    "command",
    [
        ("history", P1),
        (
            "decide",
            "--amount",
            "100",
            "--currency",
            "usd",
            "--device",
            "tmr_1",
            "--location",
            "tml_1",
            "--at",
            AT,
        ),
    ],
)
def test_reading_commands_report_an_unreachable_database(command: tuple[str, ...]) -> None:
    done = run(*command, "--db", UNREACHABLE)
    assert done.returncode == 2
    assert "DATABASE_UNAVAILABLE" in done.stderr and "127.0.0.1:1" in done.stderr


def test_the_environment_variable_chooses_the_database(tmp_path: Path, day_file: Path) -> None:
    chosen = tmp_path / "chosen.db"
    env = {"OFFLINE_LEDGER_DATABASE_URL": f"sqlite:///{chosen}"}
    workdir = tmp_path / "cwd"
    workdir.mkdir()

    assert run("ingest", str(day_file), env=env, cwd=workdir).returncode == 0

    assert chosen.exists()
    assert not (workdir / "offline-ledger.db").exists()
    from_env = run_json("status", env=env, cwd=workdir)
    assert from_env["locations"][0]["offline_payments_count"] == 2
    assert run_json("status", "--db", f"sqlite:///{chosen}", cwd=workdir) == from_env
    # --db wins over the variable; without either, ./offline-ledger.db is used.
    other = f"sqlite:///{tmp_path / 'other.db'}"
    assert run("migrate", "--db", other).returncode == 0
    assert run_json("status", "--db", other, env=env, cwd=workdir)["locations"] == []
    assert run("ingest", str(day_file), cwd=workdir).returncode == 0
    assert (workdir / "offline-ledger.db").exists()
    assert run_json("status", cwd=workdir)["locations"][0]["offline_payments_count"] == 2
