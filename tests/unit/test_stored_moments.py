"""The projections' moments as SQLite's time columns hold them: the fast path (one UTC minute
per minute and offset) gives the text SQLAlchemy's DateTime writes for the same moment."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

from sqlalchemy import create_engine

from projections.runner import stored_moments

OFFSETS = (0, 60, -300, 330, 345, -570, 840, -720)


def test_sqlite_moments_are_sqlalchemys_text() -> None:
    engine = create_engine("sqlite://")
    with engine.connect() as conn:
        moment = stored_moments(conn)
    rnd = random.Random(20261203)
    for _ in range(20_000):
        minutes = rnd.choice([*OFFSETS, rnd.randrange(-1439, 1440)])
        at = datetime(
            rnd.choice([1000, 2026, 9998]),
            rnd.randint(1, 12),
            rnd.randint(1, 28),
            rnd.randint(0, 23),
            rnd.randint(0, 59),
            rnd.randint(0, 59),
            rnd.choice([0, rnd.randint(0, 999_999)]),
            tzinfo=timezone(timedelta(minutes=minutes)),
        )
        utc = at.astimezone(UTC)
        expected = (
            f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d} "
            f"{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}.{utc.microsecond:06d}"
        )
        assert moment(at.isoformat()) == expected
        assert moment(at.isoformat(timespec="milliseconds")) == expected[:23] + "000"
        # UTC as Stripe's observations write it.
        assert moment(utc.isoformat().replace("+00:00", "Z")) == expected


def test_postgres_moments_are_naive_utc() -> None:
    from sqlalchemy.dialects import postgresql

    class Conn:
        dialect = postgresql.dialect()

    moment = stored_moments(Conn())  # type: ignore[arg-type]
    assert moment("2026-11-22T08:03:09.100000+01:00") == datetime(2026, 11, 22, 7, 3, 9, 100_000)
    assert moment("2026-11-22T08:03:09.100000+00:00") == datetime(2026, 11, 22, 8, 3, 9, 100_000)
    assert moment("2026-11-22T00:03:09-00:30") == datetime(2026, 11, 22, 0, 33, 9)
    assert moment("2026-11-22T08:03:09Z") == datetime(2026, 11, 22, 8, 3, 9)
    assert moment("2026-11-22T08:03:09.100000Z") == datetime(2026, 11, 22, 8, 3, 9, 100_000)
