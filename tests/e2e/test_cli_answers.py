"""What the command line tells an operator who mistypes something (README "Commands",
docs/operators.md "Exit statuses and error codes"): global options in either place, one time
format, no database created by a command that only reads, and errors that say what failed,
where, and how to fix it, with a code and the documented exit status. Real subprocesses."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
from pathlib import Path

import pytest

from ledger import Ledger, LedgerError
from tests.support import records as r
from tests.support.cli import AT, CLI, P1, P2, P4, UNREACHABLE, day, run, run_json

DECIDE = ("decide", "--amount", "100", "--currency", "usd", "--device", "tmr_1")


# -- global options ----------------------------------------------------------------------------


def test_db_and_json_are_taken_before_the_command_as_after_it(loaded_sqlite: str) -> None:
    after = run_json("status", "--db", loaded_sqlite)
    before = run("--json", "--db", loaded_sqlite, "status")
    assert before.returncode == 0, before.stderr
    assert run_json("--db", loaded_sqlite, "status") == after
    assert before.stdout == run("status", "--db", loaded_sqlite, "--json").stdout
    # The command's own --db wins over the one before it.
    assert run("--db", "sqlite:///nowhere.db", "status", "--db", loaded_sqlite).returncode == 0


def test_a_global_option_the_command_has_no_use_for_is_refused(loaded_sqlite: str) -> None:
    for args in (("--json", "schema"), ("--db", loaded_sqlite, "demo"), ("--json", "report")):
        done = run(*args)
        assert done.returncode == 2, args
        # said as asked: in JSON on standard output when --json was given
        said = json.loads(done.stdout)["error"] if "--json" in args else done.stderr
        assert "USAGE_ERROR" in str(said) and "does not take" in str(said), said


# -- one type for every moment -----------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [("decide", "--at"), ("reserve", "--at"), ("allow", "--until"), ("report", "--as-of")],
)
def test_every_time_option_is_shown_as_time_with_an_example(command: tuple[str, str]) -> None:
    name, option = command
    shown = " ".join(run(name, "--help").stdout.split())
    assert f"{option} TIME" in shown
    assert "2026-11-22T18:00:00Z" in shown and "a date (2026-11-22" in shown


@pytest.mark.parametrize("moment", ["2026-11-22", "2026-11-22T09:00:00.250Z", AT])
def test_decide_at_takes_a_date_a_fraction_or_an_offset(loaded_sqlite: str, moment: str) -> None:
    answer = run_json(*DECIDE, "--location", "tml_1", "--at", moment, "--db", loaded_sqlite)
    assert answer["offline_allowed"] is True


def test_since_after_until_is_a_usage_error_not_an_empty_report(loaded_sqlite: str) -> None:
    done = run("report", "--since", "2026-11-23", "--until", "2026-11-22", "--db", loaded_sqlite)
    assert done.returncode == 2
    assert "INVALID_VALUE" in done.stderr and "--since" in done.stderr
    assert "NO_REPORT_DATA" not in done.stderr


# -- databases ---------------------------------------------------------------------------------

READERS = [
    ("status",),
    ("history", P1),
    (*DECIDE, "--location", "tml_1", "--at", AT),
    ("report",),
    ("project",),
    ("stripe-mode",),
    ("audit", "verify"),
]


@pytest.mark.parametrize("command", READERS)
def test_a_command_that_only_reads_refuses_a_missing_database(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    mistyped = tmp_path / "ledgr.db"
    done = run(*command, "--db", f"sqlite:///{mistyped}", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "DATABASE_NOT_FOUND" in done.stderr and str(mistyped) in done.stderr
    assert "offline-ledger migrate" in done.stderr
    assert not mistyped.exists()
    # Nor one in the current folder, without --db.
    assert "DATABASE_NOT_FOUND" in run(*command, cwd=tmp_path).stderr
    assert list(tmp_path.iterdir()) == []


def test_a_command_that_writes_creates_the_database(tmp_path: Path, day_file: Path) -> None:
    created = tmp_path / "new.db"
    assert run("ingest", str(day_file), "--db", f"sqlite:///{created}").returncode == 0
    assert run_json("status", "--db", f"sqlite:///{created}")["locations"]


def test_sqlite_in_a_missing_folder_names_the_folder(tmp_path: Path, day_file: Path) -> None:
    folder = tmp_path / "not" / "there"
    for command in (("ingest", str(day_file)), ("migrate",)):
        done = run(*command, "--db", f"sqlite:///{folder / 'ledger.db'}")
        assert done.returncode == 2
        assert "DATABASE_NOT_FOUND" in done.stderr and str(folder) in done.stderr
        assert "mkdir" in done.stderr and "unable to open database file" not in done.stderr


@pytest.mark.parametrize("command", [("audit", "verify"), ("report",), ("project",)])
def test_a_command_that_reads_the_database_refuses_memory(command: tuple[str, ...]) -> None:
    done = run(*command, "--db", "memory://")
    assert done.returncode == 2, done.stderr
    assert "INVALID_DATABASE_URL" in done.stderr and "sqlite:///file.db" in done.stderr
    assert "Traceback" not in done.stderr and "AssertionError" not in done.stderr


def test_a_database_error_shows_the_url_as_given_not_the_driver() -> None:
    done = run("ingest", "-", "--db", UNREACHABLE, stdin="")
    assert done.returncode == 2
    assert "DATABASE_UNAVAILABLE" in done.stderr and UNREACHABLE in done.stderr
    assert "Connection refused" in done.stderr and "check that the server is running" in done.stderr
    assert "+psycopg" not in done.stderr and "psycopg.OperationalError" not in done.stderr


# -- misleading answers ------------------------------------------------------------------------


def test_decide_for_a_mistyped_device_says_unknown_device(loaded_sqlite: str) -> None:
    args = ("decide", "--amount", "100", "--currency", "usd", "--device", "tmr_l")
    error = run_json(*args, "--location", "tml_1", "--db", loaded_sqlite, status=1)["error"]
    assert error["code"] == "UNKNOWN_DEVICE" and "tmr_l" in error["message"]


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_stripe_out_of_reach_exits_2_with_the_reason_alone(sqlite_url: str) -> None:
    env = {
        "STRIPE_API_KEY": "sk_test_" + "a" * 24,
        "STRIPE_API_BASE": f"http://127.0.0.1:{free_port()}",
        "STRIPE_MAX_NETWORK_RETRIES": "0",
    }
    done = run("sync-stripe", "--db", sqlite_url, env=env)
    assert done.returncode == 2, done.stderr
    assert "STRIPE_UNREACHABLE" in done.stderr and "Connection refused" in done.stderr
    assert "STRIPE_API_BASE" in done.stderr
    for noise in ("urllib3", "HTTPConnectionPool", "Max retries", "support@stripe.com"):
        assert noise not in done.stderr


def test_a_garbage_stripe_key_is_refused_before_any_call(sqlite_url: str) -> None:
    env = {"STRIPE_API_KEY": "garbage", "STRIPE_API_BASE": f"http://127.0.0.1:{free_port()}"}
    done = run("sync-stripe", "--db", sqlite_url, env=env)
    assert done.returncode == 2
    assert "STRIPE_NOT_CONFIGURED" in done.stderr and "STRIPE_UNREACHABLE" not in done.stderr


def test_a_stripe_config_file_that_is_not_there_is_named(sqlite_url: str, tmp_path: Path) -> None:
    missing = tmp_path / "stripe.env"
    env = {"OFFLINE_LEDGER_STRIPE_CONFIG": str(missing)}
    error = run_json("sync-stripe", "--db", sqlite_url, env=env, status=2)["error"]
    assert error["code"] == "CONFIG_FILE_NOT_FOUND" and str(missing) in error["message"]


def test_serve_without_a_webhook_secret_says_its_code(sqlite_url: str) -> None:
    done = run("serve", "--db", sqlite_url, "--port", str(free_port()))
    assert done.returncode == 2
    assert "STRIPE_NOT_CONFIGURED" in done.stderr and "STRIPE_WEBHOOK_SECRET" in done.stderr


# -- what people read ----------------------------------------------------------------------------

SHOP = "tml_nyc_broadway_flagship"
READER = "tmr_nyc_broadway_flagship_lane_12"


@pytest.fixture
def long_ids(sqlite_url: str) -> str:
    """A shop whose ids are as long as real ones, with a payment stored beyond a limit."""
    location = r.location(
        SHOP,
        limits={"stored_amount_max": {"usd": 1_000_000_00}, "stored_count_max": 1},
        device_limits={},
    )
    sales = [
        record
        for offline_id in (P1, P2)
        for record in r.stored_payment(
            offline_id, device_id=READER, location_id=SHOP, amount=1_540_000
        )
    ]
    with Ledger.open(sqlite_url) as ledger:
        results = ledger.record_many([location, r.device(READER, SHOP), *sales])
    assert not [result for result in results if isinstance(result, LedgerError)]
    return sqlite_url


@pytest.mark.parametrize("columns", ["80", "200"])
def test_status_fits_the_terminal_and_cuts_no_number_or_id(long_ids: str, columns: str) -> None:
    done = run("status", "--db", long_ids, env={"COLUMNS": columns})
    assert done.returncode == 0, done.stderr
    assert max(map(len, done.stdout.splitlines())) <= int(columns)
    assert "…" not in done.stdout
    for whole in (
        SHOP,
        READER,
        "30,800.00 USD",
        "OFFLINE_PAYMENTS_DATABASE_TOO_LARGE: 1, 15,400.00 USD",
    ):
        assert whole in done.stdout, (columns, whole)


def test_history_reads_as_a_timeline_without_python_reprs(long_ids: str) -> None:
    done = run("history", P2, "--db", long_ids, env={"COLUMNS": "100"})
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert max(map(len, text.splitlines())) <= 100
    for said in ("created", "collected", "confirmed", "amount: 15,400.00 USD"):
        assert said in text
    assert "broke OFFLINE_PAYMENTS_DATABASE_TOO_LARGE" in text
    for repr_mark in ("{'", "None", "=", "[{"):
        assert repr_mark not in text
    entries = run_json("history", P2, "--db", long_ids)
    assert [entry["event"] for entry in entries][:3] == [
        "Created",
        "PaymentMethodCollected",
        "ConfirmedOffline",
    ]


def stderr_of_a_terminal(*args: str) -> str:
    """What `offline-ledger ARGS` writes to standard error when that is a terminal (a
    pseudo-terminal here), without the terminal's control sequences."""
    controller, terminal = os.openpty()
    try:
        subprocess.run(
            [str(CLI), *args],
            stdout=subprocess.DEVNULL,
            stderr=terminal,
            env={**os.environ, "COLUMNS": "150", "TERM": "xterm"},
            timeout=300,
            check=True,
        )
    finally:
        os.close(terminal)
    written = b""
    while True:
        try:
            chunk = os.read(controller, 65_536)
        except OSError:  # the terminal's other end is closed: all was read
            break
        if not chunk:
            break
        written += chunk
    os.close(controller)
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", written.decode())


