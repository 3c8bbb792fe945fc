"""Encryption at rest with a keyring (`ledger.keyring`): the event store's cipher, and the
stream on which the ledger records its key rotations.

A ciphertext is `OLK1`, the id of the key that sealed it (8 bytes), then AES-GCM's nonce (12
bytes), tag (16 bytes) and encrypted bytes: the layout of the eventsourcing library's
AESCipher behind a header naming the key. Ciphertext written before keyrings (the library's
AESCipher, no header) is still read: each key of the ring is tried, AES-GCM's tag telling the
right one.

The keys are outside the database; which keys were retired is recorded inside it
(`CipherKeys`), so that a writer still configured with a retired key (an old deployment, a
forgotten cron job) is refused at its first write, CIPHER_KEY_RETIRED, with nothing stored:
its configuration cannot tell it, the ledger can. Reading with a retired key stays possible.
A writer that is running when a rotation is recorded learns of it at its next write (the
event store has every write check that the rotations' stream has not moved on): it re-reads
its keyring file, which the rotation rewrote, and writes with the new key; a writer whose key
is not in a file (or whose file is an old copy) is refused from then on.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import Cipher

from ledger.errors import Code, Conflict, StorageError
from ledger.identity import cipher_keys_id
from ledger.keyring import (
    KEY_ID_BYTES,
    KEYRING_ENV,
    KEYRING_FILE_SETTING,
    Keyring,
    read_keyring,
)

HEADER = b"OLK1"
_NONCE, _TAG = 12, 16
_BODY = len(HEADER) + KEY_ID_BYTES


class UnknownCipherKey(ValueError):
    """A ciphertext names a key that is not in the keyring."""

    def __init__(self, key_id: str) -> None:
        super().__init__(f"encrypted with key {key_id}, which is not in the keyring")
        self.key_id = key_id


class KeyringCipher(Cipher):
    """The eventsourcing library's cipher interface over a keyring. `CIPHER_KEY` in the store's
    environment holds the keyring's JSON (`ledger.storage.cipher_env`)."""

    def __init__(self, environment: Any) -> None:
        self._use(Keyring.from_json(environment.get("CIPHER_KEY"), "the keyring"))
        # The keyring file the ring was read from ("" when the key came alone): re-read when
        # a rotation is recorded while this process runs (`rotated`).
        self.keyring_file = str(environment.get(KEYRING_FILE_SETTING) or "")
        # Set by the event store: the key ids the ledger recorded as retired, read at the
        # process's first write (a command that only reads never pays for it), and again
        # after a rotation recorded since (`rotated`).
        self.retired_ids: Callable[[], frozenset[str]] | None = None
        self._may_write = False

    def _use(self, ring: Keyring) -> None:
        self.current_id = ring.current.id
        self._current = AESGCM(ring.current.key)
        self._header = HEADER + bytes.fromhex(self.current_id)  # once per key, not per event
        self._keys = {key.id: AESGCM(key.key) for key in ring.keys}

    def rotated(self) -> None:
        """A rotation was recorded since the last write's check: take the keyring file's
        current key (the rotation rewrote the file) and check again at the next write
        (CIPHER_KEY_RETIRED then, when the key this process has was retired)."""
        if self.keyring_file:
            self._use(read_keyring(Path(self.keyring_file)))
        self._may_write = False

    def encrypt(self, plaintext: bytes) -> bytes:
        if not self._may_write:
            self._check_not_retired()
        nonce = os.urandom(_NONCE)
        sealed = self._current.encrypt(nonce, plaintext, None)  # encrypted bytes | tag
        return b"".join((self._header, nonce, sealed[-_TAG:], sealed[:-_TAG]))

    def decrypt(self, ciphertext: bytes) -> bytes:
        if ciphertext[: len(HEADER)] == HEADER:
            named = ciphertext[len(HEADER) : _BODY].hex()
            key = self._keys.get(named)
            if key is not None:
                try:
                    return _open(key, ciphertext[_BODY:])
                except (InvalidTag, ValueError):
                    pass
            plaintext = self._any_key(ciphertext)  # a header-less one whose nonce began so
            if plaintext is None:
                raise (UnknownCipherKey(named) if key is None else _damaged())
            return plaintext
        plaintext = self._any_key(ciphertext)
        if plaintext is None:
            raise _damaged()
        return plaintext

    def _any_key(self, ciphertext: bytes) -> bytes | None:
        for key in self._keys.values():
            try:
                return _open(key, ciphertext)
            except (InvalidTag, ValueError):
                continue
        return None

    def _check_not_retired(self) -> None:
        if self.retired_ids is not None and self.current_id in self.retired_ids():
            raise StorageError(
                Code.CIPHER_KEY_RETIRED,
                f"the current cipher key ({self.current_id}) was retired by a rotation: it "
                f"still decrypts, but encrypts nothing new; set {KEYRING_ENV} to the keyring "
                "file the rotation wrote (nothing was recorded)",
                details={"key_id": self.current_id},
            )
        self._may_write = True


def _open(key: AESGCM, body: bytes) -> bytes:
    """Decrypt nonce | tag | encrypted bytes (AESCipher's layout)."""
    if len(body) < _NONCE + _TAG:
        raise ValueError("ciphertext too short")
    nonce, tag, encrypted = body[:_NONCE], body[_NONCE : _NONCE + _TAG], body[_NONCE + _TAG :]
    return key.decrypt(nonce, encrypted + tag, None)


def _damaged() -> ValueError:
    return ValueError("the ciphertext does not decrypt with any key of the keyring (damaged?)")


class CipherKeys(Aggregate):
    """The key rotations of this ledger: which key became current, which were retired, and
    why. Key ids only: the keys themselves are never in the database."""

    TOPIC = "offline_ledger:CipherKeys"

    class Event(Aggregate.Event):
        TOPIC = "offline_ledger:CipherKeys.Event"

    class Started(Event, Aggregate.Created):
        TOPIC = "offline_ledger:CipherKeys.Started"

        def apply(self, aggregate: CipherKeys) -> None:
            aggregate.current = None
            aggregate.retired = []

    class Rotated(Event):
        TOPIC = "offline_ledger:CipherKeys.Rotated"
        current: str
        retired: list[str]
        reason: str

        def apply(self, aggregate: CipherKeys) -> None:
            aggregate.current = self.current
            aggregate.retired = sorted(set(aggregate.retired) | set(self.retired))

    if TYPE_CHECKING:  # set by the events' apply()
        current: str | None
        retired: list[str]

    @classmethod
    def start(cls) -> CipherKeys:
        return cls._create(cls.Started, id=cipher_keys_id())

    def rotate(self, current: str, retired: list[str], reason: str) -> bool:
        """Record that `current` is the key new writes use and `retired` encrypt no more;
        False when that is already recorded (a repeat)."""
        if current in self.retired:
            raise Conflict(
                Code.CIPHER_KEY_RETIRED,
                f"key {current} was retired by an earlier rotation: it cannot become current "
                "again; rotate to a new key",
                field="keyring",
            )
        if current == self.current and set(retired) <= set(self.retired):
            return False
        self.trigger_event(self.Rotated, current=current, retired=sorted(retired), reason=reason)
        return True
