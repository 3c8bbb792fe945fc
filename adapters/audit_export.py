"""Export the event log as checksummed JSON Lines; import it into an empty database with the
same positions, bytes and hash chain (`ledger.chain`), so it verifies with the same head hash.

An export directory holds `events-00001.jsonl`, ... (at most FILE_EVENTS_MAX events each, one
object per event: position, originator_id, originator_version, topic and state, the base64 of
the stored bytes, encrypted or not) and `manifest.json`: the count and head hash `verify`
reported, the first and last positions, each file's count and SHA-256, and the seals of the
ledger's closed periods (`ledger.seal`; the seals are events of the log too). Import checks
each seal against the events it loads (the recomputed chain hash and count at its position)
and, given the public key, its signature: an export edited with its manifest and digests
recomputed still fails there. Export refuses a log
whose chain does not verify. Import checks the file list and digests before touching the
database, then loads the events with their links recomputed by `link()` in one transaction,
committed only if every check passes and the recomputed head hash is the manifest's: an edited,
added, removed or reordered event imports nothing, even with the digests fixed; so does an
event holding a card number (CARD_NUMBER_DETECTED), in its line or in its state when that is
plain JSON. That one transaction is the import's promise (a new, empty database, locked for it,
ends with the whole log or nothing); its round trips are bounded: BATCH events per statement
(on PostgreSQL one INSERT of arrays, never psycopg's pipeline mode).
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any
from uuid import UUID

import orjson
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from eventsourcing.persistence import IntegrityError

from adapters.audit import verify
from adapters.seals import chain_problem, signature_problem
from ledger import Ledger
from ledger.chain import GENESIS, Link, Row, link
from ledger.errors import Code, Conflict, InvalidRecord
from ledger.pan import holds_pan
from ledger.seal import Seal
from ledger.storage import LogImporter, engine_for, events_after_sql

FORMAT = "offline-ledger-export/2"  # /2 added `seals`
FORMATS = ("offline-ledger-export/1", FORMAT)  # an export without seals still imports
MANIFEST = "manifest.json"
FILE_EVENTS_MAX = 100_000
BATCH = 5_000  # events read or written per statement; bounds memory
_FILE_NAME = re.compile(r"events-\d{5,}\.jsonl")
_HEX_HASH = re.compile(r"[0-9a-f]{64}")
_KEYS = ("position", "originator_id", "originator_version", "topic", "state")


@dataclass(frozen=True)
class ExportFile:
    name: str
    count: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    count: int
    head_hash: str
    first_position: int | None
    last_position: int | None
    files: tuple[ExportFile, ...]
    exported_at: str
    seals: tuple[Seal, ...] = ()
    format: str = FORMAT

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "count": self.count,
            "head_hash": self.head_hash,
            "first_position": self.first_position,
            "last_position": self.last_position,
            "files": [asdict(f) for f in self.files],
            "exported_at": self.exported_at,
            "seals": [seal.to_dict() for seal in self.seals],
        }


# -- export -----------------------------------------------------------------------------------


def export_log(ledger: Ledger, out_dir: Path) -> Manifest:
    """Write the whole log, as verified, into `out_dir` (new or empty)."""
    _require_database(ledger)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise InvalidRecord(
            Code.INVALID_VALUE,
            f"{out_dir} is not an empty directory: export into a new one",
            field="out_dir",
        )
    verified = verify(ledger)
    if verified.problem is not None:
        problem = verified.problem
        raise Conflict(
            Code.EXPORT_INVALID,
            f"the hash chain does not verify at position "
            f"{problem.position} ({problem.kind}: {problem.detail}): nothing "
            "exported; run `offline-ledger audit verify`",
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    files = _Files(out_dir)
    engine = engine_for(ledger.config)
    try:
        with engine.connect() as conn:
            head, count, first, last = GENESIS, 0, None, None
            for rows in _read(conn, ledger.config.kind, verified.count):
                for position, stream, version, topic, state in rows:
                    files.write(
                        orjson.dumps(
                            {
                                "position": position,
                                "originator_id": str(stream),
                                "originator_version": version,
                                "topic": topic,
                                "state": base64.b64encode(state).decode(),
                            }
                        )
                        + b"\n"
                    )
                head = link(head, rows)[-1][2]
                count, first, last = count + len(rows), first or rows[0][0], rows[-1][0]
        if (count, head.hex()) != (verified.count, verified.head_hash):
            raise Conflict(
                Code.EXPORT_INVALID,
                f"the log read for export ({count} events, "
                f"head {head.hex()}) is not the one verified ({verified.count}, "
                f"head {verified.head_hash}): it was edited meanwhile",
            )
        manifest = Manifest(
            count,
            head.hex(),
            first,
            last,
            files.close(),
            datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            tuple(seal for seal in ledger.seals() if seal.through_position <= (last or 0)),
        )
        (out_dir / MANIFEST).write_bytes(
            orjson.dumps(manifest.to_dict(), option=orjson.OPT_INDENT_2) + b"\n"
        )
    except BaseException:
        files.remove()
        raise
    finally:
        engine.dispose()
    return manifest


def _read(conn: sa.Connection, kind: str, count: int) -> Iterator[list[Row]]:
    """The first `count` events in log order, in batches."""
    query = events_after_sql(kind)
    after, left = 0, count
    while left > 0 and (
        found := conn.execute(sa.text(query), {"after": after, "limit": min(BATCH, left)}).all()
    ):
        rows = [
            (
                int(p),
                UUID(str(s)),
                int(v),
                str(t),
                state.encode() if isinstance(state, str) else bytes(state),
            )
            for p, s, v, t, state in found
        ]
        yield rows
        after, left = rows[-1][0], left - len(rows)


class _Files:
    """events-NNNNN.jsonl files of at most FILE_EVENTS_MAX events each, with their digests."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.done: list[ExportFile] = []
        self._stream: IO[bytes] | None = None
        self._digest = hashlib.sha256()
        self._count = 0

    def write(self, line: bytes) -> None:
        if self._stream is None or self._count == FILE_EVENTS_MAX:
            self._finish()
            self._stream = (self.out_dir / self._name(len(self.done) + 1)).open("xb")
        self._stream.write(line)
        self._digest.update(line)
        self._count += 1

    def close(self) -> tuple[ExportFile, ...]:
        self._finish()
        return tuple(self.done)

    def remove(self) -> None:
        self._finish()
        for path in [self.out_dir / f.name for f in self.done] + [self.out_dir / MANIFEST]:
            path.unlink(missing_ok=True)

    def _finish(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None
            self.done.append(
                ExportFile(self._name(len(self.done) + 1), self._count, self._digest.hexdigest())
            )
        self._digest, self._count = hashlib.sha256(), 0

    @staticmethod
    def _name(number: int) -> str:
        return f"events-{number:05d}.jsonl"


# -- import -----------------------------------------------------------------------------------


def import_log(ledger: Ledger, in_dir: Path, key: Ed25519PublicKey | None = None) -> Manifest:
    """Load the export in `in_dir` into the ledger's empty database, all or nothing; with
    `key`, every seal of the export must be signed by it."""
    importer = _importer(ledger)
    manifest = read_manifest(in_dir)
    for seal in manifest.seals:
        if key is not None and (problem := signature_problem(seal, key)) is not None:
            raise _invalid(
                MANIFEST, f"the seal through position {seal.through_position}: {problem}"
            )
    present = {path.name for path in in_dir.iterdir()}
    for entry in manifest.files:
        if entry.name not in present or not (in_dir / entry.name).is_file():
            raise _invalid(entry.name, "is missing: the manifest lists it")
    for name in sorted(present - {entry.name for entry in manifest.files} - {MANIFEST}):
        raise _invalid(name, "is not in the manifest: a file was added")
    for entry in manifest.files:
        digest = hashlib.sha256()
        with (in_dir / entry.name).open("rb") as stream:
            while chunk := stream.read(1 << 20):
                digest.update(chunk)
        if digest.hexdigest() != entry.sha256:
            raise _invalid(
                entry.name,
                f"its sha256 is {digest.hexdigest()}, the manifest says "
                f"{entry.sha256}: the file was changed",
            )
    failed: list[tuple[str, int, int]] = []
    try:
        importer.import_log(_batches(in_dir, manifest, failed))
    except IntegrityError:
        ((name, first, last),) = failed
        raise _invalid(
            name, f"lines {first} to {last}: an event repeats a stream's version"
        ) from None
    return manifest


def read_manifest(in_dir: Path) -> Manifest:
    try:
        value = orjson.loads((in_dir / MANIFEST).read_bytes())
    except FileNotFoundError:
        raise _invalid(MANIFEST, f"is missing from {in_dir}: it is not a finished export") from None
    except orjson.JSONDecodeError:
        raise _invalid(MANIFEST, "is not valid JSON") from None
    if _field(value, "format", str) not in FORMATS:
        raise _invalid(MANIFEST, f"format is {value['format']!r}, not {FORMAT!r}")
    files = _field(value, "files", list)
    seals = _field(value, "seals", list) if value["format"] == FORMAT else []
    manifest = Manifest(
        _field(value, "count", int),
        _field(value, "head_hash", str),
        _field(value, "first_position", (int, type(None))),
        _field(value, "last_position", (int, type(None))),
        tuple(
            ExportFile(_field(f, "name", str), _field(f, "count", int), _field(f, "sha256", str))
            for f in files
        ),
        _field(value, "exported_at", str),
        tuple(Seal.from_dict(seal, f"{MANIFEST}: seals[{n}]") for n, seal in enumerate(seals)),
        value["format"],
    )
    names = [entry.name for entry in manifest.files]
    if not all(_FILE_NAME.fullmatch(name) for name in names) or len(set(names)) != len(names):
        raise _invalid(MANIFEST, "files must be distinct names like events-00001.jsonl")
    if sum(entry.count for entry in manifest.files) != manifest.count:
        raise _invalid(
            MANIFEST,
            f"the files' counts add up to "
            f"{sum(entry.count for entry in manifest.files)}, count is "
            f"{manifest.count}",
        )
    if not _HEX_HASH.fullmatch(manifest.head_hash):
        raise _invalid(MANIFEST, "head_hash is not 64 lowercase hex digits")
    return manifest


def _field(value: Any, key: str, kind: type | tuple[type, ...]) -> Any:
    if (
        not isinstance(value, dict)
        or not isinstance(value.get(key), kind)
        or isinstance(value.get(key), bool)
    ):
        raise _invalid(MANIFEST, f"{key} is missing or of the wrong type")
    return value[key]


def _batches(
    in_dir: Path, manifest: Manifest, failed: list[tuple[str, int, int]]
) -> Iterator[tuple[list[Row], list[Link]]]:
    """The export's events in batches with their recomputed links, each file and the whole
    checked against the manifest; the last check (the head hash) comes before the store
    commits. `failed` is told which lines the batch being written came from."""
    head, position, first, count = GENESIS, 0, None, 0
    sealed = {seal.through_position for seal in manifest.seals}
    marks: dict[int, tuple[int, str]] = {}
    for entry in manifest.files:
        batch: list[Row] = []
        number = 0
        with (in_dir / entry.name).open("rb") as stream:
            for number, raw in enumerate(stream, start=1):
                row = _parse(raw, entry.name, number)
                if row[0] <= position:
                    raise _invalid(
                        entry.name,
                        f"position {row[0]} comes after position "
                        f"{position}: the events are out of position order",
                        number,
                    )
                position, first = row[0], first or row[0]
                batch.append(row)
                if len(batch) == BATCH:
                    links = link(head, batch)
                    count = _mark(links, count, sealed, marks)
                    failed[:] = [(entry.name, number - len(batch) + 1, number)]
                    yield batch, links
                    head, batch = links[-1][2], []
        if batch:
            links = link(head, batch)
            count = _mark(links, count, sealed, marks)
            failed[:] = [(entry.name, number - len(batch) + 1, number)]
            yield batch, links
            head = links[-1][2]
        if number != entry.count:
            raise _invalid(entry.name, f"holds {number} events, the manifest says {entry.count}")
    if (first, position or None) != (manifest.first_position, manifest.last_position):
        raise _invalid(
            MANIFEST,
            f"the events run from position {first} to {position or None}, "
            f"the manifest says {manifest.first_position} to "
            f"{manifest.last_position}",
        )
    if head.hex() != manifest.head_hash:
        raise _invalid(
            MANIFEST,
            f"the events hash to head {head.hex()}, head_hash is "
            f"{manifest.head_hash}: an event was edited, added, removed or reordered",
        )
    for seal in manifest.seals:
        problem = chain_problem(seal, marks, position)
        if problem is not None:
            raise _invalid(
                MANIFEST, f"the seal through position {seal.through_position}: {problem}"
            )


def _mark(
    links: list[Link], count: int, sealed: set[int], marks: dict[int, tuple[int, str]]
) -> int:
    """Note the count and chain hash at each sealed position of `links` (the events after
    `count` others); return the count after them."""
    for offset, (position, _, chained) in enumerate(links, start=1):
        if position in sealed:
            marks[position] = (count + offset, chained.hex())
    return count + len(links)


def _parse(raw: bytes, name: str, number: int) -> Row:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise _invalid(name, "not a JSON object", number) from None
    if not isinstance(value, dict) or sorted(value) != sorted(_KEYS):
        raise _invalid(name, f"an event has exactly the keys {', '.join(_KEYS)}", number)
    position, stream, version, topic, state = (value[key] for key in _KEYS)
    if not (
        type(position) is int
        and position > 0
        and type(version) is int
        and isinstance(stream, str)
        and isinstance(topic, str)
        and isinstance(state, str)
    ):
        raise _invalid(
            name,
            "position and originator_version must be integers (position "
            "above 0), the other fields strings",
            number,
        )
    try:
        row = position, UUID(stream), version, topic, base64.b64decode(state, validate=True)
    except ValueError:
        raise _invalid(name, "originator_id is not a UUID or state is not base64", number) from None
    if holds_pan(raw) or _plain_state_holds_pan(row[4]):
        raise InvalidRecord(
            Code.CARD_NUMBER_DETECTED,
            f"{name}: an event holds a full card number (13-19 digits passing the Luhn "
            "check), which the ledger never stores: the export was not made by it, or was "
            "edited; nothing imported",
            line=number,
            details={"file": name},
        )
    return row


def _plain_state_holds_pan(state: bytes) -> bool:
    """Whether an event's stored state, when it is plain JSON, holds a card number. An
    encrypted or compressed state cannot be read here, and its random bytes are not searched
    (they would look like digits joined by punctuation now and then)."""
    try:
        orjson.loads(state)
    except orjson.JSONDecodeError:
        return False
    return holds_pan(state)


def _invalid(name: str, what: str, line: int | None = None) -> InvalidRecord:
    return InvalidRecord(
        Code.EXPORT_INVALID, f"{name}: {what}; nothing imported", line=line, details={"file": name}
    )


def _importer(ledger: Ledger) -> LogImporter:
    recorder = ledger.store.recorder
    if not isinstance(recorder, LogImporter):
        raise _memory()
    return recorder


def _require_database(ledger: Ledger) -> None:
    if ledger.config.kind not in ("sqlite", "postgresql"):
        raise _memory()


def _memory() -> InvalidRecord:
    return InvalidRecord(
        Code.INVALID_VALUE,
        "export and import need an SQLite or PostgreSQL ledger, not memory://",
        field="db",
    )
