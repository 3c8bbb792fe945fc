"""Sealing periods of the log with an Ed25519 key, and checking the log against seals.

`seal` closes a period: it finds the last fact recorded by the period's end, verifies the hash
chain up to it, signs the chain hash, position, count and moments there (`ledger.seal.Seal`),
records the seal in the log and writes it as a small JSON file an auditor keeps. The private
key comes from a PEM file or from OFFLINE_LEDGER_SEAL_KEY (the PEM text) and never reaches
the database.

`verify_sealed` walks the log once (`adapters.audit.verify`, with the chain hash noted at each
seal's position) and says for every seal whether the log up to it is still the one sealed.
An edit the chain shows, a chain recomputed after an edit, and events cut from the end with
their links are each reported with the period they break: the first seal that fails while
every earlier one holds brackets where the log was changed (after the previous seal's
position, up to its own).

Keys are the ones `openssl genpkey -algorithm ed25519` and `openssl pkey -pubout` write
(PKCS #8 and SubjectPublicKeyInfo PEM). Ed25519 (RFC 8032) signatures are deterministic, so
the same seal signed twice is the same file.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_private_key,
    load_pem_public_key,
)

from adapters.audit import BATCH, VerifyResult, verify, verify_chain
from ledger import Ledger
from ledger.errors import Code, Conflict, InvalidRecord
from ledger.identity import seals_id
from ledger.pan import holds_pan, mask
from ledger.seal import Seal, moment_text

SEAL_KEY_ENV = "OFFLINE_LEDGER_SEAL_KEY"
SEAL_FILE_GLOB = "seal-*.json"
SEAL_FILES_MAX = 100_000  # seal files one verify takes: a daily seal for 270 years


# -- keys -------------------------------------------------------------------------------------


def private_key(path: Path | None, environ: Mapping[str, str] | None = None) -> Ed25519PrivateKey:
    """The signing key from the PEM file at `path`, else from OFFLINE_LEDGER_SEAL_KEY (the
    PEM text); INVALID_SEAL_KEY when neither holds an Ed25519 private key. The key itself is
    never repeated in a message."""
    environ = os.environ if environ is None else environ
    if path is not None:
        where, pem = str(path), _read_key_file(path)
    elif environ.get(SEAL_KEY_ENV, "").strip():
        where, pem = SEAL_KEY_ENV, environ[SEAL_KEY_ENV].strip().encode()
    else:
        raise _bad_key(
            "no signing key: give --key FILE or set "
            f"{SEAL_KEY_ENV} to the PEM text of an Ed25519 private key "
            "(make one with: openssl genpkey -algorithm ed25519 -out seal-key.pem)"
        )
    try:
        key = load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, Ed25519PrivateKey):
        raise _bad_key(f"{where} does not hold an unencrypted Ed25519 private key in PEM")
    return key


def public_key(path: Path) -> Ed25519PublicKey:
    """The verifying key from the PEM file at `path` (`openssl pkey -pubout` writes it)."""
    try:
        key = load_pem_public_key(_read_key_file(path))
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, Ed25519PublicKey):
        raise _bad_key(f"{path} does not hold an Ed25519 public key in PEM")
    return key


def key_id(key: Ed25519PublicKey) -> str:
    """The first 16 hex digits of the SHA-256 of the raw public key: names the key in a seal
    without giving it (a seal checked with another key says so)."""
    return hashlib.sha256(key.public_bytes(Encoding.Raw, PublicFormat.Raw)).hexdigest()[:16]


def _read_key_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise _bad_key(f"cannot read {path}: {error.strerror}") from None


def _bad_key(message: str) -> InvalidRecord:
    return InvalidRecord(Code.INVALID_SEAL_KEY, message, field="key")


def signature_problem(seal: Seal, key: Ed25519PublicKey) -> str | None:
    """Why `seal` was not signed by `key`, or None when it was."""
    if seal.key_id != key_id(key):
        return f"it was signed with another key (key id {seal.key_id}, not {key_id(key)})"
    try:
        key.verify(seal.signature_bytes, seal.message())
    except InvalidSignature:
        return "its signature does not match its fields: the seal was edited or forged"
    return None


# -- sealing ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sealed:
    seal: Seal
    recorded: bool  # False: the period was sealed already, this is that seal
    file: Path

    def to_dict(self) -> dict[str, Any]:
        return {"recorded": self.recorded, "file": str(self.file), "seal": self.seal.to_dict()}


def seal(
    ledger: Ledger,
    key: Ed25519PrivateKey,
    out_dir: Path,
    through: datetime | None = None,
    now: datetime | None = None,
) -> Sealed:
    """Close the period ending at `through` (default: now) and write its seal file into
    `out_dir`; sealing again with nothing new recorded gives back the same seal."""
    signer = key_id(key.public_key())
    if holds_pan(signer):
        # Stored in the log and in every seal file: a card-number scan (the import of an
        # export, anyone's data-loss tool) would take the log for one holding a card number.
        raise _bad_key(
            f"the key's id ({mask(signer)}) reads as a card number (16 digits passing the "
            "Luhn check, about one key in 2,000): nothing sealed; make another key"
        )
    now = now or datetime.now(UTC)
    moment = through or now
    if moment > now:
        raise Conflict(
            Code.INVALID_VALUE,
            f"{moment_text(moment)} is still to come: a seal closes a period that has ended",
            field="through",
        )
    seals = ledger.seals()
    last = seals[-1] if seals else None
    if last is not None and moment < datetime.fromisoformat(last.through):
        raise Conflict(
            Code.INVALID_VALUE,
            f"the ledger is sealed through {last.through} already: a new seal closes a "
            "later period",
            field="through",
        )
    position = _period_end(ledger, last.through_position if last else 0, through)
    if position == 0:
        raise Conflict(
            Code.INVALID_VALUE,
            f"nothing was recorded by {moment_text(moment)}: there is no period to seal",
            field="through",
        )
    if last is not None and position == last.through_position:
        return Sealed(last, False, write_seal(last, out_dir))
    chain = verify_chain(ledger, marks={position})
    if chain.problem is not None:
        raise Conflict(
            Code.CHAIN_BROKEN,
            f"the hash chain does not verify at position {chain.problem.position} "
            f"({chain.problem.kind}): nothing sealed; run `offline-ledger audit verify`",
        )
    count, head_hash = chain.marks[position]
    unsigned = Seal(
        through=moment_text(moment),
        through_position=position,
        count=count,
        head_hash=head_hash,
        sealed_at=moment_text(now),
        key_id=signer,
        signature="",
    )
    signature = base64.b64encode(key.sign(unsigned.message())).decode()
    recorded, new = ledger.record_seal(replace(unsigned, signature=signature))
    return Sealed(recorded, new, write_seal(recorded, out_dir))


def _period_end(ledger: Ledger, after: int, through: datetime | None) -> int:
    """The position of the last fact (not a seal) in the run of events after position
    `after` recorded by `through` (every one when None): the log's order is commit order, so
    the run ends at the first event recorded later. Events are decoded only for a `through`."""
    end, start = after, after or None
    stream = seals_id()
    while page := ledger.store.recorder.select_notifications(
        start=start, limit=BATCH, inclusive_of_start=False
    ):
        for notification in page:
            if through is not None and ledger.decode(notification).timestamp > through:
                return end
            if UUID(str(notification.originator_id)) != stream:
                end = notification.id
        start = page[-1].id
    return end


def seal_file_name(seal: Seal) -> str:
    return f"seal-{seal.through_position:012d}.json"


def write_seal(seal: Seal, out_dir: Path) -> Path:
    """The seal as a JSON file in `out_dir`, named for its position, written whole or not at
    all (a temporary file renamed over it)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / seal_file_name(seal)
    partial = path.with_suffix(".partial")
    partial.write_bytes(orjson.dumps(seal.to_dict(), option=orjson.OPT_INDENT_2) + b"\n")
    partial.replace(path)
    return path


