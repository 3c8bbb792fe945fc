"""Bad input on the wire: every refusal has a stable code and names the field, the
ledger never accepts (or echoes back) anything that looks like a card number, and a refused
record stores nothing. Each case runs through `ledger.wire.parse_line` (a JSON Lines line) and
through `Ledger.record` (a dict from a library caller).
"""

from __future__ import annotations

import json
import re
import tracemalloc
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from ledger import Code, Ledger, LedgerError, bounds, wire
from ledger.handlers import collected_card, location_config
from ledger.moments import MomentError, parse_moment
from ledger.pan import holds_pan
from tests.support import records as r

Record = dict[str, Any]
Refuse = Callable[[Record], LedgerError]

RECORD_TYPES = {
    "location.configured",
    "device.connected_online",
    "payment.created",
    "payment.payment_method_collected",
    "payment.confirmed_offline",
    "payment.forwarded",
    "payment.forward_failed",
    "payment.declined",
    "payment.captured",
    "payment.canceled",
}
OID = "0b7e7a4e-2d0e-4c4f-9d53-3b1f4a6f2c11"
PAN = "4242424242424242"  # Luhn-valid test Visa number


def event_count(ledger: Ledger) -> int:
    return ledger.store.recorder.max_notification_id() or 0


def line(record: Record) -> bytes:
    return json.dumps(record).encode()


@pytest.fixture
def ready(memory_ledger: Ledger) -> Ledger:
    """A ledger where the builders' records are valid: tml_1, tmr_1 and payment OID exist."""
    memory_ledger.record(r.location())
    memory_ledger.record(r.device())
    memory_ledger.record(r.created(OID))
    return memory_ledger


def in_a_batch(data: bytes) -> wire.Record:
    """`data` parsed by `wire.parse_lines` between two valid lines: its record, or its refusal
    raised."""
    neighbour = line(r.confirmed(OID))
    first, parsed, last = wire.parse_lines([neighbour, data, neighbour])
    assert first == last == wire.parse_line(neighbour)
    if isinstance(parsed, LedgerError):
        raise parsed
    return parsed


@pytest.fixture(params=["parse_line", "parse_lines", "Ledger.record"])
def refuse(request: pytest.FixtureRequest, ready: Ledger) -> Refuse:
    """Submit a record one way or another; it must be refused and store nothing."""

    def submit(record: Record) -> LedgerError:
        before = event_count(ready)
        with pytest.raises(LedgerError) as refused:
            if request.param == "parse_line":
                wire.parse_line(line(record))
            elif request.param == "parse_lines":
                in_a_batch(line(record))
            else:
                ready.record(record)
        assert event_count(ready) == before
        return refused.value

    return submit


@pytest.fixture(params=["parse_line", "parse_lines", "Ledger.record"])
def accept(request: pytest.FixtureRequest, ready: Ledger) -> Callable[[Record], None]:
    def submit(record: Record) -> None:
        if request.param == "parse_line":
            assert wire.parse_line(line(record)).type == record["type"]
        elif request.param == "parse_lines":
            assert in_a_batch(line(record)).type == record["type"]
        else:
            assert ready.record(record).record_type == record["type"]

    return submit


def without(record: Record, *path: str) -> Record:
    """A deep copy of `record` without the field at `path`."""
    copy = json.loads(json.dumps(record))
    node = copy
    for part in path[:-1]:
        node = node[part]
    del node[path[-1]]
    return copy


# -- not a record at all -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"{not json",
        b"",
        b"   ",
        b'{"type": "payment.created", "amount": 12',
        b"[1, 2]",
        b"42",
        b'"payment.created"',
        b"null",
        b"\xff\xfe{}",
    ],
    ids=["broken", "empty", "blank", "truncated", "array", "number", "string", "null", "not utf-8"],
)
def test_a_line_that_is_not_a_json_object_is_malformed(raw: bytes) -> None:
    with pytest.raises(LedgerError) as refused:
        wire.parse_line(raw)

    assert refused.value.code is Code.MALFORMED_JSON


