"""Input that could crash or poison the ledger: moments it could not convert later, records
too large or too deep to walk safely, NaN. Each is refused with its own code, nothing is
stored, and the records around it in a file are applied."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from eventsourcing.persistence import OperationalError
from hypothesis import given
from hypothesis import strategies as st

from adapters.cli import main
from adapters.jsonl import ingest, numbered_lines
from ledger import Code, Ledger, LedgerError, bounds, identity, wire
from ledger.bounds import DEPTH_MAX, LINE_BYTES_MAX, STRING_CHARS_MAX, VALUES_MAX
from ledger.event_store import EventStore, PreparedWrite
from ledger.moments import MomentError, check_moment, parse_moment
from tests.support import records as r


def nested(depth: int) -> Any:
    """`depth` arrays one inside the other, built without recursion."""
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


def deep_text(depth: int) -> str:
    return "[" * depth + "]" * depth


def line(record: dict[str, Any], **raw_fields: str) -> bytes:
    """The record as a JSON line, with fields given as raw JSON text (json.dumps itself
    recurses, so deep values are written as text)."""
    extra = "".join(f', "{key}": {text}' for key, text in raw_fields.items())
    return (json.dumps(record)[:-1] + extra + "}").encode()


@pytest.mark.parametrize(
    "text",
    [
        "4500",
        "1763737200",
        "1763737200.5",
        "2026-11-22T08:15:00",  # no offset
        "2026-11-22",
        "9999-12-31T23:59:59-23:59",
        "0001-01-01T00:00:00Z",
        "1999-12-31T23:59:59Z",
        "2101-01-01T00:00:00Z",
        "2100-12-31T23:30:00-01:00",  # 2101 in UTC
        "2026-02-30T00:00:00Z",
        "2026-11-22T08:15:00+24:00",
        "\uff12\uff10\uff12\uff16-11-22T08:15:00Z",  # full-width digits
        "",
    ],
)
def test_moments_outside_rfc3339_or_the_ledgers_years_are_refused(text: str) -> None:
    with pytest.raises(MomentError):
        parse_moment(text)
    record = r.location(occurred_at=text)
    with pytest.raises(LedgerError) as refused:
        wire.parse_line(json.dumps(record))
    assert (refused.value.code, refused.value.field) == (Code.INVALID_TIMESTAMP, "occurred_at")
    assert "Traceback" not in refused.value.message


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("2026-11-22T08:15:00Z", datetime(2026, 11, 22, 8, 15, tzinfo=UTC)),
        ("2026-11-22t09:15:00.5+01:00", datetime(2026, 11, 22, 8, 15, 0, 500_000, tzinfo=UTC)),
        ("2026-11-22 08:15:00.123456789-00:00", datetime(2026, 11, 22, 8, 15, 0, 123_456, UTC)),
        ("2000-01-01T00:00:00Z", datetime(2000, 1, 1, tzinfo=UTC)),
        ("2100-12-31T23:59:59Z", datetime(2100, 12, 31, 23, 59, 59, tzinfo=UTC)),
    ],
)
def test_rfc3339_moments_within_the_years_are_accepted(text: str, utc: datetime) -> None:
    assert parse_moment(text) == utc
    assert wire.parse_line(json.dumps(r.location(occurred_at=text))).occurred_at == utc


def test_a_datetime_from_a_library_caller_is_checked_the_same_way() -> None:
    assert check_moment(datetime(2026, 1, 1, tzinfo=UTC)).year == 2026
    for moment in (datetime(2026, 1, 1), datetime(1970, 1, 1, tzinfo=UTC)):
        with pytest.raises(MomentError):
            check_moment(moment)


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"[" * 2000 + b"]" * 2000, Code.NESTING_TOO_DEEP),
        (line(r.location(), idempotency_key=deep_text(1000)), Code.NESTING_TOO_DEEP),
        (line(r.location(), extra=deep_text(DEPTH_MAX)), Code.NESTING_TOO_DEEP),
        (json.dumps(r.location(extra="x" * (LINE_BYTES_MAX + 1))).encode(), Code.RECORD_TOO_LARGE),
        (
            json.dumps(r.location(extra="x" * (STRING_CHARS_MAX + 1))).encode(),
            Code.RECORD_TOO_LARGE,
        ),
        # Strings, not numbers: a long list of digits joined by commas reads as a card number.
        (json.dumps(r.location(extra=["x"] * VALUES_MAX)).encode(), Code.RECORD_TOO_LARGE),
        # A record the models accept, validated before it is measured: still measured.
        (json.dumps(r.location(currencies=["usd"] * VALUES_MAX)).encode(), Code.RECORD_TOO_LARGE),
        (b'{"type": "payment.created", "amount": NaN}', Code.MALFORMED_JSON),
        (b'{"type": "payment.created", "amount": -Infinity}', Code.MALFORMED_JSON),
    ],
)
def test_lines_too_large_or_deep_are_refused_with_their_code(raw: bytes, code: Code) -> None:
    with pytest.raises(LedgerError) as refused:
        wire.parse_line(raw)
    assert refused.value.code == code


def plain_check_line(raw: bytes) -> None:
    """`check_line` as its docstring defines it, without the shortcuts: the size, the counts
    over the whole line, and the rest decoded and measured."""
    bounds.check_size(raw)
    shallow = raw.count(b"[") + raw.count(b"{") <= DEPTH_MAX
    if shallow and len(raw) < STRING_CHARS_MAX and b"NaN" not in raw and b"Infinity" not in raw:
        return
    bounds.check_value(bounds.decode(raw))


def outcome(check: Any, raw: bytes) -> tuple[Code, str, str | None] | None:
    try:
        check(raw)
    except LedgerError as error:
        return error.code, error.message, error.field
    return None


_JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # NaN and the infinities too: json.dumps writes them as words
    | st.sampled_from(["NaN", "Infinity", "N", "I", "[{", "x" * 40]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children),
    max_leaves=12,
)
# JSON texts, their words and brackets cut, repeated and misplaced too.
_PIECES = st.sampled_from(
    ["[", "{", "]", "}", "N", "I", "NaN", "-Infinity", "Na", "nfinity", '"', ",", ":", "1", "é"]
) | st.builds(
    lambda count, byte: byte * count, st.integers(0, 2 * DEPTH_MAX), st.sampled_from("[{NI")
)


@given(
    st.lists(_JSON_VALUES.map(json.dumps) | _PIECES, max_size=12).map("".join),
    st.integers(0, DEPTH_MAX + 2),
    st.sampled_from([None, -1, 0, 1]),
)
def test_check_line_answers_as_the_plain_definition(
    text: str, depth: int, to_string_chars_max: int | None
) -> None:
    """The same refusal (code, message, field) or none, for texts around every bound: the
    brackets' count, the words, the length at which the counts no longer decide."""
    raw = ("[" * depth + text + "]" * depth).encode()
    if to_string_chars_max is not None:
        raw += b" " * max(0, STRING_CHARS_MAX + to_string_chars_max - len(raw))
    assert outcome(bounds.check_line, raw) == outcome(plain_check_line, raw)