def read_seals(path: Path) -> list[tuple[str, Seal]]:
    """The seal file at `path`, or every seal-*.json file in the directory `path`, as (file
    name, seal), by position."""
    files = sorted(path.glob(SEAL_FILE_GLOB)) if path.is_dir() else [path]
    if not files:
        raise InvalidRecord(
            Code.INVALID_SEAL, f"{path} holds no seal files ({SEAL_FILE_GLOB})", field="seals"
        )
    if len(files) > SEAL_FILES_MAX:
        raise InvalidRecord(
            Code.INVALID_SEAL, f"{path} holds over {SEAL_FILES_MAX} seal files", field="seals"
        )
    found = []
    for file in files:
        try:
            value = orjson.loads(file.read_bytes())
        except OSError as error:
            raise InvalidRecord(
                Code.INVALID_SEAL, f"cannot read {file}: {error.strerror}", field="seals"
            ) from None
        except orjson.JSONDecodeError:
            raise InvalidRecord(
                Code.INVALID_SEAL, f"{file.name}: not JSON", details={"file": file.name}
            ) from None
        found.append((file.name, Seal.from_dict(value, file.name)))
    return sorted(found, key=lambda named: named[1].through_position)


# -- checking ---------------------------------------------------------------------------------

Marks = Mapping[int, tuple[int, str]]  # position: (events up to it, chain hash there, hex)