def test_a_str_line_is_parsed_like_bytes() -> None:
    parsed = wire.parse_line(json.dumps(r.created(OID)))
    assert (parsed.type, str(parsed.offline_id)) == ("payment.created", OID)  # type: ignore[union-attr]


def test_an_unknown_record_type_is_refused_and_the_known_ones_are_listed(refuse: Refuse) -> None:
    error = refuse({**r.created(OID), "type": "payment.refunded"})

    assert error.code is Code.UNKNOWN_RECORD_TYPE
    assert "payment.refunded" in error.message
    assert "payment.captured" in error.message


# -- fields ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("record", "field"),
    [
        ({**r.created(OID), "tip": 100}, "tip"),
        ({**r.collected(OID), "card": {**r.card(), "pan_hash": "abc"}}, "card.pan_hash"),
        (r.location(limits={"per_payment_maximum": {"usd": 5_000}}), "limits.per_payment_maximum"),
        ({**r.forwarded(OID), "Status": "succeeded"}, "Status"),
        # The names of the two readings of a timestamp or a currency inside pydantic.
        ({**r.created(OID), "fast": 1}, "fast"),
        ({**r.created(OID), "exact": 1}, "exact"),
    ],
    ids=["top level", "in the card", "in the limits", "wrong case", "fast", "exact"],
)
def test_an_unknown_field_is_refused_with_its_path(
    refuse: Refuse, record: Record, field: str
) -> None:
    error = refuse(record)

    assert error.code is Code.UNKNOWN_FIELD
    assert error.field == field
    assert field in error.message


@pytest.mark.parametrize(
    ("record", "path"),
    [
        (r.created(OID), ("amount",)),
        (r.created(OID), ("offline_id",)),
        (r.created(OID), ("occurred_at",)),
        (r.collected(OID), ("card", "last4")),
        (r.confirmed(OID), ("stored_at",)),
        (r.forwarded(OID), ("payment_intent_id",)),
        (r.location(), ("offline_enabled",)),
        (r.created(OID), ("type",)),
    ],
    ids=lambda value: ".".join(value) if isinstance(value, tuple) else value["type"],
)
def test_a_missing_field_is_refused_with_its_name(
    refuse: Refuse, record: Record, path: tuple[str, ...]
) -> None:
    error = refuse(without(record, *path))

    assert error.code is Code.MISSING_FIELD
    assert error.field == ".".join(path)
    assert path[-1] in error.message


@pytest.mark.parametrize(
    "offline_id",
    ["not-a-uuid", "1234", "0b7e7a4e-2d0e-4c4f-9d53-3b1f4a6f2c1", "", 42],
    ids=["words", "short number", "one digit short", "empty", "a number"],
)
def test_an_offline_id_that_is_not_a_uuid_is_refused(refuse: Refuse, offline_id: Any) -> None:
    error = refuse(r.created(offline_id=None) | {"offline_id": offline_id})

    assert error.code is Code.INVALID_UUID
    assert error.field == "offline_id"


# -- amounts -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "amount",
    [0, -1, -1250, 12.5, 12.0, "1250", "12.50", True, None, 100_000_000],
    ids=[
        "zero",
        "minus one",
        "negative",
        "fractional",
        "float with zero fraction",
        "numeric string",
        "decimal string",
        "boolean",
        "null",
        "over stripe maximum",
    ],
)
def test_an_amount_must_be_a_positive_whole_number_of_minor_units(
    refuse: Refuse, amount: Any
) -> None:
    error = refuse(r.created(OID) | {"amount": amount})

    assert error.code is Code.INVALID_AMOUNT
    assert error.field == "amount"
    assert "minor units" in error.message


@pytest.mark.parametrize("amount", [0, -5, 12.5, "1250"])
def test_a_captured_amount_must_be_a_positive_whole_number(refuse: Refuse, amount: Any) -> None:
    error = refuse(r.captured(OID, amount_captured=amount))

    assert error.code is Code.INVALID_AMOUNT
    assert error.field == "amount_captured"


