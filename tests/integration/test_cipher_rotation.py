"""Encryption keys that rotate (`offline-ledger cipher rotate`): on a real SQLite file and real
PostgreSQL, a ledger rotated twice while a writer keeps recording spans three keys, each
event's ciphertext naming its own; with the last keyring it verifies, answers as of a moment,
rebuilds its read models, is sealed across a rotation and exports and imports; a retired key
is refused for new writes and a missing key is named."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from eventsourcing.cipher import AESCipher
from eventsourcing.utils import Environment

from ledger import Ledger
from ledger.cipher import HEADER, KeyringCipher
from ledger.errors import Code, StorageError
from ledger.keyring import CIPHER_KEY_ENV, KEYRING_ENV, key_id, read_keyring
from ledger.storage import (
    POSTGRES_EVENTS_TABLE,
    SQLITE_EVENTS_TABLE,
    engine_for,
    parse_database_url,
)
from tests.integration.test_seals import keys  # noqa: F401  (a fixture)
from tests.support import records as r
from tests.support.cli import run, run_json


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{request.param}_url"))


def key_ids_in_log(url: str) -> list[str]:
    """The key named by each stored event's ciphertext, in log order (read by SQL, no key)."""
    config = parse_database_url(url, environ={})
    table, column = (
        (POSTGRES_EVENTS_TABLE, "notification_id")
        if config.kind == "postgresql"
        else (SQLITE_EVENTS_TABLE, "rowid")
    )
    engine = engine_for(config)
    try:
        with engine.connect() as conn:
            states = conn.execute(sa.text(f"SELECT state FROM {table} ORDER BY {column}"))
            found = [bytes(state) for (state,) in states]
    finally:
        engine.dispose()
    assert all(state.startswith(HEADER) for state in found)
    return [state[len(HEADER) : len(HEADER) + 8].hex() for state in found]


def rotate(url: str, env: dict[str, str], *extra: str) -> dict[str, Any]:
    done: dict[str, Any] = run_json("cipher", "rotate", "--db", url, *extra, env=env)
    return done


def store(ledger: Ledger, amount: int) -> None:
    results = ledger.record_many(r.stored_payment(amount=amount))
    assert not [result for result in results if isinstance(result, Exception)], results


class Writer(threading.Thread):
    """Records payments with a ledger opened once, before the rotations, until stopped (or
    at 100, or refused): a POS backend left running while the keys rotate."""

    def __init__(self, url: str, environ: dict[str, str]) -> None:
        super().__init__()
        self.ledger = Ledger.open(url, environ=environ)
        self.stop = threading.Event()
        self.written = 0
        self.refused: StorageError | None = None

    def run(self) -> None:
        try:
            while self.written < 3 or not (self.stop.is_set() or self.written == 100):
                store(self.ledger, 1000 + self.written)
                self.written += 1
        except StorageError as error:
            self.refused = error

    def refused_now(self) -> StorageError:
        """Its refusal, or the one its next write gets (it may not have written since)."""
        if self.refused is None:
            with pytest.raises(StorageError) as refused:
                store(self.ledger, 1)
            self.refused = refused.value
        self.ledger.close()
        return self.refused


def test_rotating_twice_while_writing_keeps_the_log_whole(
    url: str,
    keys: tuple[Path, Path],  # noqa: F811
    tmp_path: Path,
) -> None:
    first = AESCipher.create_key(32)
    single = {CIPHER_KEY_ENV: first}
    with Ledger.open(url, environ=single) as ledger:
        ledger.record_many([r.location(), r.device()])
    seals = tmp_path / "seals"
    run_json("audit", "seal", "--db", url, "--key", str(keys[0]), "--out", str(seals),
             env=single)  # fmt: skip
    writer = Writer(url, single)
    writer.start()
    try:
        ring_path = tmp_path / "keyring.json"
        once = rotate(url, single, "--keyring", str(ring_path), "--reason", "cryptoperiod")
        ring = {KEYRING_ENV: str(ring_path)}
        with Ledger.open(url, environ=ring) as ledger:  # a writer started after the rotation
            store(ledger, 777)
        twice = rotate(url, ring)
    finally:
        writer.stop.set()
        writer.join()
    # The writer holds the first key alone (no keyring file to re-read): once the first
    # rotation is recorded it stores nothing more, refused for its retired key, or stopped
    # by an event of the new key it cannot read (the location's, written since).
    assert writer.refused_now().code in (Code.CIPHER_KEY_RETIRED, Code.CIPHER_KEY_UNKNOWN)
    # The second period spans the three keys.
    run_json("audit", "seal", "--db", url, "--key", str(keys[0]), "--out", str(seals),
             env=ring)  # fmt: skip

    assert once["retired"] == [key_id(AESCipher(Environment(env={"CIPHER_KEY": first})).key)]
    assert twice["retired"] == [*once["retired"], once["current"]]
    final = read_keyring(ring_path)
    assert [k.id for k in final.keys] == [*once["retired"], once["current"], twice["current"]]
    assert final.current.id == twice["current"]
    assert ring_path.stat().st_mode & 0o077 == 0  # owner-only
    used = key_ids_in_log(url)
    assert set(used) == {*once["retired"], once["current"], twice["current"]}

    with Ledger.open(url, environ=ring) as ledger:  # every key's events read back
        (status,) = ledger.status()
        assert status.offline_payments_count == writer.written + 1
    verified = run_json(
        "audit", "verify", "--db", url, "--seals", str(seals), "--public-key", str(keys[1]),
        env=ring,
    )  # fmt: skip
    assert verified["ok"] and all(check["holds"] for check in verified["seals"])
    assert len(verified["seals"]) == 2
    moment = datetime.now(UTC).isoformat()
    as_of = run_json("audit", "as-of", moment, "--location", "tml_1", "--db", url, env=ring)
    assert as_of["offline_payments_count"] == writer.written + 1
    assert run("report", "--db", url, "--format", "json", env=ring).returncode == 0
    rebuilt = run_json("audit", "rebuild", "--db", url, env=ring)
    assert rebuilt["clean"]
    export = tmp_path / "export"
    run_json("audit", "export", "--db", url, "--out", str(export), env=ring)
    imported = f"sqlite:///{tmp_path / 'imported.db'}"
    run_json("audit", "import", str(export), "--db", imported, "--public-key", str(keys[1]),
             env=ring)  # fmt: skip
    again = run_json(
        "audit", "verify", "--db", imported, "--seals", str(seals), "--public-key",
        str(keys[1]), env=ring,
    )  # fmt: skip
    assert again["head_hash"] == verified["head_hash"] and again["ok"]
    assert key_ids_in_log(imported) == used