def chain_problem(seal: Seal, marks: Marks, last_position: int) -> str | None:
    """Why the log, as recomputed from its events (`marks` at the seal's position; the log
    ends at `last_position`), is not the one `seal` signed; None when it is."""
    found = marks.get(seal.through_position)
    if found is None and last_position < seal.through_position:
        return (
            f"the log ends at position {last_position}, before the sealed position "
            f"{seal.through_position}: events were cut from the end"
        )
    if found is None:
        return (
            f"the log has no event at the sealed position {seal.through_position}: "
            "it was deleted and the chain recomputed"
        )
    if found != (seal.count, seal.head_hash):
        return (
            f"up to position {seal.through_position} the log holds {found[0]} events "
            f"hashing to {found[1]}, the seal says {seal.count} events hashing to "
            f"{seal.head_hash}: events were edited, added or removed and the chain recomputed"
        )
    return None


@dataclass(frozen=True)
class SealCheck:
    """One seal against the log: the period it closes (after the previous seal's position,
    up to its own) and what breaks it, if anything."""

    file: str
    seal: Seal
    period_from: str | None  # the previous seal's `through`; None for the first period
    first_position: int  # the period's first position (after the previous seal's)
    problem: str | None

    @property
    def holds(self) -> bool:
        return self.problem is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "holds": self.holds,
            "period": {
                "from": self.period_from,
                "through": self.seal.through,
                "first_position": self.first_position,
                "last_position": self.seal.through_position,
            },
            "count": self.seal.count,
            "head_hash": self.seal.head_hash,
            "problem": self.problem,
        }


@dataclass(frozen=True)
class SealedVerify:
    verified: VerifyResult
    checks: list[SealCheck]

    @property
    def broken(self) -> SealCheck | None:
        """The first seal that fails: the log was changed in its period (every seal before
        it holds), or, for a forged seal, the period it claims."""
        return next((check for check in self.checks if not check.holds), None)

    @property
    def ok(self) -> bool:
        return self.verified.ok and self.broken is None

    def to_dict(self) -> dict[str, Any]:
        broken = self.broken
        return {
            **self.verified.to_dict(),
            "ok": self.ok,
            "seals": [check.to_dict() for check in self.checks],
            "broken_period": None if broken is None else broken.to_dict()["period"],
        }


def verify_sealed(ledger: Ledger, seals: Path, key_path: Path) -> SealedVerify:
    """`adapters.audit.verify` and every seal in `seals` (a file or a directory) checked
    against the log, signed by the key at `key_path`."""
    key = public_key(key_path)
    named = read_seals(seals)
    verified = verify(ledger, marks={seal.through_position for _, seal in named})
    last_position = ledger.store.recorder.max_notification_id() or 0
    return SealedVerify(verified, list(_checks(named, key, verified, last_position)))


def _checks(
    named: Iterable[tuple[str, Seal]],
    key: Ed25519PublicKey,
    verified: VerifyResult,
    last_position: int,
) -> Iterable[SealCheck]:
    previous: Seal | None = None
    broken = verified.problem
    for name, seal in named:
        first = (previous.through_position if previous else 0) + 1
        problem = signature_problem(seal, key)
        if problem is None and broken is not None and broken.position <= seal.through_position:
            where = "in this period" if broken.position >= first else "before this period"
            problem = (
                f"the chain breaks at position {broken.position}, {where} "
                f"({broken.kind}: {broken.detail})"
            )
        if problem is None:
            problem = chain_problem(seal, verified.marks, last_position)
        yield SealCheck(name, seal, previous.through if previous else None, first, problem)
        previous = seal