@pytest.mark.parametrize("amount", [0, -100, 50.5])
def test_a_limit_amount_must_be_a_positive_whole_number(refuse: Refuse, amount: Any) -> None:
    error = refuse(r.location(limits={"per_payment_max": {"usd": amount}}))

    assert error.code is Code.INVALID_AMOUNT
    assert error.field == "limits.per_payment_max.usd"


# -- currencies --------------------------------------------------------------------------------


@pytest.mark.parametrize("currency", ["xyz", "abc", "dollars", "us"])
def test_an_unknown_currency_is_refused(refuse: Refuse, currency: str) -> None:
    error = refuse(r.created(OID) | {"currency": currency})

    assert error.code is Code.UNKNOWN_CURRENCY
    assert error.field == "currency"


@pytest.mark.parametrize("currency", ["USD", "Usd", "EUR"])
def test_an_uppercase_currency_is_refused_with_a_hint(refuse: Refuse, currency: str) -> None:
    error = refuse(r.created(OID) | {"currency": currency})

    assert error.code is Code.UNKNOWN_CURRENCY
    assert error.field == "currency"
    assert "lowercase" in error.message


def test_an_uppercase_currency_in_the_limits_is_refused(refuse: Refuse) -> None:
    error = refuse(r.location(limits={"stored_amount_max": {"USD": 10_000}}))

    assert error.code is Code.UNKNOWN_CURRENCY
    assert error.field is not None and error.field.startswith("limits.stored_amount_max")


@pytest.mark.parametrize("currency", ["jpy", "kwd", "eur"])
def test_lowercase_iso_currencies_are_accepted(
    accept: Callable[[Record], None], currency: str
) -> None:
    accept(r.created(str(uuid.uuid4()), currency=currency, amount=1_000))


# -- timestamps --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "2026-11-22T08:00:00",
        "2026-11-22 08:00:00",
        "2026-11-22",
        "yesterday",
        "",
        "2026-13-01T00:00:00+00:00",
        1_795_334_400,
    ],
    ids=[
        "no offset",
        "no offset with space",
        "date only",
        "words",
        "empty",
        "month 13",
        "unix seconds",
    ],
)
def test_an_occurred_at_that_is_not_rfc3339_with_an_offset_is_refused(
    refuse: Refuse, value: Any
) -> None:
    error = refuse(r.created(OID) | {"occurred_at": value})

    assert error.code is Code.INVALID_TIMESTAMP
    assert error.field == "occurred_at"
    assert "offset" in error.message


def test_a_stored_at_without_an_offset_is_refused(refuse: Refuse) -> None:
    error = refuse(r.confirmed(OID, stored_at="2026-11-22T08:02:00"))

    assert error.code is Code.INVALID_TIMESTAMP
    assert error.field == "stored_at"


@pytest.mark.parametrize(
    "value",
    [
        "2026-11-22T08:00:00+00:00",
        "2026-11-22T08:00:00Z",
        "2026-11-22T09:00:00+01:00",
        "2026-11-22T08:00:00.123456-05:00",
    ],
)
def test_timestamps_with_an_offset_are_accepted(
    accept: Callable[[Record], None], value: str
) -> None:
    accept(r.created(str(uuid.uuid4()), occurred_at=value))


# -- card numbers ------------------------------------------------------------------------------


def assert_card_number_refused(error: LedgerError, *forms: str) -> None:
    """CARD_NUMBER_DETECTED, and the number appears nowhere in what the error says."""
    assert error.code is Code.CARD_NUMBER_DETECTED
    said = [error.message, str(error), json.dumps(error.to_dict()), repr(error), str(error.field)]
    for form in {PAN, *forms}:
        for text in said:
            assert form not in text, f"the error repeats the card number: {text!r}"


