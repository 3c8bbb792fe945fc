"""`chain.link` (its hashes inlined, each topic encoded once) links as its definitions do."""

from __future__ import annotations

from uuid import UUID

from hypothesis import given
from hypothesis import strategies as st

from ledger.chain import chain_hash, content_hash, link

ROWS = st.lists(
    st.tuples(
        st.uuids().map(lambda u: u if u.int % 2 else str(u)),  # ids as UUIDs or their text
        st.integers(min_value=0, max_value=2**62),
        st.sampled_from(["ledger.payment:Payment.Created", "ledger.location:Location.Stored", "é"]),
        st.binary(max_size=64),
    ),
    max_size=12,
)


@given(previous=st.binary(min_size=32, max_size=32), rows=ROWS, start=st.integers(1, 2**40))
def test_link_hashes_as_content_hash_then_chain_hash(
    previous: bytes, rows: list[tuple[UUID | str, int, str, bytes]], start: int
) -> None:
    positioned = [(start + i, *row) for i, row in enumerate(rows)]
    expected = []
    head = previous
    for position, stream, version, topic, state in positioned:
        content = content_hash(stream, version, topic, state)
        head = chain_hash(head, position, content)
        expected.append((position, content, head))
    assert link(previous, positioned) == expected
