"""The wire format: one JSON object per record, JSON Lines for files.

These pydantic models are the public contract for POS backends. `parse_line` and
`parse_record` turn raw input into a model or a typed `InvalidRecord` error that names the
field; unknown fields are refused, amounts are strict positive integers in minor units,
currencies lowercase ISO 4217, timestamps RFC 3339 with an offset.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from functools import cache
from typing import Annotated, Any, Literal, NoReturn, TypeVar, cast
from uuid import UUID

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    StrictBool,
    StrictInt,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError, SchemaValidator, core_schema

from ledger.bounds import (
    LINE_BYTES_MAX,
    STRING_CHARS_MAX,
    check_line,
    check_size,
    check_value,
    cleared,
)
from ledger.errors import Code, InvalidRecord, LedgerError
from ledger.moments import (
    FORMAT_HINT,
    MomentError,
    check_moment,
    parse_moment,
)
from ledger.money import ISO_4217_CODES, is_currency
from ledger.pan import find_pan, holds_pan, quoted, suspects

# Stripe's largest amount is 99,999,999 minor units (docs.stripe.com/currencies, "Minimum and
# maximum charge amounts").
AMOUNT_MAX_MINOR = 99_999_999


def _check_currency(value: str) -> str:
    if not is_currency(value):
        hint = " (currencies are lowercase)" if is_currency(value.lower()) else ""
        raise PydanticCustomError(
            "unknown_currency",
            "'{value}' is not an ISO 4217 currency code{hint}",
            {"value": value, "hint": hint},
        )
    return value


_FAST = "fast"
_EXACT = "exact"


class _FastOrExact:
    """A value read inside pydantic-core (the `fast` schema) and, only when that fails, by
    Python (`exact`), which words the refusal; `_translate` shows the exact reading's error.
    The Python call per timestamp was about half of a record's validation time. `shown` is the
    value's JSON schema."""

    def __init__(
        self, fast: core_schema.CoreSchema, exact: core_schema.CoreSchema, shown: dict[str, str]
    ) -> None:
        self.fast, self.exact, self.shown = fast, exact, shown

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> Any:
        return core_schema.union_schema(
            [(self.fast, _FAST), (self.exact, _EXACT)], mode="left_to_right"
        )

    def __get_pydantic_json_schema__(
        self, schema: Any, handler: GetJsonSchemaHandler
    ) -> dict[str, Any]:
        return dict(self.shown)


# A lookup in the ISO 4217 codes; `_check_currency` only for a code that is not there. No
# length constraint: "us" or "dollars" are unknown currencies, not strings of a bad length.
Currency = Annotated[
    str,
    _FastOrExact(
        core_schema.literal_schema(sorted(ISO_4217_CODES)),
        core_schema.no_info_after_validator_function(_check_currency, core_schema.str_schema()),
        {"type": "string", "pattern": "^[a-z]{3}$"},
    ),
]
AmountMinor = Annotated[StrictInt, Field(gt=0, le=AMOUNT_MAX_MINOR)]
# A location's or a reader's name: also what the HTTP API takes in its paths and queries.
IDENTIFIER_PATTERN = r"^[A-Za-z0-9_.:\-]+$"
IDENTIFIER_MAX = 255
Identifier = Annotated[
    str, Field(min_length=1, max_length=IDENTIFIER_MAX, pattern=IDENTIFIER_PATTERN)
]
PaymentIntentId = Annotated[str, Field(pattern=r"^pi_[A-Za-z0-9_]+$", max_length=255)]


def _strict_moment(value: Any) -> Any:
    """RFC 3339 text with an offset, in the ledger's years (`ledger.moments`): pydantic alone
    would read 1795334400 or "4500" as Unix seconds and accept the year 9999."""
    try:
        if isinstance(value, str):
            return parse_moment(value)
        if isinstance(value, datetime):
            return check_moment(value)
    except MomentError as error:
        raise PydanticCustomError("datetime_parsing", str(error)) from None
    raise PydanticCustomError("datetime_type", "Input should be an RFC 3339 string")


