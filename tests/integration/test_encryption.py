"""Encryption at rest: with OFFLINE_LEDGER_CIPHER_KEY set, every stored event's `state` (card
details, POS metadata, amounts) is AES-GCM ciphertext; reading without the key, or with another
one, fails with a stable code and exit status 2, never a traceback."""

from __future__ import annotations

import json
import sqlite3
from base64 import b64decode, b64encode
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from eventsourcing.cipher import AESCipher
from eventsourcing.utils import Environment

from ledger import Ledger
from ledger.cipher import KeyringCipher
from ledger.errors import Code, StorageError
from ledger.keyring import Keyring, single_key
from ledger.pan import redacted
from ledger.storage import (
    CIPHER_KEY_ENV,
    POSTGRES_EVENTS_TABLE,
    POSTGRES_SNAPSHOTS_TABLE,
    SQLITE_EVENTS_TABLE,
    SQLITE_SNAPSHOTS_TABLE,
    engine_for,
    parse_database_url,
)
from tests.support import records as r
from tests.support.cli import run

SECRET = "SECRET-ORDER-17"
P1 = "00000000-0000-4000-8000-0000000000e1"
P2 = "00000000-0000-4000-8000-0000000000e2"


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{request.param}_url"))


@pytest.fixture
def key() -> str:
    return AESCipher.create_key(32)


def _env(key: str) -> Environment:
    return Environment(env={"CIPHER_KEY": key})


def write_day(url: str) -> None:
    """A location, a device, and two payments with a card (visa, 4242) and secret metadata."""
    with Ledger.open(url) as ledger:
        ledger.record(r.location())
        ledger.record(r.device())
        for offline_id in (P1, P2):
            ledger.record_many(r.stored_payment(offline_id, metadata={"order": SECRET}))
        ledger.record(r.forwarded(P2, "pi_2", "requires_capture"))


def stored_states(url: str) -> list[bytes]:
    """Every `state` of the events and snapshots tables, read with SQL."""
    config = parse_database_url(url, environ={})
    events, snapshots = (
        (POSTGRES_EVENTS_TABLE, POSTGRES_SNAPSHOTS_TABLE)
        if config.kind == "postgresql"
        else (SQLITE_EVENTS_TABLE, SQLITE_SNAPSHOTS_TABLE)
    )
    engine = engine_for(config)
    try:
        with engine.connect() as conn:
            states = [bytes(row[0]) for row in conn.execute(sa.text(f"SELECT state FROM {events}"))]
            states += [
                bytes(row[0]) for row in conn.execute(sa.text(f"SELECT state FROM {snapshots}"))
            ]
    finally:
        engine.dispose()
    return states


def sqlite_files(url: str) -> list[Path]:
    path = Path(url.removeprefix("sqlite:///"))
    return [p for p in (path, Path(f"{path}-wal")) if p.exists()]


def test_card_details_and_metadata_are_ciphertext_at_rest(
    url: str, key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CIPHER_KEY_ENV, key)
    write_day(url)

    states = stored_states(url)
    assert len(states) >= 9
    cipher = KeyringCipher(_env(single_key(key).to_json()))
    decrypted = [cipher.decrypt(s) for s in states]  # each one header | nonce | tag | ciphertext
    assert any(b"SECRET-ORDER" in d for d in decrypted)
    assert any(b'"last4": "4242"' in d or b'"last4":"4242"' in d for d in decrypted)
    for state in states:
        assert b"SECRET-ORDER" not in state
        assert b'"last4"' not in state
    if url.startswith("sqlite"):
        files = sqlite_files(url)
        assert files
        for path in files:
            assert SECRET.encode() not in path.read_bytes(), path

    with Ledger.open(url) as ledger:  # the same key reads everything back
        payment = ledger.payment(P1)
        assert payment.card is not None
        assert (payment.card["last4"], payment.card["brand"]) == ("4242", "visa")
        assert payment.metadata == {"order": SECRET}
        assert ledger.payment(P2).status == "forwarded"
        (status,) = ledger.status()
        assert status.offline_payments_count == 1
        assert [e.event for e in ledger.history(P1)] == [
            "Created",
            "PaymentMethodCollected",
            "ConfirmedOffline",
        ]


