"""Migration 0009 on a PostgreSQL ledger that already holds events: the chain head it creates
holds the last link, so the events recorded after it chain on and the log still verifies."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from adapters.audit import verify
from ledger import Ledger
from ledger.chain import CHAIN_HEAD_TABLE
from ledger.storage import parse_database_url
from migrations import upgrade
from tests.support import records as r
from tests.support.migrating import downgraded

pytestmark = pytest.mark.postgres


def test_the_head_is_the_last_link_of_a_log_written_before_it(postgres_url: str) -> None:
    with Ledger.open(postgres_url) as ledger:
        ledger.record(r.location())
        ledger.record(r.device())
        ledger.record_many(r.stored_payment())
        written = verify(ledger)
    assert written.count > 2
    with downgraded(postgres_url, "0007") as connection:
        assert CHAIN_HEAD_TABLE not in sa.inspect(connection).get_table_names()
    upgrade(parse_database_url(postgres_url))
    with Ledger.open(postgres_url) as ledger:
        assert verify(ledger).head_hash == written.head_hash
        ledger.record_many(r.stored_payment())
        grown = verify(ledger)
    assert grown.ok and grown.count > written.count
