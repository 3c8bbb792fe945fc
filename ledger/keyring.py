"""The encryption keys of the event store: a keyring whose keys rotate.

One key encrypting every event for ever has no cryptoperiod: PCI DSS asks for keys that are
used for a bounded time and then retired. A keyring holds every key the log was ever encrypted
with: exactly one is current (new events and snapshots are encrypted with it), the others are
retired (kept to decrypt what they encrypted, never used for a new write). Each ciphertext
names its key (`ledger.cipher`), so reading a log that spans several keys needs no guessing.

Keys live outside the database, in a keyring file (`OFFLINE_LEDGER_CIPHER_KEYRING`, written
only by `offline-ledger cipher rotate`) or, for a ledger that never rotated, the single key in
`OFFLINE_LEDGER_CIPHER_KEY`. A key's id is a fingerprint (the first 8 bytes of a SHA-256 of
the key, in hex): it can be shown, logged and recorded in the ledger without revealing the key.
This module only reads and writes keyrings; nothing here encrypts.
"""

from __future__ import annotations

import binascii
import hashlib
import json
import os
from base64 import b64decode, b64encode
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import TypedDict

from ledger.errors import Code, StorageError

CIPHER_KEY_ENV = "OFFLINE_LEDGER_CIPHER_KEY"
KEYRING_ENV = "OFFLINE_LEDGER_CIPHER_KEYRING"
KEYRING_FORMAT = "offline-ledger-keyring/1"
KEYRING_FILE_SETTING = "CIPHER_KEYRING_FILE"  # the event store's setting naming the file
KEY_SIZES = (16, 24, 32)
KEY_ID_BYTES = 8
KEY_HOW_TO = (
    'python -c "from eventsourcing.cipher import AESCipher; print(AESCipher.create_key(32))"'
)
_ID_DOMAIN = b"offline-ledger cipher key id\x00"


def key_id(key: bytes) -> str:
    """A key's public name: 16 hex digits of a SHA-256 of it (never the key)."""
    return hashlib.sha256(_ID_DOMAIN + key).digest()[:KEY_ID_BYTES].hex()


class KeyEntry(TypedDict):
    """A key as the keyring file holds it: its id, the key in base64, its moments."""

    id: str
    key: str
    added_at: str | None
    retired_at: str | None


@dataclass(frozen=True)
class CipherKey:
    """One AES key of the ring and when it was added and retired (UTC ISO 8601 text)."""

    key: bytes = field(repr=False)
    added_at: str | None = None  # None: the single key of OFFLINE_LEDGER_CIPHER_KEY
    retired_at: str | None = None

    @property
    def id(self) -> str:
        return key_id(self.key)

    def to_dict(self) -> KeyEntry:
        return {
            "id": self.id,
            "key": b64encode(self.key).decode(),
            "added_at": self.added_at,
            "retired_at": self.retired_at,
        }


@dataclass(frozen=True)
class Keyring:
    """Every key the log may hold ciphertext of, oldest first; exactly one is not retired."""

    keys: tuple[CipherKey, ...]

    @property
    def current(self) -> CipherKey:
        (current,) = (key for key in self.keys if key.retired_at is None)
        return current

    @property
    def retired_ids(self) -> list[str]:
        return [key.id for key in self.keys if key.retired_at is not None]

    def rotated(self, new: bytes, at: datetime) -> Keyring:
        """This ring with `new` as its current key and every other key retired at `at`."""
        moment = _text(at)
        if key_id(new) in {key.id for key in self.keys}:
            raise _invalid("the new key is already in the keyring")
        kept = tuple(
            key if key.retired_at is not None else replace(key, retired_at=moment)
            for key in self.keys
        )
        return Keyring((*kept, CipherKey(new, added_at=moment)))

    def to_json(self) -> str:
        """The keyring file's text (and what the event store's cipher is given)."""
        return json.dumps(
            {"format": KEYRING_FORMAT, "keys": [key.to_dict() for key in self.keys]}, indent=2
        )

    @classmethod
    def from_json(cls, text: str, where: str) -> Keyring:
        """The keyring in `text`; INVALID_CIPHER_KEYRING naming `where` and what is wrong
        (never a key) when it is not one."""
        try:
            value = json.loads(text)
        except ValueError:
            raise _invalid(f"{where} is not JSON") from None
        if not isinstance(value, dict) or value.get("format") != KEYRING_FORMAT:
            raise _invalid(f"{where} is not a keyring (format {KEYRING_FORMAT!r})")
        entries = value.get("keys")
        if not isinstance(entries, list) or not entries:
            raise _invalid(f"{where}: keys must be a non-empty list")
        keys = tuple(_key(entry, f"{where}: key {index}") for index, entry in enumerate(entries))
        if sum(key.retired_at is None for key in keys) != 1:
            raise _invalid(f"{where}: exactly one key must be current (retired_at null)")
        if len({key.id for key in keys}) != len(keys):
            raise _invalid(f"{where}: a key is listed twice")
        return cls(keys)