@pytest.mark.parametrize(
    ("record", "form"),
    [
        (r.created(OID, metadata={"note": PAN}), PAN),
        (r.created(OID, metadata={"note": f"card {PAN} paid"}), PAN),
        (r.created(OID, metadata={"note": "4242 4242 4242 4242"}), "4242 4242 4242 4242"),
        (r.created(OID, metadata={"note": "4242-4242-4242-4242"}), "4242-4242-4242-4242"),
        (r.created(OID, metadata={"note": "378282246310005"}), "378282246310005"),
        (r.created(OID, metadata={"note": "4222222222222"}), "4222222222222"),
        (r.created(OID, metadata={"note": "6011000990139424"}), "6011000990139424"),
        (r.created(OID, metadata={"note": int(PAN)}), PAN),
        (r.created(OID) | {"amount": int(PAN)}, PAN),
        (r.created(OID) | {"pan": PAN}, PAN),
        (r.collected(OID, last4=PAN), PAN),
        (r.forward_failed(OID, message=f"card {PAN} declined"), PAN),
    ],
    ids=[
        "metadata value",
        "inside a sentence",
        "spaced",
        "dashed",
        "amex 15 digits",
        "visa 13 digits",
        "discover",
        "a number",
        "a number in a known field",
        "an unknown field",
        "in the card",
        "in an error message",
    ],
)
def test_a_card_number_anywhere_is_refused_without_being_repeated(
    refuse: Refuse, record: Record, form: str
) -> None:
    assert_card_number_refused(refuse(record), form)


def test_a_card_number_as_a_metadata_key_is_refused_without_being_repeated(
    refuse: Refuse,
) -> None:
    error = refuse(r.created(OID, metadata={PAN: "card"}))

    assert_card_number_refused(error)


def test_a_card_number_as_the_record_type_is_refused_without_being_repeated(
    refuse: Refuse,
) -> None:
    error = refuse(r.created(OID) | {"type": PAN})

    assert_card_number_refused(error)


def test_a_card_number_in_a_record_of_unknown_type_is_refused_as_a_card_number(
    refuse: Refuse,
) -> None:
    error = refuse(r.created(OID) | {"type": "payment.refunded", "note": PAN})

    assert_card_number_refused(error)


@pytest.mark.parametrize(
    "build",
    [
        lambda: wire.PaymentCreated.model_validate(r.created(OID, metadata={"note": PAN})),
        lambda: wire.PaymentMethodCollected(
            **(r.collected(OID) | {"card": wire.Card.model_validate(r.card(brand=f"v {PAN}"))})
        ),
    ],
    ids=["in the metadata", "in the card"],
)
def test_a_model_a_library_caller_builds_holding_a_card_number_is_refused(
    build: Callable[[], wire.Record],
) -> None:
    """`Ledger.record` takes models as they are: the search is in the models themselves."""
    with pytest.raises(ValidationError) as refused:
        build()

    assert [error["type"] for error in refused.value.errors()] == ["card_number_detected"]
    assert PAN not in str(refused.value)
    assert PAN not in repr(refused.value)


def test_a_malformed_line_holding_a_card_number_is_refused_as_a_card_number() -> None:
    with pytest.raises(LedgerError) as refused:
        wire.parse_line(b'{"type": "payment.created", "note": "' + PAN.encode())

    assert_card_number_refused(refused.value)


def test_a_card_number_hidden_in_json_escapes_is_refused() -> None:
    escaped = line(r.created(OID, metadata={"note": PAN})).replace(b"42424", b"\\u00342424", 1)
    assert b"\\u0034" in escaped

    with pytest.raises(LedgerError) as refused:
        wire.parse_line(escaped)

    assert_card_number_refused(refused.value)


@pytest.mark.parametrize(
    "record",
    [
        r.created(metadata={"ref": "4242424242424241"}),
        r.created(metadata={"ref": "4242 4242 4242 4241"}),
        r.created(metadata={"ref": "424242424242"}),
        r.created(metadata={"ref": "12345678-1234-1234-1234-123456789012"}),
        r.created("12345678-1234-1234-1234-123456789012"),
        r.created(metadata={"at": "2026-11-22T08:00:00.123456+00:00"}),
        r.created(occurred_at="2026-11-22T08:00:00.424242+00:00"),
        r.created(payment_intent_id="pi_3MtwBwLkdIwHu7ix28a3tqPa"),
    ],
    ids=[
        "not luhn valid",
        "spaced, not luhn valid",
        "12 digits",
        "a uuid in metadata",
        "an all-digit offline_id",
        "a timestamp",
        "microseconds",
        "a stripe pi id",
    ],
)
def test_numbers_that_are_not_card_numbers_are_accepted(
    accept: Callable[[Record], None], record: Record
) -> None:
    accept(record)