# The RFC 3339 texts read by `datetime.fromisoformat` alone, called by pydantic-core (C, no
# Python frame): every field in its range, the day in its month (February the 29th in leap
# years), at most microseconds, the years 2001-2099 (within the ledger's years whatever the
# offset: no bound to check) and `Z` in capitals (which `fromisoformat` reads, not `z`). On such
# a text `fromisoformat` cannot fail and reads what `ledger.moments.parse_moment` reads: the
# same instant and offset. Anything else (the years 2000 and 2100, `z`, a longer fraction, a
# leap second, 2026-02-30, a bad text) is judged by `_strict_moment`, which gives the precise
# refusal or the same moment.
#
# `fromisoformat` gives a moment a standard library zone (`datetime.timezone`, the one UTC
# object for `Z` and `+00:00`), as a stored moment read back has. pydantic-core's reading gave
# each moment a zone of its own type (`TzInfo`), which every later comparison of two moments
# asked for its offset through a call into Rust (about 2,000 instructions a zone): deciding
# compares a record's moments several times. (A zone object shared per offset would make those
# comparisons cheaper still, but sharing it costs a call into Python per moment, more than the
# comparisons it spares.)
_MONTH_DAY = (
    "(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])"
    "|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
    "|02-(?:0[1-9]|1[0-9]|2[0-8]))"
)
_DATE = f"(?:20(?:0[1-9]|[1-9][0-9])-{_MONTH_DAY}|20(?:0[48]|[2468][048]|[13579][26])-02-29)"
_PLAIN_RFC3339 = (
    rf"^{_DATE}[Tt ](?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    r"(?:\.[0-9]{1,6})?(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])$"
)


# The plain texts read without Python; `_strict_moment` for the rest.
Timestamp = Annotated[
    datetime,
    _FastOrExact(
        core_schema.chain_schema(
            [
                core_schema.str_schema(pattern=_PLAIN_RFC3339, strict=True),
                core_schema.no_info_plain_validator_function(datetime.fromisoformat),
            ]
        ),
        core_schema.no_info_plain_validator_function(_strict_moment),
        {"type": "string", "format": "date-time"},
    ),
]
TOTAL_MAX_MINOR = 10**15  # a total of minor units a record or an allowance may give
TotalMinor = Annotated[StrictInt, Field(gt=0, le=TOTAL_MAX_MINOR)]
AmountsByCurrency = dict[Currency, AmountMinor]
TotalsByCurrency = dict[Currency, TotalMinor]
CountLimit = Annotated[StrictInt, Field(gt=0, le=1_000_000)]
M = TypeVar("M", bound=BaseModel)

ReadMethod = Literal[
    "contact_emv",
    "contactless_emv",
    "contactless_magstripe_mode",
    "magnetic_stripe_track2",
    "magnetic_stripe_fallback",
]
CardholderVerification = Literal[
    "offline_pin", "online_pin", "signature", "consumer_device", "none", "unknown"
]


# Every wire model forbids unknown fields and is immutable. Its validator is built when it first
# validates (defer_build), not at import: a command that parses no records (`status`, `--help`)
# does not pay for building them. A ValidationError's text leaves the input out: a model a
# library caller builds holding a card number is refused, and its error is logged or shown.
_MODEL_CONFIG = ConfigDict(extra="forbid", frozen=True, defer_build=True, hide_input_in_errors=True)


class _Record(BaseModel):
    model_config = _MODEL_CONFIG

    occurred_at: Timestamp
    idempotency_key: Annotated[str, Field(min_length=1, max_length=255)] | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_card_number(cls, data: Any) -> Any:
        """Refuse a model built directly (by a library caller) that holds a full PAN anywhere;
        `parse_line` and `parse_record` search the whole input before validation instead, and
        validate without this (`_record_validator`). It stays in the models: `Ledger.record`
        takes models as they are, those `parse_line` made as well as a caller's, and a custom
        `__init__` would be called per validated record."""
        where = find_pan(data)
        if where is not None:
            raise PydanticCustomError("card_number_detected", _CARD_NUMBER_MESSAGE, {"path": where})
        return data