def test_without_a_key_the_same_check_finds_the_plain_text(sqlite_url: str) -> None:
    """The control for the test above: unencrypted ledgers still work, and store JSON."""
    write_day(sqlite_url)
    states = stored_states(sqlite_url)
    assert any(b"SECRET-ORDER" in s for s in states)
    assert any(b'"last4"' in s for s in states)
    with Ledger.open(sqlite_url) as ledger:
        assert ledger.payment(P1).metadata == {"order": SECRET}


def test_the_commands_work_with_the_key(
    url: str, key: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CIPHER_KEY_ENV, key)
    write_day(url)
    env = {CIPHER_KEY_ENV: key}

    verified = run("audit", "verify", "--db", url, "--json", env=env)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert json.loads(verified.stdout)["ok"] is True

    report = run("report", "--db", url, "--format", "json", env=env)
    assert report.returncode == 0, report.stdout + report.stderr
    assert P1 in report.stdout

    history = run("history", P1, "--db", url, "--json", env=env)
    assert history.returncode == 0, history.stderr
    assert SECRET in history.stdout

    status = run("status", "--db", url, "--json", env=env)
    assert status.returncode == 0, status.stderr

    exported = run("audit", "export", "--db", url, "--out", str(tmp_path / "export"), env=env)
    assert exported.returncode == 0, exported.stderr
    for path in (tmp_path / "export").iterdir():  # an export carries the ciphertext as stored
        assert SECRET.encode() not in path.read_bytes()
    for output in (verified, report, history, status, exported):
        assert key not in output.stdout + output.stderr


def failure(url: str, env: dict[str, str], *args: str) -> dict[str, Any]:
    as_json = ("--format", "json") if args[0] == "report" else ("--json",)
    done = run(*args, "--db", url, *as_json, env=env)
    assert done.returncode == 2, done.stdout + done.stderr
    error: dict[str, Any] = json.loads(done.stdout)["error"]
    return error


@pytest.mark.parametrize(
    "command",
    [
        ("status",),
        ("history", P1),
        ("report",),
        ("audit", "verify"),
        ("audit", "as-of", "2030-01-01"),
    ],
)
def test_without_the_key_or_with_another_one_reading_fails_clearly(
    url: str, key: str, command: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CIPHER_KEY_ENV, key)
    write_day(url)

    missing = failure(url, {}, *command)
    assert missing["code"] == "CIPHER_KEY_REQUIRED"
    assert CIPHER_KEY_ENV in missing["message"]

    other = AESCipher.create_key(32)
    wrong = failure(url, {CIPHER_KEY_ENV: other}, *command)
    assert wrong["code"] == "CIPHER_KEY_UNKNOWN"  # each event names the key it needs
    # The key's id is named, masked as any text is when its digits read as a card number.
    (named,) = [ring_key.id for ring_key in single_key(key).keys]
    assert CIPHER_KEY_ENV in wrong["message"] and redacted(named) in wrong["message"]
    assert wrong["details"]["key_id"] == redacted(named)
    assert key not in json.dumps(wrong) and other not in json.dumps(wrong)

    plain = run(*command, "--db", url)  # for people: one line, no traceback (run checks)
    assert plain.returncode == 2
    assert "CIPHER_KEY_REQUIRED" in plain.stderr


def test_the_library_raises_a_storage_error_with_the_code(
    sqlite_url: str, key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CIPHER_KEY_ENV, key)
    write_day(sqlite_url)

    monkeypatch.delenv(CIPHER_KEY_ENV)
    with pytest.raises(StorageError) as missing:
        Ledger.open(sqlite_url)
    assert missing.value.code == Code.CIPHER_KEY_REQUIRED

    monkeypatch.setenv(CIPHER_KEY_ENV, AESCipher.create_key(16))
    with pytest.raises(StorageError) as wrong:
        Ledger.open(sqlite_url)
    assert wrong.value.code == Code.CIPHER_KEY_UNKNOWN