# -- the schema --------------------------------------------------------------------------------


def test_the_json_schema_names_every_record_type() -> None:
    schema = wire.json_schema()

    json.dumps(schema)  # serializable as is
    mapping = schema["discriminator"]["mapping"]
    assert schema["discriminator"]["propertyName"] == "type"
    assert set(mapping) == RECORD_TYPES
    assert set(wire.RECORD_TYPES) == RECORD_TYPES
    for record_type, ref in mapping.items():
        definition = schema["$defs"][ref.rsplit("/", 1)[-1]]
        assert definition["properties"]["type"]["const"] == record_type
        assert {"type", "occurred_at"} <= set(definition["required"])
        assert "idempotency_key" in definition["properties"]
        assert definition["additionalProperties"] is False


_BUILT = [
    r.location(),
    r.device(),
    r.created(OID, metadata={"order": "A-17"}),
    r.collected(OID),
    r.confirmed(OID),
    r.forwarded(OID),
    r.forward_failed(OID),
    r.declined(OID),
    r.captured(OID),
    r.canceled(OID),
]


def test_every_builder_record_is_valid_wire_format() -> None:
    parsed = [wire.parse_line(line(record)) for record in _BUILT]

    assert {record.type for record in parsed} == RECORD_TYPES


# -- validated without the models' own card-number search ------------------------------------

_ODD_VALUES = st.sampled_from(
    [
        *(None, True, 0, -1, 1.5, 2**70, "1", "", "x" * 300, "usd", "USD", "us", OID, "pi_1"),
        *("2026-11-22T10:00:00Z", "2026-02-30T10:00:00Z", "2026-11-22", [], {}, {"usd": 5}),
    ]
)


@st.composite
def changed_records(draw: st.DrawFn) -> Record:
    """A builder's record with one field, at the top or one level down, dropped or changed."""
    record: Record = json.loads(json.dumps(draw(st.sampled_from(_BUILT))))
    node = record
    nested = [key for key, value in record.items() if isinstance(value, dict) and value]
    if nested and draw(st.booleans()):
        node = record[draw(st.sampled_from(nested))]
    key = draw(st.sampled_from([*node, "extra"]))
    if draw(st.booleans()):
        node.pop(key, None)
    else:
        node[key] = draw(_ODD_VALUES)
    return record


def _answer(parse: Callable[[], Any]) -> tuple[Any, ...]:
    try:
        return ("parsed", parse())
    except LedgerError as error:
        return ("refused", error.code, str(error), error.field)


def _models_answer(data: bytes | Record) -> tuple[Any, ...]:
    """What the record union's own validator says, card-number search included."""

    def parse() -> Any:
        try:
            if isinstance(data, bytes):
                return wire.RECORD_ADAPTER.validate_json(data)
            return wire.RECORD_ADAPTER.validate_python(data)
        except ValidationError as error:
            raise wire._translate(error) from None

    return _answer(parse)


@given(changed_records())
def test_a_line_is_validated_as_the_models_with_their_own_search_validate_it(
    record: Record,
) -> None:
    """`parse_line` validates without the models' card-number search (it searched the line
    whole before): the same models and the same refusals."""
    data = line(record)

    assert _answer(lambda: wire.parse_line(data)) == _models_answer(data)
    assert _answer(lambda: wire.parse_record(record)) == _models_answer(record)


# -- validated before it is measured -----------------------------------------------------------