def test_running_writers_learn_of_a_rotation_at_their_next_write(url: str, tmp_path: Path) -> None:
    """Two ledgers open on one store, one rotating, one writing: the writer with a keyring
    file writes its next events with the new key (re-read from the rewritten file), the
    writer holding a key alone is refused at its next write, storing nothing."""
    single = {CIPHER_KEY_ENV: AESCipher.create_key(32)}
    ring_path = tmp_path / "keyring.json"
    with Ledger.open(url, environ=single) as alone:
        alone.record_many([r.location(), r.device()])
        rotate(url, single, "--keyring", str(ring_path))
        before = key_ids_in_log(url)
        with pytest.raises(StorageError) as refused:
            alone.record(r.location("tml_2"))
        assert refused.value.code == Code.CIPHER_KEY_RETIRED
        assert key_ids_in_log(url) == before
    ring = {KEYRING_ENV: str(ring_path)}
    with Ledger.open(url, environ=ring) as running:
        store(running, 100)
        first_ring = read_keyring(ring_path).current.id
        twice = rotate(url, ring)  # rewrites the file the running writer was given
        assert twice["retired"][-1] == first_ring
        before = key_ids_in_log(url)
        store(running, 200)
        written = key_ids_in_log(url)[len(before) :]
        (status,) = running.status()
    assert written and set(written) == {twice["current"]}
    assert status.offline_payments_count == 2


def rotated_once(url: str, tmp_path: Path) -> tuple[dict[str, str], Path, dict[str, Any]]:
    """A location and a device recorded with a single key, then a rotation: the first key's
    environment, the keyring file and what the rotation printed."""
    first = {CIPHER_KEY_ENV: AESCipher.create_key(32)}
    with Ledger.open(url, environ=first) as ledger:
        ledger.record_many([r.location(), r.device()])
    ring_path = tmp_path / "keyring.json"
    return first, ring_path, rotate(url, first, "--keyring", str(ring_path))


def test_a_retired_key_is_refused_for_new_writes_and_stores_nothing(
    sqlite_url: str, tmp_path: Path
) -> None:
    first, ring_path, _ = rotated_once(sqlite_url, tmp_path)
    before = key_ids_in_log(sqlite_url)

    # The old deployment, still configured with the first key, reads what it wrote ...
    with Ledger.open(sqlite_url, environ=first) as ledger:
        assert [status.location_id for status in ledger.status()] == ["tml_1"]
        with pytest.raises(StorageError) as refused:
            ledger.record_many(r.stored_payment())
    assert refused.value.code == Code.CIPHER_KEY_RETIRED
    done = run("ingest", "-", "--db", sqlite_url, stdin=json.dumps(r.location("tml_2")),
               env=first)  # fmt: skip
    assert done.returncode == 2 and "CIPHER_KEY_RETIRED" in done.stderr
    assert key_ids_in_log(sqlite_url) == before  # ... and records nothing

    # A ring whose current key a rotation retired is refused too (an old copy of the file).
    stale = tmp_path / "stale.json"
    stale.write_text(ring_path.read_text())
    rotate(sqlite_url, {KEYRING_ENV: str(ring_path)})
    with (
        Ledger.open(sqlite_url, environ={KEYRING_ENV: str(stale)}) as ledger,
        pytest.raises(StorageError) as again,
    ):
        ledger.record(r.location("tml_3"))
    assert again.value.code == Code.CIPHER_KEY_RETIRED