def test_the_ingest_bar_ends_full_and_counts_records(sqlite_url: str, day_file: Path) -> None:
    size_kb = f"{day_file.stat().st_size / 1000:.1f}"
    frames = stderr_of_a_terminal("ingest", str(day_file), "--db", sqlite_url).split("\r")
    last = [frame for frame in frames if frame.startswith("ingesting")][-1]
    assert f"{size_kb}/{size_kb} kB" in last
    assert f"{len(day())} records" in last and "/s" in last


def test_stored_lists_what_readers_hold_oldest_first(loaded_sqlite: str) -> None:
    every = run_json("stored", "--db", loaded_sqlite)
    assert [p["offline_id"] for p in every["payments"]] == [P1, P4]  # P1 was stored first
    assert every["amounts_by_currency"] == {"usd": 1_250 + 2_500} and every["count"] == 2
    assert all(p["age_hours"] > 0 for p in every["payments"])
    only = run_json("stored", "--device", "tmr_2", "--db", loaded_sqlite)["payments"]
    assert [(p["offline_id"], p["amount"], p["location_id"]) for p in only] == [
        (P4, 2_500, "tml_1")
    ]
    assert run_json("stored", "--older-than", "1000000", "--db", loaded_sqlite)["count"] == 0
    shown = run("stored", "--db", loaded_sqlite, env={"COLUMNS": "80"}).stdout
    assert P1 in shown and "12.50 USD" in shown and "2 stored payments: 37.50 USD" in shown
    assert "…" not in shown