def test_an_event_written_with_another_key_later_in_the_log_is_a_storage_error(
    sqlite_url: str, key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Opening checks the first event only; reads of the others map the error too."""
    monkeypatch.setenv(CIPHER_KEY_ENV, key)
    write_day(sqlite_url)
    other = AESCipher(_env(AESCipher.create_key(32)))
    path = sqlite_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        (rowid,) = conn.execute(
            f"SELECT MAX(rowid) FROM {SQLITE_EVENTS_TABLE} WHERE topic = "
            "'offline_ledger:Payment.Forwarded'"
        ).fetchone()
        conn.execute(
            f"UPDATE {SQLITE_EVENTS_TABLE} SET state = ? WHERE rowid = ?",
            (other.encrypt(b"{}"), rowid),
        )
    conn.close()

    with Ledger.open(sqlite_url) as ledger:
        assert ledger.payment(P1).status == "stored"
        with pytest.raises(StorageError) as unreadable:
            ledger.payment(P2)
        assert unreadable.value.code == Code.CIPHER_KEY_MISMATCH
        with pytest.raises(StorageError):
            ledger.history(P2)
        with pytest.raises(StorageError):
            ledger.record(r.captured(P2, "pi_2"))


@pytest.mark.parametrize(
    "bad", ["not base64!", b64encode(b"ten bytes!").decode(), b64encode(bytes(33)).decode()]
)
def test_a_malformed_key_is_a_configuration_error(
    sqlite_url: str, bad: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for command in (("status",), ("migrate",)):
        done = run(*command, "--db", sqlite_url, env={CIPHER_KEY_ENV: bad})
        assert done.returncode == 2, done.stdout + done.stderr
        assert "INVALID_CIPHER_KEY" in done.stderr and CIPHER_KEY_ENV in done.stderr
        assert "AESCipher.create_key(32)" in done.stderr
        assert bad not in done.stdout + done.stderr

    monkeypatch.setenv(CIPHER_KEY_ENV, bad)
    with pytest.raises(StorageError) as refused:
        Ledger.open(sqlite_url)
    assert refused.value.code == Code.INVALID_CIPHER_KEY
    assert bad not in str(refused.value)


@pytest.mark.parametrize("size", [16, 24, 32])
def test_keys_of_every_aes_size_are_accepted(size: int) -> None:
    key = AESCipher.create_key(size)
    config = parse_database_url("memory://", environ={CIPHER_KEY_ENV: f" {key}\n"})
    assert config.encrypted
    assert config.env["CIPHER_TOPIC"] == "ledger.cipher:KeyringCipher"
    assert Keyring.from_json(config.env["CIPHER_KEY"], "env").current.key == b64decode(key)
    assert key not in repr(config)


def test_no_key_means_no_cipher_even_with_the_library_variables_set(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only OFFLINE_LEDGER_CIPHER_KEY switches encryption on; the library's own CIPHER_KEY /
    CIPHER_TOPIC, set for something else in the same process, are ignored."""
    monkeypatch.delenv(CIPHER_KEY_ENV, raising=False)
    monkeypatch.setenv("CIPHER_KEY", AESCipher.create_key(32))
    monkeypatch.setenv("CIPHER_TOPIC", "eventsourcing.cipher:AESCipher")
    config = parse_database_url(sqlite_url)
    assert not config.encrypted
    write_day(sqlite_url)
    assert any(b"SECRET-ORDER" in s for s in stored_states(sqlite_url))
    monkeypatch.setenv(CIPHER_KEY_ENV, "")  # empty is unset
    with Ledger.open(sqlite_url) as ledger:
        assert ledger.payment(P1).metadata == {"order": SECRET}


def test_a_damaged_first_event_of_an_unencrypted_ledger_is_for_audit_verify_to_report(
    sqlite_url: str,
) -> None:
    """Without a key, only a first event that is not JSON text is taken as encrypted."""
    write_day(sqlite_url)
    path = sqlite_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        conn.execute(
            f"UPDATE {SQLITE_EVENTS_TABLE} SET state = substr(state, 1, 20) WHERE rowid = 1"
        )
    conn.close()
    done = run("audit", "verify", "--db", sqlite_url, "--json")
    assert done.returncode == 1, done.stdout + done.stderr
    problem = json.loads(done.stdout)["problem"]
    assert (problem["kind"], problem["position"]) == ("altered", 1)