class LocationLimits(BaseModel):
    model_config = _MODEL_CONFIG

    per_payment_max: AmountsByCurrency = {}
    stored_amount_max: TotalsByCurrency = {}
    stored_count_max: CountLimit | None = None


class DeviceLimits(BaseModel):
    model_config = _MODEL_CONFIG

    stored_amount_max: TotalsByCurrency = {}
    stored_count_max: CountLimit | None = None


class LocationConfigured(_Record):
    type: Literal["location.configured"]
    location_id: Identifier
    offline_enabled: StrictBool
    sca_required: StrictBool = False
    currencies: list[Currency] | None = Field(
        default=None,
        description="Currencies allowed offline; default: those named in `limits`.",
    )
    limits: LocationLimits = LocationLimits()
    device_limits: DeviceLimits = DeviceLimits()


class DeviceConnectedOnline(_Record):
    type: Literal["device.connected_online"]
    device_id: Identifier
    location_id: Identifier
    reader_type: Annotated[str, Field(max_length=100)] | None = None
    software_updated_at: Timestamp | None = None


class PaymentCreated(_Record):
    type: Literal["payment.created"]
    offline_id: UUID
    device_id: Identifier
    location_id: Identifier
    amount: AmountMinor
    currency: Currency
    capture_method: Literal["automatic", "manual"] = "automatic"
    offline_behavior: Literal["prefer_online", "require_online", "force_offline"] = "prefer_online"
    payment_intent_id: PaymentIntentId | None = None
    # Stripe metadata: at most 50 keys, keys up to 40 characters, values up to 500.
    metadata: Annotated[
        dict[Annotated[str, Field(max_length=40)], Annotated[str, Field(max_length=500)]],
        Field(max_length=50),
    ] = {}


class Card(BaseModel):
    model_config = _MODEL_CONFIG

    brand: Annotated[str, Field(min_length=1, max_length=40)]
    network: Annotated[str, Field(min_length=1, max_length=40)] | None = None
    last4: Annotated[str, Field(pattern=r"^[0-9]{4}$")]
    exp_month: Annotated[StrictInt, Field(ge=1, le=12)]
    exp_year: Annotated[StrictInt, Field(ge=2000, le=2100)]
    funding: Literal["credit", "debit", "prepaid", "unknown"] = "unknown"
    read_method: ReadMethod
    cardholder_verification: CardholderVerification = "unknown"
    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$")] | None = None
    # A reusable PaymentMethod the POS holds, for forwarding through the API
    # (`offline-ledger forward`); the SDK forwards payments that have none.
    payment_method_id: (
        Annotated[str, Field(pattern=r"^pm_[A-Za-z0-9_]+$", max_length=255)] | None
    ) = None
    # The Customer that saved PaymentMethod belongs to: Stripe refuses a saved card's
    # PaymentMethod without it.
    customer_id: Annotated[str, Field(pattern=r"^cus_[A-Za-z0-9_]+$", max_length=255)] | None = None


class PaymentMethodCollected(_Record):
    type: Literal["payment.payment_method_collected"]
    offline_id: UUID
    card: Card


class PaymentConfirmedOffline(_Record):
    type: Literal["payment.confirmed_offline"]
    offline_id: UUID
    stored_at: Timestamp


class PaymentForwarded(_Record):
    type: Literal["payment.forwarded"]
    offline_id: UUID
    payment_intent_id: PaymentIntentId
    status: Literal["requires_capture", "succeeded", "processing"]