@pytest.mark.parametrize(
    ("args", "env", "code"),
    [
        (("status",), {"OFFLINE_LEDGER_STRIPE_OFFLINE_MAX": "not json"}, "INVALID_SETTING"),
        (("capture", P1, "--all-due"), {}, "INVALID_VALUE"),
        (
            ("audit", "as-of", "2026-11-22", "--offline-id", P1, "--location", "tml_1"),
            {},
            "INVALID_VALUE",
        ),
    ],
)
def test_an_error_the_command_finds_itself_has_a_code_too(
    loaded_sqlite: str, args: tuple[str, ...], env: dict[str, str], code: str
) -> None:
    human = run(*args, "--db", loaded_sqlite, env=env)
    assert human.returncode == 2 and f"error: {code}: " in human.stderr, human.stderr
    assert run_json(*args, "--db", loaded_sqlite, env=env, status=2)["error"]["code"] == code


def test_a_report_memory_out_of_bounds_is_a_setting_error_naming_it(loaded_sqlite: str) -> None:
    env = {"OFFLINE_LEDGER_REPORT_WORK_MEM_MB": "1"}
    human = run("report", "--db", loaded_sqlite, env=env)
    assert human.returncode == 2 and "error: INVALID_SETTING: " in human.stderr, human.stderr
    assert "REPORT_WORK_MEM_MB" in human.stderr and human.stdout == ""
    machine = run("report", "--format", "json", "--db", loaded_sqlite, env=env)
    assert machine.returncode == 2, machine.stderr
    assert json.loads(machine.stdout)["error"]["code"] == "INVALID_SETTING"


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("status", "--bogus"), "No such option '--bogus'"),
        (("history",), "Missing argument 'OFFLINE_ID'"),
        (("nosuch",), "No such command 'nosuch'"),
        (("status", "--location"), "Option '--location' requires an argument"),
        (("stored", "--older-than", "soon"), "Invalid value for '--older-than': 'soon'"),
    ],
)
def test_a_usage_error_click_finds_has_a_code_too(args: tuple[str, ...], said: str) -> None:
    human = run(*args)
    assert human.returncode == 2, human.stderr
    assert f"error: USAGE_ERROR: {said}" in human.stderr, human.stderr
    assert "Traceback" not in human.stderr and human.stdout == ""
    machine = run("--json", *args)  # before the command: still given when parsing fails
    assert machine.returncode == 2, machine.stderr
    answer = json.loads(machine.stdout)["error"]
    assert answer["code"] == "USAGE_ERROR" and said in answer["message"], answer