def test_an_event_of_a_key_missing_from_the_keyring_is_named(
    sqlite_url: str, tmp_path: Path
) -> None:
    first, ring_path, rotated = rotated_once(sqlite_url, tmp_path)
    with Ledger.open(sqlite_url, environ={KEYRING_ENV: str(ring_path)}) as ledger:
        ledger.record_many(r.stored_payment())
    done = run("status", "--db", sqlite_url, "--json", env=first)
    assert done.returncode == 2
    error = json.loads(done.stdout)["error"]
    assert error["code"] == "CIPHER_KEY_UNKNOWN"
    assert error["details"]["key_id"] == rotated["current"]
    assert KEYRING_ENV in error["message"]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("not json", "is not JSON"),
        ('{"format": "other", "keys": []}', "is not a keyring"),
        ('{"format": "offline-ledger-keyring/1", "keys": []}', "non-empty list"),
    ],
)
def test_a_bad_keyring_file_is_a_configuration_error_and_changes_nothing(
    sqlite_url: str, tmp_path: Path, content: str, problem: str
) -> None:
    first = {CIPHER_KEY_ENV: AESCipher.create_key(32)}
    with Ledger.open(sqlite_url, environ=first) as ledger:
        ledger.record(r.location())
    ring_path = tmp_path / "keyring.json"
    ring_path.write_text(content)
    done = run("cipher", "rotate", "--db", sqlite_url, "--json", env={KEYRING_ENV: str(ring_path)})
    assert done.returncode == 2
    error = json.loads(done.stdout)["error"]
    assert error["code"] == "INVALID_CIPHER_KEYRING" and problem in error["message"]
    assert ring_path.read_text() == content
    both = run("status", "--db", sqlite_url, env={**first, KEYRING_ENV: str(ring_path)})
    assert both.returncode == 2 and "INVALID_CIPHER_KEYRING" in both.stderr


def test_rotating_needs_a_keyring_path_and_never_overwrites_another_file(
    sqlite_url: str, tmp_path: Path
) -> None:
    first = {CIPHER_KEY_ENV: AESCipher.create_key(32)}
    with Ledger.open(sqlite_url, environ=first) as ledger:
        ledger.record(r.location())
    before = key_ids_in_log(sqlite_url)
    no_path = run("cipher", "rotate", "--db", sqlite_url, "--json", env=first)
    assert no_path.returncode == 1
    assert json.loads(no_path.stdout)["error"]["field"] == "keyring"
    other = tmp_path / "precious.txt"
    other.write_text("keep me")
    taken = run("cipher", "rotate", "--db", sqlite_url, "--keyring", str(other), env=first)
    assert taken.returncode == 1 and other.read_text() == "keep me"
    plain = run("cipher", "rotate", "--db", sqlite_url, "--keyring", str(tmp_path / "k.json"))
    assert plain.returncode == 2 and "CIPHER_KEY_REQUIRED" in plain.stderr
    pan = "4242424242424242"
    card = run("cipher", "rotate", "--db", sqlite_url, "--keyring", str(tmp_path / "k.json"),
               "--reason", f"lost {pan}", env=first)  # fmt: skip
    assert card.returncode == 2 and "CARD_NUMBER_DETECTED" in card.stderr
    assert pan not in card.stdout + card.stderr
    nowhere = run("cipher", "rotate", "--db", sqlite_url, "--keyring",
                  str(tmp_path / "missing" / "k.json"), "--json", env=first)  # fmt: skip
    assert nowhere.returncode == 1
    assert json.loads(nowhere.stdout)["error"]["field"] == "keyring"
    assert key_ids_in_log(sqlite_url) == before
    assert not (tmp_path / "k.json").exists()


def test_ciphertext_written_before_keyrings_still_reads() -> None:
    """Events encrypted by the library's AESCipher (no header naming the key) decrypt with
    the ring that holds their key, whichever of its keys that is."""
    old, new = AESCipher.create_key(32), AESCipher.create_key(16)
    legacy = AESCipher(Environment(env={"CIPHER_KEY": old})).encrypt(b'{"a":1}')
    ring = {
        "format": "offline-ledger-keyring/1",
        "keys": [
            {"id": key_id(_raw(old)), "key": old, "added_at": None, "retired_at": "2026-01-01"},
            {"id": key_id(_raw(new)), "key": new, "added_at": "2026-01-01", "retired_at": None},
        ],
    }
    cipher = KeyringCipher(Environment(env={"CIPHER_KEY": json.dumps(ring)}))
    assert cipher.decrypt(legacy) == b'{"a":1}'
    fresh = cipher.encrypt(b'{"b":2}')
    assert fresh[len(HEADER) : len(HEADER) + 8].hex() == key_id(_raw(new))
    assert cipher.decrypt(fresh) == b'{"b":2}'
    with pytest.raises(ValueError, match="any key"):
        cipher.decrypt(legacy[:-1] + bytes([legacy[-1] ^ 1]))


def _raw(text: str) -> bytes:
    return AESCipher(Environment(env={"CIPHER_KEY": text})).key