class PaymentForwardFailed(_Record):
    type: Literal["payment.forward_failed"]
    offline_id: UUID
    error_code: Annotated[str, Field(min_length=1, max_length=100)]
    message: Annotated[str, Field(max_length=1000)] = ""
    retryable: StrictBool


class PaymentDeclined(_Record):
    type: Literal["payment.declined"]
    offline_id: UUID
    payment_intent_id: PaymentIntentId | None = None
    decline_code: Annotated[str, Field(min_length=1, max_length=100)]


class PaymentCaptured(_Record):
    type: Literal["payment.captured"]
    offline_id: UUID
    payment_intent_id: PaymentIntentId
    amount_captured: AmountMinor


class PaymentCanceled(_Record):
    type: Literal["payment.canceled"]
    offline_id: UUID
    reason: Literal[
        "requested_by_customer", "duplicate", "fraudulent", "abandoned", "automatic", "voided"
    ] = "requested_by_customer"


PaymentRecord = (
    PaymentCreated
    | PaymentMethodCollected
    | PaymentConfirmedOffline
    | PaymentForwarded
    | PaymentForwardFailed
    | PaymentDeclined
    | PaymentCaptured
    | PaymentCanceled
)
Record = Annotated[
    LocationConfigured | DeviceConnectedOnline | PaymentRecord, Field(discriminator="type")
]
RECORD_ADAPTER: TypeAdapter[Record] = TypeAdapter(
    Record, config=ConfigDict(defer_build=True, hide_input_in_errors=True)
)
# Every record's model, in the order of the record types.
_MODELS: tuple[type[BaseModel], ...] = (
    LocationConfigured,
    DeviceConnectedOnline,
    PaymentCreated,
    PaymentMethodCollected,
    PaymentConfirmedOffline,
    PaymentForwarded,
    PaymentForwardFailed,
    PaymentDeclined,
    PaymentCaptured,
    PaymentCanceled,
)
# By their exact classes: what `parse_record` passes through unchanged, told by one lookup
# where `isinstance` of a pydantic model asks its ABC metaclass.
RECORD_MODELS: frozenset[type[BaseModel]] = frozenset(_MODELS)
RECORD_TYPES: tuple[str, ...] = tuple(
    model.model_fields["type"].annotation.__args__[0]  # type: ignore[union-attr]
    for model in _MODELS
)


# The models' card-number search, as their validator schemas name it.
_NO_CARD_NUMBER = vars(_Record)["_no_card_number"].__func__


@cache
def _record_validator() -> SchemaValidator:
    """`RECORD_ADAPTER`'s validator without the models' card-number search, for input already
    searched whole (`parse_line`, `parse_record`): the same classes, fields and errors.

    The search is a call into Python per record even when it has nothing to do, and for JSON
    it made pydantic-core hand the record over as Python objects, then validate those instead
    of its own reading of the JSON: a line validates in about half the time without it. Built
    from the adapter's schema when first used, as the adapter is (`defer_build`)."""
    union = cast(dict[str, Any], RECORD_ADAPTER.core_schema)
    choices = {}
    for tag, model in union["choices"].items():
        searched = model["schema"]
        function = searched.get("function", {}).get("function")
        if getattr(function, "__func__", None) is not _NO_CARD_NUMBER:
            raise TypeError(f"{tag}: the card-number search is not where it was")
        choices[tag] = {**model, "schema": searched["schema"]}
    return SchemaValidator(
        cast(core_schema.CoreSchema, {**union, "choices": choices}),
        core_schema.CoreConfig(hide_input_in_errors=True),
    )


def json_schema() -> dict[str, Any]:
    schema = RECORD_ADAPTER.json_schema()
    schema["title"] = "offline-ledger wire record"
    return schema


_CARD_NUMBER_MESSAGE = (
    "looks like a full card number (13-19 digits passing the Luhn check); the ledger never "
    "stores card numbers: send only brand, last4 and expiry"
)


