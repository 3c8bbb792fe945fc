"""The read models' lookups by a batch of ids are never prepared on PostgreSQL: a plan kept
from when a table was small (a rebuild starts from empty tables) went on scanning the grown
table once for each id of the array, and a rebuild of 50,000 payments spent two thirds of its
time there. Planned each time with the array in hand, the ids are looked up in a hash or
through the index."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from projections.runner import delete_rows, rows_among
from projections.tables import payment_intent_links

pytestmark = pytest.mark.postgres

CALLS = 12  # past psycopg's prepare threshold (5)


def test_lookups_by_ids_are_planned_each_time(postgres_url: str) -> None:
    base, schema = postgres_url.split("?schema=")
    engine = sa.create_engine(
        base.replace("postgresql://", "postgresql+psycopg://", 1),
        connect_args={"options": f"-csearch_path={schema}"},
    )
    try:
        with engine.begin() as conn:
            payment_intent_links.create(conn)
            conn.execute(
                payment_intent_links.insert(),
                [{"payment_intent_id": f"pi_{n}", "offline_id": f"o{n}"} for n in range(20)],
            )
            for n in range(CALLS):
                found = rows_among(conn, payment_intent_links, "payment_intent_id", [f"pi_{n}"])
                assert [tuple(row) for row in found] == [(f"pi_{n}", f"o{n}")]
            for n in range(CALLS):
                delete_rows(conn, payment_intent_links, "payment_intent_id", [f"pi_{n}"])
            left = conn.execute(sa.select(sa.func.count()).select_from(payment_intent_links))
            assert left.scalar_one() == 20 - CALLS
            prepared = conn.exec_driver_sql(
                "SELECT statement FROM pg_prepared_statements WHERE statement LIKE '%%= ANY%%'"
            ).all()
            assert prepared == []
    finally:
        engine.dispose()
