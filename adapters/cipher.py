"""Rotating the event store's encryption key (`offline-ledger cipher rotate`).

A rotation adds a new key to the keyring as the current one and retires every other key: the
retired keys stay in the ring to decrypt what they encrypted, and the ledger records the
rotation (`ledger.cipher.CipherKeys`) so that a writer still configured with a retired key is
refused. Old events keep the ciphertext they were written with: the hash chain and the seals
cover the stored bytes (which lets an auditor check them without any key), so rewriting old
ciphertext would change every link after it and void every seal. A key's cryptoperiod is
therefore the time it encrypts new events; it then stays in the keyring, decrypt-only.

The order of the steps keeps every key that encrypted anything: the keyring file is written
(atomically) before anything is encrypted with the new key, and the rotation is recorded
with it afterwards. Should recording fail, the file holds the new ring already; the next
rotation records every retired key again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ledger import Ledger
from ledger.errors import Code, InvalidRecord, LedgerError, StorageError
from ledger.keyring import (
    CIPHER_KEY_ENV,
    KEYRING_ENV,
    configured_keyring,
    new_key,
    write_keyring,
)


@dataclass(frozen=True)
class Rotation:
    keyring: Path
    current: str  # the new key's id
    retired: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "keyring": str(self.keyring),
            "current": self.current,
            "retired": self.retired,
        }


def rotate(
    url: str,
    target: Path | None,
    reason: str,
    environ: Mapping[str, str],
    *,
    now: datetime | None = None,
) -> Rotation:
    """Add a new current key to the keyring of `environ`, retire the others, write the ring
    to `target` (default: the keyring file `environ` names) and record the rotation."""
    ring = configured_keyring(environ)
    if ring is None:
        raise StorageError(
            Code.CIPHER_KEY_REQUIRED,
            f"this ledger is not encrypted: set {CIPHER_KEY_ENV} (or {KEYRING_ENV}) to the key "
            "it is written with before rotating it",
        )
    configured = environ.get(KEYRING_ENV, "").strip()
    target = target or (Path(configured) if configured else None)
    if target is None:
        raise InvalidRecord(
            Code.INVALID_VALUE,
            f"give --keyring FILE: the keyring file to write (the key in {CIPHER_KEY_ENV} and "
            "the new one); nothing was changed",
            field="keyring",
        )
    if target.exists() and not (configured and target.resolve() == Path(configured).resolve()):
        raise InvalidRecord(
            Code.INVALID_VALUE,
            f"{target} exists and is not the keyring in {KEYRING_ENV}: choose another path "
            "(a keyring file is never overwritten by another); nothing was changed",
            field="keyring",
        )
    # The keys in use must read this ledger before a new one is added.
    Ledger.open(url, create=False, environ=environ).close()
    rotated = ring.rotated(new_key(), now or datetime.now(UTC))
    try:
        write_keyring(target, rotated)
    except OSError as error:
        raise InvalidRecord(
            Code.INVALID_VALUE,
            f"cannot write the keyring file {target}: {error.strerror}; choose a path in a "
            "directory this user can write; nothing was changed",
            field="keyring",
        ) from None
    after = {k: v for k, v in environ.items() if k != CIPHER_KEY_ENV}
    try:
        with Ledger.open(url, create=False, environ={**after, KEYRING_ENV: str(target)}) as ledger:
            ledger.record_cipher_rotation(rotated.current.id, rotated.retired_ids, reason)
    except LedgerError as error:
        raise StorageError(
            error.code,
            f"{error.message}; the keyring file {target} holds the new key already: point "
            f"{KEYRING_ENV} at it (it decrypts everything) and rotate again to record it",
            details=error.details,
        ) from error
    return Rotation(target, rotated.current.id, rotated.retired_ids)