def single_key(text: str) -> Keyring:
    """The ring of the one key in OFFLINE_LEDGER_CIPHER_KEY (base64 of 16, 24 or 32 bytes)."""
    key = _decoded(text, CIPHER_KEY_ENV, Code.INVALID_CIPHER_KEY, f"make one with: {KEY_HOW_TO}")
    return Keyring((CipherKey(key),))


def configured_keyring(environ: Mapping[str, str]) -> Keyring | None:
    """The keyring the environment names (a file, or the single key), or None: no encryption.
    Both at once is refused: which one holds the current key would be a guess."""
    path = environ.get(KEYRING_ENV, "").strip()
    key = environ.get(CIPHER_KEY_ENV, "").strip()
    if path and key:
        raise _invalid(
            f"both {KEYRING_ENV} and {CIPHER_KEY_ENV} are set: after a rotation the keyring "
            f"file holds every key, so unset {CIPHER_KEY_ENV}"
        )
    if path:
        return read_keyring(Path(path))
    return single_key(key) if key else None


def read_keyring(path: Path) -> Keyring:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or "not UTF-8 text"
        raise _invalid(f"cannot read the keyring file {path}: {reason}") from None
    return Keyring.from_json(text, f"the keyring file {path}")


def write_keyring(path: Path, ring: Keyring) -> None:
    """Replace `path` with `ring` atomically, readable by its owner only: a crash leaves the
    old file or the new one, never half of one (losing the file would lose the log)."""
    scratch = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            out.write(ring.to_json() + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(scratch, path)
    except BaseException:
        scratch.unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def new_key() -> bytes:
    return os.urandom(32)


def _key(entry: object, where: str) -> CipherKey:
    if not isinstance(entry, dict) or set(entry) != {"id", "key", "added_at", "retired_at"}:
        raise _invalid(f"{where} must have exactly id, key, added_at and retired_at")
    for name in ("added_at", "retired_at"):
        moment = entry[name]
        if moment is not None and not (isinstance(moment, str) and _is_moment(moment)):
            raise _invalid(f"{where}: {name} must be null or an ISO 8601 moment")
    if not isinstance(entry["key"], str):
        raise _invalid(f"{where}: key must be base64 text")
    key = CipherKey(
        _decoded(entry["key"], where, Code.INVALID_CIPHER_KEYRING, "fix the file or restore it"),
        entry["added_at"],
        entry["retired_at"],
    )
    if entry["id"] != key.id:
        raise _invalid(f"{where}: id {entry['id']!r} is not the key's id (the key was changed?)")
    return key


def _decoded(text: str, where: str, code: Code, fix: str) -> bytes:
    try:
        key = b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        problem = "is not base64"
    else:
        if len(key) in KEY_SIZES:
            return key
        problem = f"decodes to {len(key)} bytes"
    # The key itself is never shown: only what is wrong with it.
    raise StorageError(
        code,
        f"{where} {problem}: it must be the base64 text of a 16, 24 or 32-byte AES key; {fix}",
    )


def _is_moment(text: str) -> bool:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def _text(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _invalid(message: str) -> StorageError:
    return StorageError(Code.INVALID_CIPHER_KEYRING, message)
