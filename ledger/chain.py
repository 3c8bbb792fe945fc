"""Tamper evidence: every stored event chained to the one before it by SHA-256.

Each event's row in `event_chain` holds, at the event's position in the log (its notification
id), two digests over a canonical serialization of the stored event (stream id, version,
topic and state bytes, exactly as stored, encrypted or not):
- `content_hash`: of the event alone, so a moved event can be recognised elsewhere;
- `chain_hash`: of the previous row's chain hash, the position and the content hash, so that
  editing, deleting, inserting or reordering any event breaks every later link.

Rows are written by the event store's recorders in the same transaction as the events, while
the store's own write lock is held (on PostgreSQL the row of `event_chain_head`, which also holds
the last link; SQLite's single writer), so the chain follows commit order without serializing
writers any further. PostgreSQL computes `chain_hash` in the insert statement itself
(`ledger.postgres`: `sha256(previous || int8send(position) || content)`, the same bytes).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Iterable
from uuid import UUID

GENESIS = bytes(32)
CHAIN_TABLE = "event_chain"
CHAIN_HEAD_TABLE = "event_chain_head"  # PostgreSQL: the last link, locked by every writer

Row = tuple[int, UUID, int, str, bytes]  # position, stream id, version, topic, state
Link = tuple[int, bytes, bytes]  # position, content hash, chain hash
# Before the topic's UTF-8 and the state in a content hash: the stream id's 16 bytes, the
# version, the topic's length (a reader hashing millions of events inlines `content_hash_of`).
CONTENT_HEADER = struct.Struct(">16sqI")
# After the previous link's chain hash in a chain hash: the position and the content hash.
CHAIN_TAIL = struct.Struct(">q32s")


def content_hash(
    originator_id: UUID | str, originator_version: int, topic: str, state: bytes
) -> bytes:
    stream = originator_id if isinstance(originator_id, UUID) else UUID(originator_id)
    return content_hash_of(stream.bytes, originator_version, topic.encode(), state)


def content_hash_of(stream: bytes, originator_version: int, topic: bytes, state: bytes) -> bytes:
    """`content_hash` over the raw values: the stream id's 16 bytes and the topic's UTF-8,
    for a reader that has them as bytes already (a verify of millions of events)."""
    header = CONTENT_HEADER.pack(stream, originator_version, len(topic))
    return hashlib.sha256(header + topic + state).digest()


def chain_hash(previous: bytes, position: int, content: bytes) -> bytes:
    return hashlib.sha256(previous + position.to_bytes(8, "big") + content).digest()


def link(
    previous: bytes, rows: Iterable[tuple[int, UUID | str | bytes, int, str, bytes]]
) -> list[Link]:
    """(position, content_hash, chain_hash) for events given as (position, stream id,
    version, topic, state), in position order, after the link `previous`. A stream id is a
    UUID, its text or its 16 bytes."""
    # `content_hash` and `chain_hash` inlined, each topic's part of the header packed by one
    # struct of its own (made once a batch: a batch's events share a handful of topics), and
    # the chain's position and content hash in one: the calls and concatenations per event
    # cost about as much as the hashing of a short event.
    links: list[Link] = []
    headers: dict[str, tuple[Callable[..., bytes], int, bytes]] = {}
    sha256, tail = hashlib.sha256, CHAIN_TAIL.pack
    for position, originator_id, version, topic, state in rows:
        header = headers.get(topic)
        if header is None:
            name = topic.encode()
            header = headers[topic] = (_header(len(name)).pack, len(name), name)
        pack, size, name = header
        raw = originator_id if isinstance(originator_id, bytes) else stream_bytes(originator_id)
        content = sha256(pack(raw, version, size, name) + state).digest()
        previous = sha256(previous + tail(position, content)).digest()
        links.append((position, content, previous))
    return links


def stream_bytes(originator_id: UUID | str) -> bytes:
    """A stream id's 16 bytes: `UUID.bytes`, without its property's call."""
    stream = originator_id if isinstance(originator_id, UUID) else UUID(originator_id)
    return stream.int.to_bytes(16, "big")


def _header(size: int) -> struct.Struct:
    """`CONTENT_HEADER` followed by a topic of `size` bytes."""
    return struct.Struct(f"{CONTENT_HEADER.format}{size}s")