# JSON texts that send a line to `check_line`'s decoding (brackets, the words), a text orjson
# and pydantic-core read alike or not at all, and their mixtures.
_MEASURED_TEXTS = st.sampled_from(
    [
        *('"' + "[" * 33 + '"', '"' + "{" * 17 + "[" * 16 + '"', '"NaN"', '"-Infinity"', '"N"'),
        *("NaN", "Infinity", "-Infinity", "[" * 33 + "]" * 33, "[" * 31 + "]" * 31, "[1, 2]"),
        *('"\\ud800"', '"\\udc00NaN"', '"\\ud83d\\ude00"', '"\\u0000"', '"N\\u0061N"'),
        *('"a\tb"', '"\x7f"', '"\u00e9"', "1e400", "18446744073709551616", "1.0", '"x"'),
    ]
)
_RAW_BYTES = st.sampled_from([b"", b"\xed\xa0\x80", b"\xff", b"\xc0\x80", b"\xef\xbb\xbf", b"\x00"])


@st.composite
def measured_lines(draw: st.DrawFn) -> bytes:
    """A builder's record with up to three fields' JSON texts (its idempotency key, a metadata
    value, its type) replaced by odd ones, and sometimes a raw byte in a string or before it."""
    record: Record = json.loads(json.dumps(draw(st.sampled_from(_BUILT))))
    record["idempotency_key"] = "x"
    if record["type"] == "payment.created":
        record["metadata"] = {"note": "x"}
    text = json.dumps(record, ensure_ascii=False)
    keys = [key for key in ('"note"', '"idempotency_key"', '"type"') if key in text]
    for key in draw(st.lists(st.sampled_from(keys), unique=True)):
        value: str = draw(_MEASURED_TEXTS)
        start = text.find(f"{key}: ") + len(key) + 2
        text = text[:start] + value + text[text.index('"', start + 1) + 1 :]
    data = text.encode(errors="surrogatepass")
    raw = draw(_RAW_BYTES)
    return draw(st.sampled_from([data, data.replace(b'"x"', b'"' + raw + b'"', 1), raw + data]))


# Lines holding a card number (in a key, a value, across lines, escaped, in a line that is not
# JSON) and lines holding what only looks like one, for batches.
_PLANTED = [
    line(r.created(OID, metadata={"note": PAN})),
    line(r.created(OID, metadata={PAN: "x"})),
    line(r.created(OID, metadata={"note": "4242 4242 4242 4241"})),
    line(r.created(OID, metadata={"note": "4242424242"})),
    b"4242 4242",
    b"4242 4242 4242 4242",
    b'{"type": "payment.created", "note": "' + PAN.encode(),
    line(r.created(OID, metadata={"note": PAN})).replace(b"42424", b"\\u00342424", 1),
    line(r.created(OID, metadata={"note": PAN[:8] + "\n" + PAN[8:]})),
    line(r.created(OID, metadata={"note": "x"})).replace(
        b"x", PAN[:8].encode() + b"\n" + PAN[8:].encode()
    ),
    line(r.created("12345678-1234-1234-1234-123456789012")),
    line(r.confirmed(OID)).replace(b"+", b"\\t", 1),
    line(r.location()),
]


def _measured_first(data: bytes) -> Any:
    """`parse_line` as its checks are ordered: size and card numbers, the measure, validation."""
    if len(data) > bounds.LINE_BYTES_MAX or holds_pan(data):
        wire._refuse_unsearched(data)
    bounds.check_line(data)
    try:
        return wire._record_validator().validate_json(data)
    except ValidationError as error:
        raise wire._translate(error) from None


@given(measured_lines())
def test_a_line_is_answered_as_if_measured_before_it_is_validated(data: bytes) -> None:
    """`parse_line` validates first and measures after: the answer is the one the measure
    first would give."""
    assert _answer(lambda: wire.parse_line(data)) == _answer(lambda: _measured_first(data))


@given(st.lists(measured_lines() | st.sampled_from(_PLANTED), max_size=8))
def test_a_batch_of_lines_is_answered_line_by_line(lines: list[bytes]) -> None:
    """`parse_lines` scans and measures a batch at once: each line gets what `parse_line`
    gives it, whatever its neighbours."""
    answers = [_answer(lambda data=data: wire.parse_line(data)) for data in lines]

    assert [_batch_answer(parsed) for parsed in wire.parse_lines(lines)] == answers