def test_a_usage_error_keeps_the_usage_line_and_help_still_exits_0() -> None:
    human = run("history")
    assert human.stderr.startswith("Usage: offline-ledger history [OPTIONS] OFFLINE_ID\n")
    assert "Try 'offline-ledger history --help' for help." in human.stderr
    assert run("history", "--help").returncode == 0
    answer = json.loads(run("report", "--format", "json", "--bogus").stdout)
    assert answer["error"]["code"] == "USAGE_ERROR"
    assert run("audit", "verify", "--bogus").stderr.endswith(
        "error: USAGE_ERROR: No such option '--bogus'.\n"
    )


def test_an_id_with_colons_is_printed_as_typed_not_as_an_emoji(sqlite_url: str) -> None:
    """Ids may hold colons; `shop:smile:1` must not become `shop😄1` in any table or message."""
    shop, reader = "shop:smile:1", "tmr:heart:2"
    with Ledger.open(sqlite_url) as ledger:
        results = ledger.record_many([r.location(shop), r.device(reader, shop)])
    assert not [result for result in results if isinstance(result, LedgerError)]
    done = run("status", "--db", sqlite_url, env={"COLUMNS": "200"})
    assert done.returncode == 0, done.stderr
    assert shop in done.stdout and reader in done.stdout, done.stdout
    args = ("decide", "--amount", "100", "--currency", "usd", "--device", "tmr:smile:missing")
    refused = run(*args, "--location", shop, "--db", sqlite_url)
    assert refused.returncode == 1 and "tmr:smile:missing" in refused.stderr, refused.stderr