def test_a_deep_dict_from_a_library_caller_is_refused_without_recursion(
    ledger: Ledger,
) -> None:
    with pytest.raises(LedgerError) as refused:
        ledger.record(r.location(idempotency_key=nested(5000)))
    assert refused.value.code == Code.NESTING_TOO_DEEP
    assert ledger.store.recorder.max_notification_id() in (None, 0)
    with pytest.raises(LedgerError) as nan:
        ledger.record({**r.created(), "amount": float("nan")})
    assert nan.value.code == Code.INVALID_VALUE


@pytest.mark.parametrize(
    "record",
    [
        r.created(currency="x\udfff"),  # a validated field: its error message once crashed
        r.created(metadata={"note": "\ud800"}),
        r.created(metadata={"k\udbff": "v"}),
    ],
    ids=["currency", "metadata value", "metadata key"],
)
def test_a_lone_surrogate_from_a_library_caller_is_refused_not_a_crash(
    ledger: Ledger, record: dict[str, Any]
) -> None:
    """Python's own json.loads turns "\\ud800" into one; no UTF-8 can hold it."""
    with pytest.raises(LedgerError) as refused:
        ledger.record(record)
    assert refused.value.code == Code.MALFORMED_JSON
    assert ledger.store.recorder.max_notification_id() in (None, 0)
    assert ledger.record(r.location(idempotency_key="\U0001f4b3 \u00e9")).recorded