def _batch_answer(parsed: Any) -> tuple[Any, ...]:
    def parse() -> Any:
        if isinstance(parsed, LedgerError):
            raise parsed
        return parsed

    return _answer(parse)


_CANCELED = (
    '{"type":"payment.canceled","offline_id":"0b7e5a3c-1d2e-4f5a-8b9c-0d1e2f3a4b5c",'
    '"occurred_at":"2026-11-22T08:02:39.451+01:00",'
)


@pytest.mark.parametrize(
    "line",
    [
        _CANCELED + '"reason":NaN,"reason":"duplicate"}',
        _CANCELED + '"reason":Infinity,"reason":"duplicate"}',
        _CANCELED + '"reason":-Infinity,"reason":"duplicate"}',
        _CANCELED + '"reason":-1e400,"reason":"duplicate","idempotency_key":"NaN"}',
    ],
)
def test_a_value_valid_only_to_pydantic_behind_a_repeated_key_is_malformed_json(
    line: str,
) -> None:
    """pydantic-core reads `NaN`, `Infinity` and `1e400`, and keeps a repeated key's last
    value: the models accept such a line, the measure refuses it as orjson does."""
    with pytest.raises(LedgerError) as refused:
        wire.parse_line(line.encode())
    assert refused.value.code is Code.MALFORMED_JSON
    assert _answer(lambda: wire.parse_line(line.encode())) == _answer(
        lambda: _measured_first(line.encode())
    )


# -- timestamps read by pydantic-core ------------------------------------------------------------

TIMESTAMP = TypeAdapter(wire.Timestamp)


@st.composite
def moment_texts(draw: st.DrawFn) -> str:
    """RFC 3339-shaped texts, each part sometimes just out of its range."""
    number = lambda low, high, width: f"{draw(st.integers(low, high)):0{width}d}"  # noqa: E731
    date = f"{number(1990, 2110, 4)}-{number(0, 13, 2)}-{number(0, 32, 2)}"
    time = f"{number(0, 24, 2)}:{number(0, 60, 2)}:{number(0, 61, 2)}"
    digits = draw(st.integers(0, 10))
    fraction = f".{number(0, 10**digits - 1, digits)}" if digits else ""
    offset = draw(
        st.sampled_from(["Z", "z", ""])
        | st.builds(
            lambda sign, h, m: f"{sign}{h:02d}:{m:02d}",
            st.sampled_from("+-"),
            st.integers(0, 25),
            st.integers(0, 60),
        )
    )
    return date + draw(st.sampled_from("Tt _")) + time + fraction + offset


@given(text=moment_texts())
def test_a_timestamp_reads_as_ledger_moments_reads_it(text: str) -> None:
    """pydantic-core's reading of the plain cases and `ledger.moments` agree on every text:
    the same instant, offset and JSON, or the same refusal."""
    try:
        expected = parse_moment(text)
    except MomentError as error:
        assert not re.match(wire._PLAIN_RFC3339, text)  # else read without `ledger.moments`
        assume(not holds_pan(text))  # a date's digits can pass for a card number
        with pytest.raises(LedgerError) as caught:
            wire.parse_line(line(r.created(OID) | {"occurred_at": text}))
        assert (caught.value.code, caught.value.field) == (Code.INVALID_TIMESTAMP, "occurred_at")
        digits = re.compile(r"[0-9*]")  # runs of digits in a message are masked with *
        assert digits.sub("#", str(error)) in digits.sub("#", caught.value.message)
        return
    read = TIMESTAMP.validate_json(json.dumps(text))
    assert (read, read.utcoffset(), read.isoformat()) == (
        expected,
        expected.utcoffset(),
        expected.isoformat(),
    )
    assert TIMESTAMP.dump_json(read) == TIMESTAMP.dump_json(expected)
    # A standard library zone, as a stored moment read back has: comparing two moments asks
    # their zones for offsets, which pydantic's own zone answered through a call into Rust.
    assert type(read.tzinfo) is timezone
    if re.match(wire._PLAIN_RFC3339, text):  # read by `fromisoformat` alone, which cannot fail
        assert datetime.fromisoformat(text).isoformat() == expected.isoformat()


