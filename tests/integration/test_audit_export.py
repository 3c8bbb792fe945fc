"""Export and import of the event log (adapters.audit_export): a log exported from SQLite or
PostgreSQL and imported into a fresh database of either kind verifies with the same count and
head hash, gives the same payments and status, and grows on; a tampered export is refused with
the file and line named and leaves the target database empty."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from adapters import audit_export
from adapters.audit import verify
from adapters.audit_export import MANIFEST, Manifest, export_log, import_log
from ledger import Ledger, LedgerError
from ledger.chain import CHAIN_TABLE
from ledger.errors import Code
from ledger.storage import POSTGRES_EVENTS_TABLE, SQLITE_EVENTS_TABLE, engine_for
from tests.conftest import postgres_base_url
from tests.support import records as r

FILE_EVENTS = 100  # events per file in these tests: a few hundred events make several files
LOAD_BATCH = 40  # so an import refused in a later file has already written batches

NewUrl = Callable[[str], str]


@pytest.fixture
def new_url(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[NewUrl]:
    """Fresh databases: new_url("sqlite") or new_url("postgres"), each an empty ledger."""
    schemas: list[str] = []
    base = postgres_base_url()

    def make(kind: str) -> str:
        if kind == "sqlite":
            return f"sqlite:///{tmp_path / f'{uuid.uuid4().hex[:8]}.db'}"
        if base is None:
            return str(request.getfixturevalue("postgres_url"))  # skips, with the notice
        schema = f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(base, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        schemas.append(schema)
        return f"{base}{'&' if '?' in base else '?'}schema={schema}"

    yield make
    if schemas:
        with psycopg.connect(str(base), autocommit=True, connect_timeout=5) as conn:
            for schema in schemas:
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(autouse=True)
def small_files(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit_export, "FILE_EVENTS_MAX", FILE_EVENTS)
    monkeypatch.setattr(audit_export, "BATCH", LOAD_BATCH)


def build(url: str) -> list[str]:
    """A ledger with a few hundred events: payments stored, forwarded, captured, canceled;
    their offline ids."""
    offline_ids = []
    with Ledger.open(url) as ledger:
        ledger.record(r.location())
        for device_id in ("tmr_1", "tmr_2"):
            ledger.record(r.device(device_id))
        for n in range(60):
            records = r.stored_payment(
                amount=1000 + n, capture_method="manual", device_id=f"tmr_{n % 2 + 1}"
            )
            offline_id = records[0]["offline_id"]
            if n % 3 == 0:
                records.append(r.forwarded(offline_id, f"pi_{n}", "requires_capture"))
            if n % 9 == 0:
                records.append(r.captured(offline_id, f"pi_{n}", 1000 + n))
            if n % 10 == 5 and n % 3:  # stored, never forwarded
                records.append(r.canceled(offline_id))
            assert all(not isinstance(x, LedgerError) for x in ledger.record_many(records))
            offline_ids.append(offline_id)
    return offline_ids


def stored(ledger: Ledger) -> list[tuple[int, str, int, str, bytes]]:
    """Every event as stored, in log order: position, stream, version, topic, state."""
    if ledger.config.kind == "postgresql":
        query = (
            f"SELECT notification_id, originator_id, originator_version, topic, state "
            f"FROM {POSTGRES_EVENTS_TABLE} ORDER BY notification_id"
        )
    else:
        query = (
            f"SELECT rowid, originator_id, originator_version, topic, state "
            f"FROM {SQLITE_EVENTS_TABLE} ORDER BY rowid"
        )
    engine = engine_for(ledger.config)
    try:
        with engine.connect() as conn:
            return [
                (p, str(uuid.UUID(str(s))), v, t, bytes(b))
                for p, s, v, t, b in conn.execute(sa.text(query)).all()
            ]
    finally:
        engine.dispose()


def link_count(ledger: Ledger) -> int:
    engine = engine_for(ledger.config)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text(f"SELECT COUNT(*) FROM {CHAIN_TABLE}")).scalar_one())
    finally:
        engine.dispose()


def exported_lines(out: Path, manifest: Manifest) -> list[dict[str, object]]:
    return [
        json.loads(line) for f in manifest.files for line in (out / f.name).read_text().splitlines()
    ]


# -- round trip -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source_kind", "target_kind"),
    [
        ("sqlite", "sqlite"),
        ("postgres", "postgres"),
        ("postgres", "sqlite"),
        ("sqlite", "postgres"),
    ],
)
def test_an_imported_export_is_the_same_log_and_grows_on(
    new_url: NewUrl,
    tmp_path: Path,
    source_kind: str,
    target_kind: str,
) -> None:
    source_url, target_url = new_url(source_kind), new_url(target_kind)
    offline_ids = build(source_url)
    out = tmp_path / "export"
    with Ledger.open(source_url) as source:
        manifest = export_log(source, out)
        source_verified = verify(source)
        source_events = stored(source)
        payments = [source.payment(i) for i in offline_ids]
        status = source.status()
        history = source.history(offline_ids[0])

    # The export: every event once, in log order, bytes as stored; the manifest on disk.
    assert (manifest.count, manifest.head_hash) == (
        source_verified.count,
        source_verified.head_hash,
    )
    assert 250 <= manifest.count == len(source_events)
    assert json.loads((out / MANIFEST).read_text()) == manifest.to_dict()
    assert manifest.to_dict()["format"] == "offline-ledger-export/2"
    assert [f.name for f in manifest.files] == [
        f"events-{n:05d}.jsonl" for n in range(1, len(manifest.files) + 1)
    ]
    assert [f.count for f in manifest.files][:-1] == [FILE_EVENTS] * (len(manifest.files) - 1)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [MANIFEST, *(f.name for f in manifest.files)]
    )
    for f in manifest.files:
        assert hashlib.sha256((out / f.name).read_bytes()).hexdigest() == f.sha256
    lines = exported_lines(out, manifest)
    assert [
        (
            x["position"],
            x["originator_id"],
            x["originator_version"],
            x["topic"],
            base64.b64decode(str(x["state"])),
        )
        for x in lines
    ] == source_events
    assert (manifest.first_position, manifest.last_position) == (
        source_events[0][0],
        source_events[-1][0],
    )

    with Ledger.open(target_url) as target:
        assert import_log(target, out) == manifest
        imported = verify(target)
        assert imported.ok, imported.to_dict()
        assert (imported.count, imported.head_hash) == (manifest.count, manifest.head_hash)
        assert stored(target) == source_events  # same positions, streams and bytes
        assert link_count(target) == manifest.count
        assert [target.payment(i) for i in offline_ids] == payments
        assert target.status() == status
        assert target.history(offline_ids[0]) == history

        again = export_log(target, tmp_path / "again")  # the same files, byte for byte
        assert (again.count, again.head_hash, again.files) == (
            manifest.count,
            manifest.head_hash,
            manifest.files,
        )

        more = r.stored_payment(amount=777, device_id="tmr_2")
        results = target.record_many([*more, r.forwarded(offline_ids[1], "pi_new", "succeeded")])
        assert all(not isinstance(x, LedgerError) for x in results)
        grown = verify(target)
        assert grown.ok, grown.to_dict()
        assert grown.count > manifest.count
        assert manifest.last_position is not None
        assert target.store.recorder.max_notification_id() == (
            manifest.last_position + grown.count - manifest.count
        )
        assert target.payment(offline_ids[1]).status == "captured"


def test_an_empty_log_exports_and_imports(new_url: NewUrl, tmp_path: Path) -> None:
    with Ledger.open(new_url("sqlite")) as source:
        manifest = export_log(source, tmp_path / "out")
    assert manifest.to_dict() | {"exported_at": None} == {
        "format": "offline-ledger-export/2",
        "count": 0,
        "head_hash": "0" * 64,
        "first_position": None,
        "last_position": None,
        "files": [],
        "exported_at": None,
        "seals": [],
    }
    with Ledger.open(new_url("sqlite")) as target:
        import_log(target, tmp_path / "out")
        assert verify(target).count == 0
        target.record(r.location())
        assert verify(target).ok


# -- refusals on export -----------------------------------------------------------------------


def test_export_refuses_a_directory_that_is_not_empty(new_url: NewUrl, tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("keep")
    with Ledger.open(new_url("sqlite")) as ledger:
        ledger.record(r.location())
        with pytest.raises(LedgerError) as refused:
            export_log(ledger, tmp_path / "out")
    assert refused.value.code == Code.INVALID_VALUE
    assert "is not an empty directory" in refused.value.message
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["notes.txt"]


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_export_refuses_a_log_whose_chain_does_not_verify(
    new_url: NewUrl,
    tmp_path: Path,
    kind: str,
) -> None:
    url = new_url(kind)
    build(url)
    with Ledger.open(url) as ledger:
        table, column = (
            (POSTGRES_EVENTS_TABLE, "notification_id")
            if kind == "postgres"
            else (SQLITE_EVENTS_TABLE, "rowid")
        )
        engine = engine_for(ledger.config)
        with engine.begin() as conn:
            state = bytes(
                conn.execute(sa.text(f"SELECT state FROM {table} WHERE {column} = 50")).scalar_one()
            )
            conn.execute(
                sa.text(f"UPDATE {table} SET state = :s WHERE {column} = 50"),
                {"s": state.replace(b"1", b"2", 1)},
            )
        engine.dispose()
        with pytest.raises(LedgerError) as refused:
            export_log(ledger, tmp_path / "out")
    assert refused.value.code == Code.EXPORT_INVALID
    assert "does not verify at position 50 (altered" in refused.value.message
    assert not (tmp_path / "out").exists()


# -- refusals on import -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def clean_export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Manifest]:
    """An export of a few hundred events, from SQLite, in files of FILE_EVENTS events."""
    base = tmp_path_factory.mktemp("export")
    url = f"sqlite:///{base / 'source.db'}"
    build(url)
    with pytest.MonkeyPatch.context() as patch, Ledger.open(url) as ledger:
        patch.setattr(audit_export, "FILE_EVENTS_MAX", FILE_EVENTS)
        manifest = export_log(ledger, base / "out")
    assert len(manifest.files) == 3
    return base / "out", manifest


def fix_digest(out: Path, name: str) -> None:
    manifest = json.loads((out / MANIFEST).read_text())
    for entry in manifest["files"]:
        if entry["name"] == name:
            entry["sha256"] = hashlib.sha256((out / name).read_bytes()).hexdigest()
    (out / MANIFEST).write_text(json.dumps(manifest))


def edit_lines(out: Path, name: str, edit: Callable[[list[str]], None]) -> None:
    lines = (out / name).read_text().splitlines(keepends=True)
    edit(lines)
    (out / name).write_text("".join(lines))


def edit_one_byte(out: Path) -> None:
    data = bytearray((out / "events-00002.jsonl").read_bytes())
    at = data.index(b'"originator_version":') + len(b'"originator_version":')
    data[at] = ord("9") if data[at] != ord("9") else ord("8")
    (out / "events-00002.jsonl").write_bytes(bytes(data))


def edit_state_fix_digest(out: Path) -> None:
    # A letter, not a digit: a digit edited inside the event's timestamp can make a run of
    # digits that passes the Luhn check, and the export would then be refused for holding a
    # card number instead of for its broken chain.
    def edit(lines: list[str]) -> None:
        event = json.loads(lines[9])
        state = base64.b64decode(event["state"]).replace(b"e", b"f", 1)
        lines[9] = json.dumps(event | {"state": base64.b64encode(state).decode()}) + "\n"

    edit_lines(out, "events-00003.jsonl", edit)
    fix_digest(out, "events-00003.jsonl")


def repeat_a_version_fix_digest(out: Path) -> None:
    """An event of another stream given the stream id and version of the event before it."""

    def edit(lines: list[str]) -> None:
        before, event = json.loads(lines[0]), json.loads(lines[1])
        keys = ("originator_id", "originator_version")
        lines[1] = json.dumps(event | {key: before[key] for key in keys}) + "\n"

    edit_lines(out, "events-00002.jsonl", edit)
    fix_digest(out, "events-00002.jsonl")


def delete_a_file(out: Path) -> None:
    (out / "events-00002.jsonl").unlink()


def add_a_file(out: Path) -> None:
    shutil.copy(out / "events-00003.jsonl", out / "events-00004.jsonl")


def reorder_two_lines(out: Path) -> None:
    def edit(lines: list[str]) -> None:
        lines[4], lines[5] = lines[5], lines[4]

    edit_lines(out, "events-00003.jsonl", edit)
    fix_digest(out, "events-00003.jsonl")


def drop_a_line_fix_digest(out: Path) -> None:
    def edit(lines: list[str]) -> None:
        del lines[30]

    edit_lines(out, "events-00002.jsonl", edit)
    fix_digest(out, "events-00002.jsonl")


def raise_the_count(out: Path) -> None:
    manifest = json.loads((out / MANIFEST).read_text())
    (out / MANIFEST).write_text(json.dumps(manifest | {"count": manifest["count"] + 1}))


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
@pytest.mark.parametrize(
    ("tamper", "expected", "line"),
    [
        (edit_one_byte, "events-00002.jsonl: its sha256 is", None),
        (edit_state_fix_digest, "manifest.json: the events hash to head", None),
        (
            repeat_a_version_fix_digest,
            "events-00002.jsonl: lines 1 to 40: an event repeats a stream's version",
            None,
        ),
        (delete_a_file, "events-00002.jsonl: is missing", None),
        (add_a_file, "events-00004.jsonl: is not in the manifest", None),
        (
            reorder_two_lines,
            "events-00003.jsonl: position 205 comes after position 206: the "
            "events are out of position order",
            6,
        ),
        (
            drop_a_line_fix_digest,
            "events-00002.jsonl: holds 99 events, the manifest says 100",
            None,
        ),
        (raise_the_count, "manifest.json: the files' counts add up to", None),
    ],
)
def test_a_tampered_export_is_refused_and_nothing_is_imported(
    new_url: NewUrl,
    tmp_path: Path,
    clean_export: tuple[Path, Manifest],
    kind: str,
    tamper: Callable[[Path], None],
    expected: str,
    line: int | None,
) -> None:
    clean, manifest = clean_export
    out = tmp_path / "tampered"
    shutil.copytree(clean, out)
    tamper(out)
    with Ledger.open(new_url(kind)) as target:
        with pytest.raises(LedgerError) as refused:
            import_log(target, out)
        assert refused.value.code == Code.EXPORT_INVALID
        assert expected in refused.value.message, refused.value.message
        assert refused.value.message.endswith("nothing imported")
        assert refused.value.line == line
        assert stored(target) == [] and link_count(target) == 0
        import_log(target, clean)  # the untampered export still goes in: nothing was left
        assert (verify(target).count, verify(target).head_hash) == (
            manifest.count,
            manifest.head_hash,
        )


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_import_refuses_a_database_that_holds_events(
    new_url: NewUrl,
    clean_export: tuple[Path, Manifest],
    kind: str,
) -> None:
    with Ledger.open(new_url(kind)) as target:
        target.record(r.location())
        before = stored(target)
        with pytest.raises(LedgerError) as refused:
            import_log(target, clean_export[0])
        assert refused.value.code == Code.INVALID_VALUE
        assert "already holds events" in refused.value.message
        assert stored(target) == before and verify(target).ok


def test_import_refuses_a_directory_without_a_manifest(new_url: NewUrl, tmp_path: Path) -> None:
    with Ledger.open(new_url("sqlite")) as target, pytest.raises(LedgerError) as refused:
        import_log(target, tmp_path)
    assert refused.value.code == Code.EXPORT_INVALID
    assert refused.value.message.startswith("manifest.json: is missing")


def _plant_in_state(out: Path) -> None:
    """A card number in a plain-JSON state (metadata of a stored event), digests fixed."""

    def edit(lines: list[str]) -> None:
        event = json.loads(lines[9])
        state = json.loads(base64.b64decode(event["state"]))
        state["card"] = "4000 0566 5566 5556"
        encoded = base64.b64encode(json.dumps(state).encode()).decode()
        lines[9] = json.dumps(event | {"state": encoded}) + "\n"

    edit_lines(out, "events-00003.jsonl", edit)
    fix_digest(out, "events-00003.jsonl")


def _plant_in_topic(out: Path) -> None:
    def edit(lines: list[str]) -> None:
        event = json.loads(lines[3])
        lines[3] = json.dumps(event | {"topic": "ledger:Payment.x5105105105105100"}) + "\n"

    edit_lines(out, "events-00001.jsonl", edit)
    fix_digest(out, "events-00001.jsonl")


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
@pytest.mark.parametrize("plant", [_plant_in_state, _plant_in_topic])
def test_an_export_holding_a_card_number_imports_nothing(
    new_url: NewUrl,
    tmp_path: Path,
    clean_export: tuple[Path, Manifest],
    kind: str,
    plant: Callable[[Path], None],
) -> None:
    out = tmp_path / "planted"
    shutil.copytree(clean_export[0], out)
    plant(out)
    with Ledger.open(new_url(kind)) as target:
        with pytest.raises(LedgerError) as refused:
            import_log(target, out)
        assert refused.value.code == Code.CARD_NUMBER_DETECTED
        message = json.dumps(refused.value.to_dict())
        assert "5556" not in message and "5100" not in message
        assert stored(target) == [] and link_count(target) == 0