def refuse_card_number(data: Any) -> None:
    """Searched before validation, so that a PAN is refused as such even where it sits in
    the record type or in a record that is invalid for other reasons."""
    where = find_pan(data)
    if where is not None:
        raise InvalidRecord(Code.CARD_NUMBER_DETECTED, _CARD_NUMBER_MESSAGE, field=where)


def parse_line(raw: bytes | str) -> Record:
    """Parse one JSON Lines record; raise InvalidRecord naming the field.

    The size is bounded first; then the raw text is searched for a card number before anything
    else, so that a line that is not even JSON (cut, `NaN`, a lone surrogate escape, a BOM) is
    refused as holding one; then its shape is measured, and only then is it validated.

    That last order is kept in every answer, not in the work: the line is validated before it
    is measured (a refused line is measured before its refusal is worded), so a line the
    measure refuses gets the measure's answer either way. An accepted line is measured too:
    pydantic-core's JSON reader takes `NaN`, `Infinity` and `1e400` where orjson refuses
    them, and a repeated key keeps only its last value, so a line can be valid to the models
    and still malformed JSON. pydantic-core reads the JSON itself without recursing in
    Python, with a depth limit of its own: a line too deep is refused by it, then measured,
    and answered as too deep."""
    data = raw.encode(errors="surrogatepass") if isinstance(raw, str) else raw
    if len(data) > LINE_BYTES_MAX or holds_pan(data):
        _refuse_unsearched(data)
    try:
        record: Record = _record_validator().validate_json(data)
    except ValidationError as error:
        check_line(data)
        raise _translate(error) from None
    check_line(data)
    return record


def parse_lines(lines: Sequence[bytes]) -> list[Record | LedgerError]:
    """`parse_line` of each line, its record or its refusal, with the card-number scan's
    pre-filter run once over the whole batch (`ledger.pan.suspects`): a line it does not
    clear goes through `parse_line` itself, every other line is validated and measured as
    `parse_line` would do it once its scan found nothing. The same records and the same
    refusals, at about two thirds of the scan's cost (a line's own call, regexes and
    squeeze cost more than its share of one over a batch).

    A line as long as a string may be (STRING_CHARS_MAX) goes through `parse_line` alone and
    is left out of the texts the batch's lines are joined into: a batch of lines near
    LINE_BYTES_MAX would otherwise be copied whole several times over (a gigabyte more at the
    peak for a thousand of them), where lines of the contract's usual size are a few hundred
    bytes."""
    longest = max(map(len, lines), default=0)
    long = longest >= STRING_CHARS_MAX
    kept = [b"" if len(line) >= STRING_CHARS_MAX else line for line in lines] if long else lines
    # One join and one measure of the lengths for both, when the batch joins short (under
    # JOINED_BYTES_MAX) and has no long line, as a batch of usual lines does; let go before
    # the validation, which may hold as much again.
    joined = b"\n".join(kept)
    searched = suspects(kept, joined)
    counted = cleared(kept, joined=joined, longest=None if long else longest)
    del joined
    validate = _record_validator().validate_json
    if not (long or searched) and counted:
        return _validated(lines, validate)
    # Every line measured after its validation, unless the batch's counts clear them all.
    measure = (lambda data: None) if counted else check_line
    parsed: list[Record | LedgerError] = []
    add = parsed.append
    for n, data in enumerate(lines):
        try:
            if n in searched or len(data) >= STRING_CHARS_MAX:
                add(parse_line(data))
                continue
            try:
                record = validate(data)
            except ValidationError as error:
                measure(data)
                add(_translate(error))
                continue
            measure(data)
            add(record)
        except LedgerError as refused:
            add(_kept(refused))
    return parsed


def _kept(refused: LedgerError) -> LedgerError:
    """A refusal raised while parsing, to be kept as a line's result: without its traceback,
    whose frames hold the batch's lines and results (the refusal among them: a cycle only
    the collector frees), nor the error it was raised from (orjson's keeps the line whole)."""
    refused.__traceback__ = refused.__context__ = refused.__cause__ = None
    return refused


