"""`offline-ledger import-stripe-report` and `import-stripe-json`, the installed command run in
subprocesses on a real SQLite file and on real PostgreSQL: a file is recorded whole or not at
all, and importing it again records nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import UNREACHABLE, run, run_json

PAN = "4242 4242 4242 4242"  # Luhn-valid: a full card number
REPORT_HEADER = (
    "balance_transaction_id,created_utc,currency,gross,fee,net,reporting_category,"
    "source_id,payment_intent_id,charge_id,payment_metadata[offline_id]"
)
REPORT_ROWS = [
    "txn_1,2026-11-22 10:15:00,usd,12.50,-0.66,11.84,charge,ch_1,pi_1,ch_1,"
    "00000000-0000-4000-8000-000000000001",
    "txn_2,2026-11-22 10:20:00,usd,-3.00,0.00,-3.00,refund,re_1,pi_1,ch_1,",
    ",2026-11-22 10:30:00,jpy,1000,-36,964,charge,ch_2,pi_2,ch_2,",  # id derived from content
    "txn_4,2026-11-23 00:00:00,usd,-100.00,0.00,-100.00,payout,,,,",  # names no payment
]


def report(tmp_path: Path, *rows: str, name: str = "report.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join([REPORT_HEADER, *rows]) + "\n", encoding="utf-8")
    return path


def payment_intents(tmp_path: Path, *objects: dict[str, Any], name: str = "pis.json") -> Path:
    path = tmp_path / name
    path.write_text(
        json.dumps({"object": "list", "has_more": False, "data": list(objects)}), encoding="utf-8"
    )
    return path


def payment_intent(id_: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": id_,
        "object": "payment_intent",
        "amount": 1250,
        "amount_received": 1250,
        "currency": "usd",
        "status": "succeeded",
        "created": 1_795_342_500,
        "metadata": {"offline_id": "00000000-0000-4000-8000-000000000001"},
        "latest_charge": {
            "id": "ch_1",
            "object": "charge",
            "payment_method_details": {
                "type": "card_present",
                "card_present": {
                    "brand": "visa",
                    "offline": {"stored_at": 1_795_342_400, "type": "deferred"},
                },
            },
        },
        **fields,
    }


def counts(rows: int, recorded: int, duplicates: int, skipped: int) -> dict[str, int]:
    return {"rows": rows, "recorded": recorded, "duplicates": duplicates, "skipped": skipped}


def test_importing_a_report_twice_records_nothing_the_second_time(
    database: str, tmp_path: Path
) -> None:
    path = report(tmp_path, *REPORT_ROWS)

    first = run("import-stripe-report", str(path), "--db", database)
    assert first.returncode == 0, first.stderr
    assert (
        "4 rows: 3 recorded, 0 already recorded, 1 skipped (not tied to a payment)" in first.stdout
    )

    again = run_json("import-stripe-report", str(path), "--db", database)
    assert again == counts(rows=4, recorded=0, duplicates=3, skipped=1)
    # a later report holding these rows and one more records only the new one
    longer = report(
        tmp_path,
        *REPORT_ROWS,
        "txn_5,2026-11-24 09:00:00,usd,5.00,,,charge,ch_5,pi_5,ch_5,",
        name="longer.csv",
    )
    assert run_json("import-stripe-report", str(longer), "--db", database) == counts(
        rows=5, recorded=1, duplicates=3, skipped=1
    )


def test_importing_payment_intents_twice_records_nothing_the_second_time(
    database: str, tmp_path: Path
) -> None:
    path = payment_intents(
        tmp_path,
        payment_intent("pi_1"),
        payment_intent("pi_2", status="requires_capture", amount_received=0),
    )

    assert run_json("import-stripe-json", str(path), "--db", database) == counts(2, 2, 0, 0)
    again = run("import-stripe-json", str(path), "--db", database)
    assert again.returncode == 0, again.stderr
    assert "2 rows: 0 recorded, 2 already recorded, 0 skipped" in again.stdout
    # the same objects from stdin, one per line, are the same facts; a new status is news
    lines = "\n".join(
        json.dumps(o)
        for o in [payment_intent("pi_1"), payment_intent("pi_2", amount_received=1250)]
    )
    assert run_json("import-stripe-json", "-", "--db", database, stdin=lines) == counts(2, 1, 1, 0)


def test_a_bad_report_exits_1_and_records_nothing(database: str, tmp_path: Path) -> None:
    good = report(tmp_path, *REPORT_ROWS)
    bad = report(
        tmp_path,
        *REPORT_ROWS[:2],
        REPORT_ROWS[2].replace("jpy,1000,", "jpy,1000.5,"),
        "txn_9,2026-11-22 10:15:00,usx,1.00,,,charge,ch_9,pi_9,ch_9,",
        name="bad.csv",
    )

    refusal = run_json("import-stripe-report", str(bad), "--db", database, status=1)

    assert [(p["line"], p["field"], p["code"]) for p in refusal["problems"]] == [
        (4, "gross", "INVALID_AMOUNT"),
        (5, "currency", "UNKNOWN_CURRENCY"),
    ]
    assert refusal["problem_count"] == 2
    assert "bad.csv" in refusal["error"]["message"]
    assert all("bad.csv" in p["message"] for p in refusal["problems"])
    human = run("import-stripe-report", str(bad), "--db", database)
    assert human.returncode == 1 and human.stdout == ""
    assert "nothing imported" in human.stderr
    assert "INVALID_AMOUNT: " in human.stderr and "line 4, column 'gross'" in human.stderr
    assert "line 5, column 'currency'" in human.stderr
    # nothing of the refused file was recorded: the good rows are all new
    assert run_json("import-stripe-report", str(good), "--db", database) == counts(4, 3, 0, 1)


def test_a_report_conflicting_with_what_is_recorded_records_none_of_its_rows(
    database: str, tmp_path: Path
) -> None:
    assert run_json(
        "import-stripe-report", str(report(tmp_path, REPORT_ROWS[0])), "--db", database
    ) == counts(1, 1, 0, 0)
    changed = report(
        tmp_path, *REPORT_ROWS[1:3], REPORT_ROWS[0].replace("12.50", "13.50"), name="changed.csv"
    )

    conflict = run_json("import-stripe-report", str(changed), "--db", database, status=1)

    assert conflict["error"]["code"] == "IDEMPOTENCY_CONFLICT"
    assert run_json(
        "import-stripe-report", str(report(tmp_path, *REPORT_ROWS)), "--db", database
    ) == counts(4, 2, 1, 1)


def test_a_bad_json_file_exits_1_and_records_nothing(database: str, tmp_path: Path) -> None:
    good = [payment_intent("pi_1"), payment_intent("pi_2")]
    bad = payment_intents(
        tmp_path,
        *good,
        payment_intent("pi_3", amount=12.5),
        {"id": "ch_4", "object": "charge"},
        name="bad.json",
    )

    refusal = run_json("import-stripe-json", str(bad), "--db", database, status=1)

    assert [
        (p["details"]["object"], p["details"]["id"], p["field"], p["code"])
        for p in refusal["problems"]
    ] == [
        ("data[2]", "pi_3", "amount", "INVALID_AMOUNT"),
        ("data[3]", "ch_4", "object", "INVALID_VALUE"),
    ]
    human = run("import-stripe-json", str(bad), "--db", database)
    assert human.returncode == 1
    assert "object data[3], id ch_4, field 'object'" in human.stderr
    assert run_json(
        "import-stripe-json", str(payment_intents(tmp_path, *good)), "--db", database
    ) == counts(2, 2, 0, 0)


@pytest.mark.parametrize("command", ["import-stripe-report", "import-stripe-json"])
def test_a_card_number_in_the_file_is_refused_and_never_echoed(
    sqlite_url: str, tmp_path: Path, command: str
) -> None:
    if command == "import-stripe-report":
        path = report(tmp_path, REPORT_ROWS[0].replace("00000000-0000-4000-8000-000000000001", PAN))
    else:
        path = payment_intents(tmp_path, payment_intent("pi_1", metadata={"note": PAN}))

    for args in [(), ("--json",)]:
        done = run(command, str(path), "--db", sqlite_url, *args)
        assert done.returncode == 1
        assert "CARD_NUMBER_DETECTED" in done.stdout + done.stderr
        everything = done.stdout + done.stderr
        assert PAN not in everything and PAN.replace(" ", "") not in everything


def test_a_file_that_is_not_utf8_exits_1(sqlite_url: str, tmp_path: Path) -> None:
    path = tmp_path / "report.csv"
    path.write_bytes((REPORT_HEADER + "\n" + REPORT_ROWS[0] + ",café\n").encode("latin-1"))
    done = run("import-stripe-report", str(path), "--db", sqlite_url)
    assert done.returncode == 1
    assert "not UTF-8" in done.stderr and "line 2" in done.stderr


@pytest.mark.parametrize("command", ["import-stripe-report", "import-stripe-json"])
def test_a_missing_file_or_a_directory_is_a_usage_error(
    sqlite_url: str, tmp_path: Path, command: str
) -> None:
    for path in (tmp_path / "missing.csv", tmp_path):
        done = run(command, str(path), "--db", sqlite_url)
        assert done.returncode == 2, done.stderr
        assert str(path) in done.stderr


def test_an_unreachable_database_exits_2(tmp_path: Path) -> None:
    files = {
        "import-stripe-report": report(tmp_path, *REPORT_ROWS),
        "import-stripe-json": payment_intents(tmp_path, payment_intent("pi_1")),
    }
    for command, path in files.items():
        human = run(command, str(path), "--db", UNREACHABLE)
        assert human.returncode == 2, human.stderr
        assert "DATABASE_UNAVAILABLE" in human.stderr and "127.0.0.1:1" in human.stderr
        error = run_json(command, str(path), "--db", UNREACHABLE, status=2)["error"]
        assert error["code"] == "DATABASE_UNAVAILABLE"


@pytest.mark.parametrize("command", ["import-stripe-report", "import-stripe-json"])
def test_the_import_commands_have_help(command: str) -> None:
    done = run(command, "--help")
    assert done.returncode == 0
    assert done.stdout.startswith(f"Usage: offline-ledger {command}")
    assert "--db" in done.stdout and "--json" in done.stdout
