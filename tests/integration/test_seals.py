"""Sealed periods: a log changed behind the ledger's back by SQL (a real SQLite file, real
PostgreSQL) is found by `audit verify --seals` with the period it breaks, even when the whole
chain was recomputed or the tail cut with its links, which the unkeyed chain alone misses;
exports carry the seals and imports check them."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from eventsourcing.cipher import AESCipher

from adapters.seals import SEAL_KEY_ENV, key_id
from ledger import Ledger
from ledger.chain import GENESIS, link
from ledger.pan import holds_pan
from ledger.storage import CIPHER_KEY_ENV
from tests.support import records as r
from tests.support.cli import run, run_json
from tests.support.event_tables import event_table


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    """An Ed25519 key pair as PEM files: the private key, the public key. Never one of the
    keys (about one in 2,000) whose id reads as a card number, which sealing refuses."""
    key = Ed25519PrivateKey.generate()
    while holds_pan(key_id(key.public_key())):
        key = Ed25519PrivateKey.generate()
    return key_files(key, tmp_path)


def key_files(key: Ed25519PrivateKey, tmp_path: Path) -> tuple[Path, Path]:
    private, public = tmp_path / "seal-key.pem", tmp_path / "seal-key.pub.pem"
    private.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    public.write_bytes(
        key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    return private, public


def record_payments(url: str, count: int, first: int = 0) -> None:
    """`count` payments stored offline, after the location and device when `first` is 0."""
    with Ledger.open(url) as ledger:
        if first == 0:
            ledger.record_many([r.location(), r.device()])
        for n in range(first, first + count):
            ledger.record_many(r.stored_payment(amount=1000 + n))


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest) -> str:
    chosen = str(request.getfixturevalue(f"{request.param}_url"))
    record_payments(chosen, 30)
    return chosen


def seal(url: str, keys: tuple[Path, Path], out: Path, *extra: str) -> dict[str, Any]:
    result: dict[str, Any] = run_json(
        "audit", "seal", "--db", url, "--key", str(keys[0]), "--out", str(out), *extra
    )
    return result


@dataclass
class Periods:
    """A ledger (SQLite or PostgreSQL) sealed twice: the log `url` gave, then ten more
    payments; the seal files are in `out`."""

    url: str
    out: Path
    first: dict[str, Any]
    second: dict[str, Any]


@pytest.fixture
def periods(url: str, keys: tuple[Path, Path], tmp_path: Path) -> Periods:
    out = tmp_path / "seals"
    first = seal(url, keys, out)["seal"]
    record_payments(url, 10, first=100)
    return Periods(url, out, first, seal(url, keys, out)["seal"])


def verified(url: str, keys: tuple[Path, Path], seals: Path, status: int) -> dict[str, Any]:
    result: dict[str, Any] = run_json(
        "audit",
        "verify",
        "--db",
        url,
        "--seals",
        str(seals),
        "--public-key",
        str(keys[1]),
        status=status,
    )
    return result


def chain_verifies(url: str) -> bool:
    """Whether `audit verify` without seals finds the hash chain intact (an edited amount
    may still break an invariant, which is not the chain's business)."""
    done = run("audit", "verify", "--db", url, "--json")
    return bool(json.loads(done.stdout)["problem"] is None)


def recompute_chain(conn: sa.Connection, table: str, column: str) -> None:
    """What a forger with write access does after an edit: every link recomputed from the
    events, so the unkeyed chain verifies again."""
    rows = conn.execute(
        sa.text(
            f"SELECT {column}, originator_id, originator_version, topic, state FROM {table} "
            f"ORDER BY {column}"
        )
    ).all()
    links = link(GENESIS, [(p, UUID(str(s)), v, t, bytes(b)) for p, s, v, t, b in rows])
    conn.execute(sa.text("DELETE FROM event_chain"))
    conn.execute(
        sa.text("INSERT INTO event_chain (position, content_hash, chain_hash) VALUES (:p, :c, :h)"),
        [{"p": p, "c": c, "h": h} for p, c, h in links],
    )


def edit_amount(conn: sa.Connection, table: str, column: str, position: int) -> None:
    state = bytes(
        conn.execute(sa.text(f"SELECT state FROM {table} WHERE {column} = :p"), {"p": position})
        .one()
        .state
    )
    edited = state.replace(b"10", b"90", 1)
    assert edited != state
    conn.execute(
        sa.text(f"UPDATE {table} SET state = :s WHERE {column} = :p"), {"s": edited, "p": position}
    )


def amount_position(conn: sa.Connection, table: str, column: str, after: int, before: int) -> int:
    """The position of an event between `after` and `before` whose state holds "10" (an
    amount of 10xx), to edit."""
    found = conn.execute(
        sa.text(
            f"SELECT MIN({column}) FROM {table} WHERE {column} > :a AND {column} < :b "
            "AND topic LIKE '%Payment.Created'"
        ),
        {"a": after, "b": before},
    ).scalar()
    assert found is not None
    return int(found)


def test_an_untouched_log_holds_every_seal_and_sealing_again_is_a_repeat(
    periods: Periods, keys: tuple[Path, Path]
) -> None:
    first, second = periods.first, periods.second
    assert second["through_position"] > first["through_position"]
    assert second["count"] > first["count"]
    again = seal(periods.url, keys, periods.out)
    assert again["recorded"] is False and again["seal"] == second
    assert sorted(p.name for p in periods.out.iterdir()) == [
        f"seal-{first['through_position']:012d}.json",
        f"seal-{second['through_position']:012d}.json",
    ]
    result = verified(periods.url, keys, periods.out, 0)
    assert result["ok"] and result["broken_period"] is None
    assert [check["holds"] for check in result["seals"]] == [True, True]
    assert result["seals"][1]["period"]["first_position"] == first["through_position"] + 1
    assert result["seals"][1]["period"]["from"] == first["through"]
    with Ledger.open(periods.url) as ledger:
        assert [s.to_dict() for s in ledger.seals()] == [first, second]


def test_a_recomputed_chain_passes_plain_verify_but_breaks_the_sealed_period(
    periods: Periods, keys: tuple[Path, Path]
) -> None:
    with event_table(periods.url) as (conn, table, column):
        position = amount_position(
            conn,
            table,
            column,
            periods.first["through_position"],
            periods.second["through_position"],
        )
        edit_amount(conn, table, column, position)
        recompute_chain(conn, table, column)
    assert chain_verifies(periods.url)
    result = verified(periods.url, keys, periods.out, 1)
    first_check, second_check = result["seals"]
    assert first_check["holds"]
    assert not second_check["holds"] and "chain recomputed" in second_check["problem"]
    assert result["broken_period"] == second_check["period"]
    assert result["broken_period"]["first_position"] <= position
    assert position <= result["broken_period"]["last_position"]


def test_a_tail_cut_with_its_links_passes_plain_verify_but_breaks_the_seal(
    periods: Periods, keys: tuple[Path, Path]
) -> None:
    cut_after = periods.first["through_position"] - 3
    with event_table(periods.url) as (conn, table, column):
        conn.execute(sa.text(f"DELETE FROM {table} WHERE {column} > :p"), {"p": cut_after})
        conn.execute(sa.text("DELETE FROM event_chain WHERE position > :p"), {"p": cut_after})
    assert chain_verifies(periods.url)
    result = verified(periods.url, keys, periods.out, 1)
    assert [check["holds"] for check in result["seals"]] == [False, False]
    assert "cut from the end" in result["seals"][0]["problem"]
    assert result["broken_period"]["last_position"] == periods.first["through_position"]
    assert result["broken_period"]["first_position"] == 1


def test_an_edit_the_chain_shows_is_said_with_the_period_it_is_in(
    periods: Periods, keys: tuple[Path, Path]
) -> None:
    with event_table(periods.url) as (conn, table, column):
        position = amount_position(conn, table, column, 0, periods.first["through_position"])
        edit_amount(conn, table, column, position)
    result = verified(periods.url, keys, periods.out, 1)
    first_check, second_check = result["seals"]
    assert f"breaks at position {position}, in this period" in first_check["problem"]
    assert f"breaks at position {position}, before this period" in second_check["problem"]
    assert result["broken_period"] == first_check["period"]
    done = run(
        "audit", "verify", "--db", periods.url, "--seals", str(periods.out),
        "--public-key", str(keys[1]),
    )  # fmt: skip
    assert done.returncode == 1
    assert "first broken period: positions 1-" in " ".join(done.stderr.split())


def test_an_edited_seal_file_or_another_key_is_refused(
    url: str, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    out = tmp_path / "seals"
    sealed = seal(url, keys, out)
    path = Path(sealed["file"])
    forged = json.loads(path.read_text()) | {"count": sealed["seal"]["count"] + 1}
    path.write_text(json.dumps(forged))
    check = verified(url, keys, path, 1)["seals"][0]
    assert "edited or forged" in check["problem"]
    other = Ed25519PrivateKey.generate().public_key()
    other_path = tmp_path / "other.pub.pem"
    other_path.write_bytes(other.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    path.write_text(json.dumps(sealed["seal"]))
    check = verified(url, (keys[0], other_path), path, 1)["seals"][0]
    assert "signed with another key" in check["problem"]


def test_through_seals_the_events_recorded_by_then(
    sqlite_url: str, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    record_payments(sqlite_url, 3)
    with Ledger.open(sqlite_url) as ledger:
        count_then = ledger.store.recorder.max_notification_id()
    moment = datetime.now(UTC)
    record_payments(sqlite_url, 3, first=10)
    sealed = seal(sqlite_url, keys, tmp_path, "--through", moment.isoformat())["seal"]
    assert (sealed["through_position"], sealed["count"]) == (count_then, count_then)
    assert sealed["through"] == moment.isoformat().replace("+00:00", "Z")
    refused = run_json(
        "audit", "seal", "--db", sqlite_url, "--key", str(keys[0]), "--out", str(tmp_path),
        "--through", "2020-01-01", status=1,
    )  # fmt: skip
    assert refused["error"]["code"] == "INVALID_VALUE"
    future = run_json(
        "audit", "seal", "--db", sqlite_url, "--key", str(keys[0]), "--out", str(tmp_path),
        "--through", "2099-01-01", status=1,
    )  # fmt: skip
    assert "still to come" in future["error"]["message"]


def test_the_key_comes_from_the_environment_or_is_refused(
    sqlite_url: str, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    record_payments(sqlite_url, 1)
    env = {SEAL_KEY_ENV: keys[0].read_text()}
    args = ("audit", "seal", "--db", sqlite_url, "--out", str(tmp_path))
    assert run_json(*args, env=env)["recorded"] is True
    missing = run_json(*args, status=2)
    assert missing["error"]["code"] == "INVALID_SEAL_KEY"
    wrong = run_json(*args, "--key", str(keys[1]), status=2)
    assert wrong["error"]["code"] == "INVALID_SEAL_KEY"
    assert "PRIVATE" not in json.dumps(wrong)


def test_a_key_whose_id_reads_as_a_card_number_seals_nothing(
    sqlite_url: str, tmp_path: Path
) -> None:
    """Its id would be stored in the log and in the seal file: the import of an export of the
    log would then refuse the ledger's own export as holding a card number."""
    record_payments(sqlite_url, 1)
    for _ in range(100_000):  # about 2,000 draws a key; all 100,000 missing: p < 1e-21
        key = Ed25519PrivateKey.generate()
        if holds_pan(key_id(key.public_key())):
            break
    else:
        raise AssertionError("no key whose id reads as a card number was drawn")
    private, _ = key_files(key, tmp_path)
    out = tmp_path / "seals"
    refused = run_json(
        "audit", "seal", "--db", sqlite_url, "--key", str(private), "--out", str(out), status=2
    )
    assert refused["error"]["code"] == "INVALID_SEAL_KEY"
    assert "reads as a card number" in refused["error"]["message"]
    assert key_id(key.public_key()) not in json.dumps(refused)
    assert not out.exists() or not list(out.iterdir())
    with Ledger.open(sqlite_url) as ledger:
        assert ledger.seals() == []


def test_an_export_carries_its_seals_and_import_checks_them(
    periods: Periods, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    export = tmp_path / "export"
    manifest = run_json("audit", "export", "--db", periods.url, "--out", str(export))
    assert manifest["seals"] == [periods.first, periods.second]

    edited = copied(export, tmp_path / "edited")
    rewrite_an_event(edited, periods.first["through_position"])
    refused = run_json(
        "audit", "import", str(edited), "--db", new_sqlite(tmp_path, "edited"), status=1
    )
    assert "the seal through position" in refused["error"]["message"]
    assert "chain recomputed" in refused["error"]["message"]

    forged = copied(export, tmp_path / "forged")
    value = json.loads((forged / "manifest.json").read_text())
    value["seals"][0]["count"] += 1
    (forged / "manifest.json").write_text(json.dumps(value))
    target = new_sqlite(tmp_path, "forged")
    refused = run_json("audit", "import", str(forged), "--db", target, status=1)
    assert "the seal through position" in refused["error"]["message"]
    with_key = run_json(
        "audit", "import", str(forged), "--db", target, "--public-key", str(keys[1]), status=1
    )
    assert "edited or forged" in with_key["error"]["message"]

    imported = new_sqlite(tmp_path, "imported")
    run_json("audit", "import", str(export), "--db", imported, "--public-key", str(keys[1]))
    assert verified(imported, keys, periods.out, 0)["ok"]
    with Ledger.open(imported) as ledger:
        assert [s.to_dict() for s in ledger.seals()] == [periods.first, periods.second]


def copied(export: Path, to: Path) -> Path:
    to.mkdir()
    for path in export.iterdir():
        (to / path.name).write_bytes(path.read_bytes())
    return to


def new_sqlite(tmp_path: Path, name: str) -> str:
    return f"sqlite:///{tmp_path / name}.db"


def rewrite_an_event(export: Path, before: int) -> None:
    """What a forger does to an export: edit an event sealed by the first seal, then fix the
    file's digest and the manifest's head hash so that every unkeyed check passes."""
    manifest = json.loads((export / "manifest.json").read_text())
    (entry,) = manifest["files"]
    path = export / entry["name"]
    events = [json.loads(line) for line in path.read_text().splitlines()]
    target = next(e for e in events if e["position"] < before and "Created" in e["topic"])
    state = base64.b64decode(target["state"])
    edited = state.replace(b'"usd"', b'"eur"', 1)  # letters: no digit run a card scan sees
    assert edited != state
    target["state"] = base64.b64encode(edited).decode()
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    entry["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    rows = [
        (e["position"], UUID(e["originator_id"]), e["originator_version"], e["topic"],
         base64.b64decode(e["state"]))
        for e in events
    ]  # fmt: skip
    manifest["head_hash"] = link(GENESIS, rows)[-1][2].hex()
    (export / "manifest.json").write_text(json.dumps(manifest))


def test_an_export_made_before_seals_still_imports(sqlite_url: str, tmp_path: Path) -> None:
    record_payments(sqlite_url, 1)
    export = tmp_path / "export"
    manifest = run_json("audit", "export", "--db", sqlite_url, "--out", str(export))
    del manifest["seals"]
    (export / "manifest.json").write_text(
        json.dumps(manifest | {"format": "offline-ledger-export/1"})
    )
    imported = f"sqlite:///{tmp_path / 'imported.db'}"
    assert run_json("audit", "import", str(export), "--db", imported)["seals"] == []


def test_an_encrypted_ledger_is_sealed_and_checked(
    sqlite_url: str, keys: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The seals recorded in an encrypted ledger are ciphertext like every event; the seal
    files are plain."""
    cipher = {CIPHER_KEY_ENV: AESCipher.create_key(32)}
    monkeypatch.setenv(CIPHER_KEY_ENV, cipher[CIPHER_KEY_ENV])
    record_payments(sqlite_url, 1)
    sealed = run_json(
        "audit", "seal", "--db", sqlite_url, "--key", str(keys[0]), "--out", str(tmp_path),
        env=cipher,
    )  # fmt: skip
    assert sealed["recorded"] is True
    assert json.loads(Path(sealed["file"]).read_text()) == sealed["seal"]
    result = run_json(
        "audit", "verify", "--db", sqlite_url, "--seals", str(tmp_path),
        "--public-key", str(keys[1]), env=cipher,
    )  # fmt: skip
    assert result["seals"][0]["holds"]
    with event_table(sqlite_url) as (conn, table, _):
        states = conn.execute(sa.text(f"SELECT state FROM {table} WHERE topic LIKE '%Seals%'"))
        assert all(b"head_hash" not in bytes(state) for (state,) in states)