def _validated(
    lines: Sequence[bytes], validate: Callable[[bytes], Record]
) -> list[Record | LedgerError]:
    """`parse_lines` of a batch none of whose lines is a suspect or needs measuring: each
    line's record, or its refusal as validation words it. The lines are validated by one
    `map` that `list.extend` runs in C, started again after each refused line: a loop in
    Python cost about 1,500 instructions a line more. (`extend` keeps what it appended
    before the exception, so the refused line is the one at the list's length.)"""
    parsed: list[Record | LedgerError] = []
    rest = iter(lines)
    while True:
        try:
            parsed.extend(map(validate, rest))
        except ValidationError as error:
            parsed.append(_translate(error))
        else:
            return parsed


def parse_body(model: type[M], raw: bytes) -> M:
    """Another JSON document of the contract (a request of the HTTP API), checked as a record
    is: bounded, searched for a card number before anything else, measured, its errors in the
    same codes."""
    if len(raw) > LINE_BYTES_MAX or holds_pan(raw):
        _refuse_unsearched(raw)
    check_line(raw)
    try:
        return model.model_validate_json(raw)
    except ValidationError as error:
        raise _translate(error) from None


def _refuse_unsearched(data: bytes) -> NoReturn:
    """Refuse a JSON text too long to search (`check_size`), or else one holding a card number.
    The callers test both first, which spares two calls (about 700 instructions) a line."""
    check_size(data)
    try:
        where = find_pan(orjson.loads(data))
    except orjson.JSONDecodeError:
        where = None
    raise InvalidRecord(Code.CARD_NUMBER_DETECTED, _CARD_NUMBER_MESSAGE, field=where)


def parse_record(record: Record | dict[str, Any]) -> Record:
    """Validate a plain dict from a library caller (models were validated when built)."""
    if isinstance(record, BaseModel):
        return record
    check_value(record)
    refuse_card_number(record)
    try:
        return cast(Record, _record_validator().validate_python(record))
    except ValidationError as error:
        raise _translate(error) from None


_CODE_BY_ERROR_TYPE: dict[str, Code] = {
    "json_invalid": Code.MALFORMED_JSON,
    "json_type": Code.MALFORMED_JSON,
    "model_type": Code.MALFORMED_JSON,
    "model_attributes_type": Code.MALFORMED_JSON,
    "dict_type": Code.MALFORMED_JSON,
    "union_tag_invalid": Code.UNKNOWN_RECORD_TYPE,
    "union_tag_not_found": Code.MISSING_FIELD,
    "missing": Code.MISSING_FIELD,
    "extra_forbidden": Code.UNKNOWN_FIELD,
    "uuid_parsing": Code.INVALID_UUID,
    "uuid_type": Code.INVALID_UUID,
    "uuid_version": Code.INVALID_UUID,
    "unknown_currency": Code.UNKNOWN_CURRENCY,
    "timezone_aware": Code.INVALID_TIMESTAMP,
    "datetime_parsing": Code.INVALID_TIMESTAMP,
    "datetime_from_date_parsing": Code.INVALID_TIMESTAMP,
    "datetime_type": Code.INVALID_TIMESTAMP,
    "card_number_detected": Code.CARD_NUMBER_DETECTED,
}
_AMOUNT_FIELDS = frozenset({"amount", "amount_captured"})


