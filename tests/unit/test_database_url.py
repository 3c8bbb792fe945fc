"""A database URL is read as SQLAlchemy reads it (the read models and migrations are given
it), without importing SQLAlchemy on the commands that do not need it."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import make_url

from ledger.errors import Code, StorageError
from ledger.storage import DatabaseUrl, parse_database_url

URLS = [
    "sqlite:///offline-ledger.db",
    "sqlite:////tmp/a folder/ledger.db",
    "sqlite+pysqlite:///relative/x.db?timeout=5",
    "postgresql://postgres@127.0.0.1:5432/test",
    "postgresql://u%40x:p%40ss%3Aw@db.example:6543/ledger?schema=shop&sslmode=require",
    "postgresql+psycopg://[::1]:5432/d",
    "postgresql:///only_db",
    "postgresql://host/d?schema=a&schema=b",
]


@pytest.mark.parametrize("url", URLS)
def test_a_url_has_the_parts_sqlalchemy_finds(url: str) -> None:
    parsed = DatabaseUrl.parse(url)
    assert parsed is not None
    assert parsed.for_sqlalchemy() == make_url(url)
    assert parsed.redacted() == make_url(url).render_as_string(hide_password=True)


def test_the_store_is_given_the_url_sqlalchemy_would_be_given() -> None:
    config = parse_database_url(
        "postgresql://u:secret@h:5433/db?schema=shop&sslmode=require", environ={}
    )
    assert config.schema == "shop"
    assert config.sqlalchemy_url == make_url(
        "postgresql+psycopg://u:secret@h:5433/db?sslmode=require"
    )
    assert config.redacted == "postgresql://u:***@h:5433/db?schema=shop&sslmode=require"
    assert config.env["POSTGRES_PASSWORD"] == "secret" and "secret" not in config.redacted


@pytest.mark.parametrize("url", ["nothing", "mysql://h/d", "postgresql://h:port/d", "sqlite://"])
def test_what_is_not_a_ledger_url_is_refused(url: str) -> None:
    with pytest.raises(StorageError) as refused:
        parse_database_url(url, environ={})
    assert refused.value.code is Code.INVALID_DATABASE_URL