@pytest.mark.parametrize(
    "overrides",
    [{}, {"network": None, "country": None}, {"payment_method_id": "pm_1", "customer_id": "cus_1"}],
)
def test_a_collected_card_is_recorded_as_the_wire_dumps_it(overrides: dict[str, Any]) -> None:
    """The event's card keeps the wire's keys, values and order: stored bytes, and a repeat's
    equality with a recorded card, depend on all three."""
    card = wire.Card.model_validate(r.card(**overrides))
    recorded = collected_card(card)
    assert json.dumps(recorded) == json.dumps(card.model_dump(mode="json"))


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"currencies": ["usd"], "sca_required": True},
        {"limits": {}, "device_limits": {"stored_count_max": 3}},
    ],
)
def test_a_location_configuration_is_recorded_as_the_wire_dumps_it(
    overrides: dict[str, Any],
) -> None:
    """As for cards: the event's configuration keeps the wire's keys, values and order."""
    record = wire.LocationConfigured.model_validate(r.location(**overrides))
    dumped = record.model_dump(
        mode="json",
        include={"offline_enabled", "sca_required", "currencies", "limits", "device_limits"},
    )
    assert json.dumps(location_config(record)) == json.dumps(dumped)


def _long_line(note: str, size: int) -> bytes:
    """A `payment.created` line of `size` bytes, `note` in the middle of its metadata."""
    data = line(r.created(OID, metadata={"a": "", "note": note, "z": ""}))
    half = (size - len(data)) // 2
    return data.replace(b'"a": ""', b'"a": "' + b"x" * half + b'"', 1).replace(
        b'"z": ""', b'"z": "' + b"y" * (size - len(data) - half) + b'"', 1
    )


@pytest.mark.parametrize(
    "size", [bounds.STRING_CHARS_MAX - 200, bounds.STRING_CHARS_MAX + 200, bounds.LINE_BYTES_MAX]
)
def test_long_lines_in_a_batch_are_answered_line_by_line(size: int) -> None:
    """A line as long as a string may be goes through `parse_line` alone, outside the batch's
    joined text: the same answers, a card number deep inside one found."""
    lines = [
        line(r.confirmed(OID)),
        _long_line("x", size),
        _long_line(PAN, size),
        _long_line("4242 4242", size),
        line(r.created(OID, metadata={"note": PAN})),
    ]
    answers = [_answer(lambda data=data: wire.parse_line(data)) for data in lines]

    assert [_batch_answer(parsed) for parsed in wire.parse_lines(lines)] == answers
    assert _batch_answer(wire.parse_lines(lines)[2])[1] == Code.CARD_NUMBER_DETECTED


def _peak(parse: Callable[[], object]) -> int:
    """The most memory `parse` held at once, in bytes."""
    tracemalloc.start()
    try:
        parse()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_batch_of_long_lines_is_not_copied_whole() -> None:
    """Lines near LINE_BYTES_MAX are parsed one at a time: a batch of them holds no more
    memory at its peak than parsing them line by line, within a line's size (joined, they
    were copied whole twice over: 67 MB against 45 for 32 MB of lines)."""
    text = b"ab 12 " * (bounds.LINE_BYTES_MAX // 6)
    lines = [text[: bounds.LINE_BYTES_MAX - 64 - n] for n in range(32)]

    def line_by_line() -> list[Any]:
        """Each line's record or refusal, kept as `parse_lines` keeps them."""
        parsed: list[Any] = []
        for data in lines:
            try:
                parsed.append(wire.parse_line(data))
            except LedgerError as refused:
                parsed.append(refused)
        return parsed

    assert _peak(lambda: wire.parse_lines(lines)) < _peak(line_by_line) + bounds.LINE_BYTES_MAX