def _translate(error: ValidationError) -> InvalidRecord:
    """Turn pydantic's first error into one stable code, a field path and a fix."""
    first: ErrorDetails = shown_errors(error)[0]
    kind = first["type"]
    # The discriminated union puts the record type first in the location: drop it.
    location = [str(part) for part in first["loc"]]
    if location and location[0] in RECORD_TYPES:
        location = location[1:]
    field = ".".join(location) or None
    if kind == "union_tag_not_found":
        field = "type"
    if kind == "card_number_detected":
        field = ".".join(filter(None, [field, first["ctx"]["path"]]))
    code = _CODE_BY_ERROR_TYPE.get(kind)
    if code is None:
        in_amount_map = len(location) >= 2 and location[-2].endswith("_max")
        is_amount = bool(location) and (location[-1] in _AMOUNT_FIELDS or in_amount_map)
        code = Code.INVALID_AMOUNT if is_amount else Code.INVALID_VALUE
    message = _message(code, first, field)
    return InvalidRecord(code, message, field=field)


def shown_errors(error: ValidationError) -> list[ErrorDetails]:
    """The errors of `error` as they are shown (by this module and by any reader of a model
    holding these types), where a value read by `_FastOrExact` failing its fast reading says
    nothing its exact reading (the next error, at the same place) does not say better: the
    exact one only, at the value's own place. Both name their choice last in the location,
    which is dropped; a field or key of the same name is told apart by having no such
    sibling."""
    errors = error.errors(include_url=False)
    locations = [found["loc"] for found in errors]
    shown: list[ErrorDetails] = []
    for n, found in enumerate(errors):
        place, choice = found["loc"][:-1], found["loc"][-1:]
        if choice == (_FAST,) and (*place, _EXACT) in locations[n + 1 : n + 2]:
            continue
        if choice == (_EXACT,) and n and (*place, _FAST) == locations[n - 1]:
            found = {**found, "loc": place}
        shown.append(found)
    return shown


def _message(code: Code, first: ErrorDetails, field: str | None) -> str:
    got = _shown(first["input"])
    if code is Code.CARD_NUMBER_DETECTED:
        return str(first["msg"])  # never echo the number back
    if code is Code.UNKNOWN_RECORD_TYPE:
        tag = first.get("ctx", {}).get("tag")
        return f"unknown record type {quoted(tag)}; expected one of: {', '.join(RECORD_TYPES)}"
    if code is Code.MISSING_FIELD:
        return f"required field '{field}' is missing"
    if code is Code.UNKNOWN_FIELD:
        return (
            f"field '{field}' is not part of this record type; remove it "
            "(see `offline-ledger schema`)"
        )
    if code is Code.MALFORMED_JSON:
        return f"not a JSON object: {first['msg']}"
    if code is Code.INVALID_AMOUNT:
        return (
            f"{first['msg']} (got {got}); amounts are positive whole numbers of minor units, "
            "e.g. 1250 for 12.50 USD"
        )
    if code is Code.INVALID_TIMESTAMP:
        # `ledger.moments` says itself what is wrong and how to write a moment.
        hint = "" if first["type"] == "datetime_parsing" else f"; {FORMAT_HINT}"
        return f"{first['msg']} (got {got}){hint}"
    if code is Code.INVALID_UUID:
        return f"{first['msg']} (got {got}); offline_id is the UUID the POS generated"
    return f"{first['msg']} (got {got})"


def _shown(value: Any) -> str:
    """A short rendering of the offending input for messages (never a whole record, digit
    runs masked)."""
    return quoted(value)


class OfflineDecisionRequest(BaseModel):
    """A prospective sale: may it be taken offline? (`Ledger.decide`, `offline-ledger decide`)"""

    model_config = _MODEL_CONFIG

    amount: AmountMinor
    currency: Currency
    device_id: Identifier
    location_id: Identifier
    offline_behavior: Literal["prefer_online", "require_online", "force_offline"] = "prefer_online"
    at: Timestamp


def parse_decision_request(values: dict[str, Any]) -> OfflineDecisionRequest:
    """A library caller's sale, its values searched for a card number first, as a record's
    are: its ids are plain arguments, and a reservation stores them."""
    refuse_card_number(values)
    try:
        return OfflineDecisionRequest.model_validate(values)
    except ValidationError as error:
        raise _translate(error) from None