def test_a_poisoned_line_costs_none_of_its_neighbours(ledger: Ledger, tmp_path: Path) -> None:
    """The good lines before and after a deep, a huge and a NaN line in the same batch are
    applied; the bad ones are refused with their codes and line numbers."""
    lines = [
        json.dumps(r.location("tml_1")).encode(),
        b"[" * 1000 + b"]" * 1000,
        line(r.location("tml_2"), idempotency_key=deep_text(1000)),
        b'{"type": "location.configured", "offline_enabled": NaN}',
        json.dumps(r.location("tml_3", occurred_at="9999-12-31T23:59:59-23:59")).encode(),
        json.dumps(r.location("tml_4")).encode(),
    ]
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"\n".join(lines) + b"\n")
    with source.open("rb") as stream:
        summary = ingest(ledger, numbered_lines(stream))
    assert (summary.accepted, summary.rejected_count) == (2, 4)
    assert [(x["line"], x["code"]) for x in summary.rejected] == [
        (2, "NESTING_TOO_DEEP"),
        (3, "NESTING_TOO_DEEP"),
        (4, "MALFORMED_JSON"),
        (5, "INVALID_TIMESTAMP"),
    ]
    assert [s.location_id for s in ledger.status()] == ["tml_1", "tml_4"]


def test_an_overlong_line_is_refused_without_being_held_whole(
    ledger: Ledger, tmp_path: Path
) -> None:
    source = tmp_path / "in.jsonl"
    with source.open("wb") as out:
        out.write(json.dumps(r.location("tml_1")).encode() + b"\n")
        out.write(b'{"type": "' + b"x" * (3 * LINE_BYTES_MAX) + b'"}\n')
        out.write(json.dumps(r.location("tml_2")).encode() + b"\n")
    with source.open("rb") as stream:
        lines = list(numbered_lines(stream))
        assert [len(text) <= LINE_BYTES_MAX + 1 for _, text in lines] == [True] * 3
    with source.open("rb") as stream:
        summary = ingest(ledger, numbered_lines(stream))
    assert summary.accepted == 2
    assert [(x["line"], x["code"]) for x in summary.rejected] == [(2, "RECORD_TOO_LARGE")]


def test_a_database_failure_stops_the_ingest_and_says_where(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The third batch meets a dead database: the summary names the last line of the second
    batch as the last applied, the CLI exits 2, and a re-run once the database is back
    records the rest (the first lines repeat as duplicates)."""
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(r.location(f"tml_{n}")) + "\n" for n in range(10)))
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    lost = identity.location_id("tml_6")  # the third batch's first line
    real = EventStore.write

    def failing(self: EventStore, prepared: PreparedWrite) -> None:
        if any(event.originator_id == lost for event in prepared.events):
            raise OperationalError("lost the database (test)")
        real(self, prepared)

    monkeypatch.setattr(EventStore, "write", failing)
    done = CliRunner().invoke(
        main, ["ingest", str(source), "--db", url, "--batch-size", "3", "--json"]
    )
    assert done.exit_code == 2, done.output
    summary = json.loads(done.stdout)
    assert (summary["last_applied_line"], summary["accepted"]) == (6, 6)
    assert summary["stopped"]["code"] == "DATABASE_UNAVAILABLE"
    human = CliRunner().invoke(main, ["ingest", str(source), "--db", url, "--batch-size", "3"])
    assert human.exit_code == 2 and "the last line applied is line 6" in human.stderr
    monkeypatch.setattr(EventStore, "write", real)
    again = CliRunner().invoke(main, ["ingest", str(source), "--db", url, "--json"])
    assert again.exit_code == 0, again.output
    counts = json.loads(again.stdout)
    assert (counts["accepted"], counts["duplicates"], counts["stopped"]) == (4, 6, None)


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ([b'{"a": [1]}', b'{"b": {"c": 2}}'], True),
        ([b'{"a": 1}', b"[" * 32 + b"]" * 32], True),
        ([b'{"a": 1}', b"[" * 17 + b"{" * 16], False),
        ([b'{"a": 1}', b'{"a": NaN}'], False),
        ([b'{"a": -Infinity}', b'{"a": 1}'], False),
        ([b"[" * 20, b"[" * 20], True),  # counted line by line, not over the batch
        ([b"[" * 20 + b"\n" + b"[" * 20], False),  # a newline of the line's own
        ([b'{"a": "' + b"x" * STRING_CHARS_MAX + b'"}'], False),
        ([], True),
    ],
)
def test_a_batch_is_cleared_when_each_line_would_be_by_the_quick_counts(
    lines: list[bytes], expected: bool
) -> None:
    assert bounds.cleared(lines) is expected
    joined, longest = b"\n".join(lines), max(map(len, lines), default=0)
    assert bounds.cleared(lines, joined=joined, longest=longest) is expected
