"""`offline-ledger watch` against a real HTTP receiver on 127.0.0.1: every alert reaches it
exactly once, signed, though the receiver fails for a while and the watch is restarted in
between (each --once run is a new process); the watch's own loop stops on SIGTERM."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from adapters.alerts.webhook import ALERT_ID_HEADER, SIGNATURE_HEADER, signature_holds
from ledger import Ledger
from tests.support import records as r
from tests.support.cli import CLI, run, run_json
from tests.support.days import a_day

SECRET = "whsec_alerts_test"
ENV = {"OFFLINE_LEDGER_ALERT_SECRET": SECRET}
WAIT_GUARD_SECONDS = 120  # only ends a wait that would never end; nothing is timed


class Receiver:
    """Answers 503 while `failing` or for the next `failures_left` requests, else 200 and
    keeps the alert; refuses (401) a request whose signature does not hold."""

    def __init__(self) -> None:
        self.accepted: list[dict[str, Any]] = []
        self.failing = False
        self.failures_left = 0
        self.bad_signatures = 0
        self.changed = threading.Condition()

    def answer(self, headers: Any, body: bytes) -> int:
        with self.changed:
            try:
                if not signature_holds(
                    SECRET, headers.get(SIGNATURE_HEADER, ""), body, datetime.now(UTC)
                ):
                    self.bad_signatures += 1
                    return 401
                if self.failing or self.failures_left > 0:
                    self.failures_left = max(0, self.failures_left - 1)
                    return 503
                alert = json.loads(body)
                assert headers.get(ALERT_ID_HEADER) == alert["id"]
                self.accepted.append(alert)
                return 200
            finally:
                self.changed.notify_all()

    def wait_for(self, holds: Callable[[], bool]) -> None:
        with self.changed:
            assert self.changed.wait_for(holds, timeout=WAIT_GUARD_SECONDS)


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(state.answer(self.headers, body))
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the test reads the state, not the log."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}/alerts"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def config(tmp_path: Path, url: str | None) -> Path:
    """Every condition, and with `url` a webhook that tries each alert twice per run."""
    path = tmp_path / "alerts.toml"
    text = (
        "[conditions]\n"
        "money_at_risk = { usd = 4999 }\n"
        "stored_older_than_hours = 24\n"
        "captures_due_within_hours = 12\n"
        "duplicates = true\n"
        "device_silent_hours = 24\n"
        '[queue]\npath = "state/alerts.db"\n'
    )
    if url is not None:
        text += f'[webhook]\nurl = "{url}"\nattempts_per_run = 2\nbackoff_seconds = 0\n'
    path.write_text(text)
    return path


def watch_once(url: str, path: Path, status: int) -> dict[str, Any]:
    result: dict[str, Any] = run_json(
        "watch", "--once", "--config", str(path), "--db", url, status=status, env=ENV
    )
    return result


def test_each_alert_reaches_a_receiver_that_fails_then_recovers_exactly_once(
    sqlite_url: str, tmp_path: Path, receiver: tuple[Receiver, str]
) -> None:
    state, url = receiver
    a_day(sqlite_url)
    path = config(tmp_path, url)
    state.failing = True
    first = watch_once(sqlite_url, path, 1)
    ids = [alert["id"] for alert in first["raised"]]
    assert len(ids) == 5 and first["delivered"] == [] and first["pending"] == 5
    # The first alert failed both its tries: the receiver is down, the others wait.
    assert first["failures"] == [{"alert_id": ids[0], "error": "the receiver answered 503"}]

    state.failing, state.failures_left = False, 3  # recovers after three more refusals
    second = watch_once(sqlite_url, path, 1)  # a new process: the queue survived
    assert (second["raised"], second["delivered"], second["pending"]) == ([], [], 5)
    third = watch_once(sqlite_url, path, 1)  # one more refusal, then the receiver answers
    assert third["raised"] == [] and third["delivered"] == ids and third["pending"] == 0
    fourth = watch_once(sqlite_url, path, 1)
    assert (fourth["raised"], fourth["delivered"], fourth["pending"]) == ([], [], 0)
    assert len(fourth["conditions"]) == 5  # still holding: alerted once, not on every run

    assert sorted(alert["id"] for alert in state.accepted) == sorted(ids)
    assert {alert["kind"] for alert in state.accepted} == {
        "capture_due",
        "device_silent",
        "duplicate",
        "money_at_risk",
        "stored_too_long",
    }
    assert state.bad_signatures == 0


def test_the_watch_loop_alerts_once_and_stops_on_sigterm(
    sqlite_url: str, tmp_path: Path, receiver: tuple[Receiver, str]
) -> None:
    state, url = receiver
    a_day(sqlite_url)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OFFLINE_LEDGER_")}
    process = subprocess.Popen(
        [str(CLI), "watch", "--interval", "1", "--config", str(config(tmp_path, url))],
        env={**environment, **ENV, "OFFLINE_LEDGER_DATABASE_URL": sqlite_url},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout or []), daemon=True)
    try:
        reader.start()
        state.wait_for(lambda: len(state.accepted) == 5)
        # A second evaluation ran (its summary line) and raised nothing more.
        state.wait_for(lambda: sum(" conditions hold" in line for line in lines) >= 2)
    finally:
        process.terminate()
        _, errors = process.communicate(timeout=WAIT_GUARD_SECONDS)
    reader.join()
    assert process.returncode == 0, errors
    assert len(state.accepted) == 5
    assert sum(line.startswith("ALERT ") for line in lines) == 5


def test_all_clear_exits_0_and_a_bad_configuration_exits_2(sqlite_url: str, tmp_path: Path) -> None:
    with Ledger.open(sqlite_url) as ledger:
        ledger.record_many([r.location(), r.device()])
    clear = watch_once(sqlite_url, config(tmp_path, None), 0)
    assert (clear["clear"], clear["conditions"], clear["raised"]) == (True, [], [])

    webhook = tmp_path / "webhook.toml"
    webhook.write_text('[conditions]\nduplicates = true\n[webhook]\nurl = "http://127.0.0.1:9/"\n')
    no_secret = run_json("watch", "--once", "--config", str(webhook), "--db", sqlite_url, status=2)
    assert no_secret["error"]["code"] == "INVALID_ALERT_CONFIG"
    assert "OFFLINE_LEDGER_ALERT_SECRET" in no_secret["error"]["message"]

    unknown = tmp_path / "unknown.toml"
    unknown.write_text("[conditions]\nmoney_at_risk = { usd = -1 }\n")
    refused = run_json("watch", "--once", "--config", str(unknown), "--db", sqlite_url, status=2)
    assert "conditions.money_at_risk.usd" in refused["error"]["message"]
    assert run("watch", "--once", "--config", str(tmp_path / "nope.toml")).returncode == 2
