"""`ledger.postgres.copy_rows` formats a large batch's events and links for binary COPY in one
pass: the very bytes psycopg's row by row formatting gives for the same rows, and the links of
`chain.link`."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

import psycopg
from eventsourcing.persistence import StoredEvent
from hypothesis import given
from hypothesis import strategies as st
from psycopg import pq
from psycopg._copy_base import BinaryFormatter
from psycopg.adapt import Transformer
from psycopg.types.string import BytesBinaryDumper

from ledger.chain import link
from ledger.postgres import _LINK_TYPES, EVENT_TYPES, copy_rows

EVENTS = st.lists(
    st.builds(
        StoredEvent,
        st.uuids().map(lambda u: u if u.int % 2 else str(u)),  # ids as UUIDs or their text
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
        st.sampled_from(["ledger.payment:Payment.Created", "ledger.location:Location.Stored", "é"]),
        st.binary(max_size=300),
    ),
    max_size=12,
)


def psycopg_copy(types: Sequence[str], rows: Sequence[Sequence[object]]) -> bytes:
    """The binary COPY data psycopg's `Copy.write_row` sends for `rows` of `types`."""
    adapters = psycopg.adapters
    transformer = Transformer()
    transformer.adapters.register_dumper(bytes, BytesBinaryDumper)
    transformer.set_dumper_types([adapters.types[name].oid for name in types], pq.Format.BINARY)
    formatter = BinaryFormatter(transformer)
    return b"".join([*(bytes(formatter.write_row(row)) for row in rows), bytes(formatter.end())])


@given(head=st.binary(min_size=32, max_size=32), events=EVENTS, first=st.integers(1, 2**40))
def test_the_rows_and_links_are_psycopgs_formatting_of_the_batch(
    head: bytes, events: list[StoredEvent], first: int
) -> None:
    rows = [
        (position, UUID(str(e.originator_id)), e.originator_version, e.topic, e.state)
        for position, e in enumerate(events, start=first)
    ]
    links = link(head, rows)

    copied_rows, copied_links, last = copy_rows(head, first, events, "utf-8")

    assert copied_rows == psycopg_copy(EVENT_TYPES, rows)
    assert copied_links == psycopg_copy(_LINK_TYPES, links)
    if links:
        assert last == links[-1]


@given(head=st.binary(min_size=32, max_size=32), events=EVENTS, first=st.integers(1, 2**40))
def test_the_hashes_take_the_topic_as_utf8_whatever_the_connections_encoding(
    head: bytes, events: list[StoredEvent], first: int
) -> None:
    """A connection in another encoding gets its topics' text in that encoding, but the
    content hashes are UTF-8's, as `chain.link`, a small batch's append and the audit have
    them: hashed in the connection's encoding, a non-ASCII topic read as altered."""
    rows = [
        (position, UUID(str(e.originator_id)), e.originator_version, e.topic, e.state)
        for position, e in enumerate(events, start=first)
    ]
    links = link(head, rows)
    for encoding in ("latin-1", "iso8859-15", "ascii", "utf-8"):
        copied_rows, copied_links, last = copy_rows(head, first, events, encoding)
        assert copied_links == psycopg_copy(_LINK_TYPES, links)
        if links:
            assert last == links[-1]
        sent = "utf-8" if encoding == "ascii" else encoding  # psycopg's choice for SQL_ASCII
        for event in events:
            name = event.topic.encode(sent)
            assert len(name).to_bytes(4, "big") + name in copied_rows
