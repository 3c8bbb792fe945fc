"""Typed errors with stable codes.

Every refusal the ledger makes is a `LedgerError` carrying a stable `code` (the public contract:
POS backends branch on it), a message that says what is wrong and how to fix it, and where it is
(`field`, and `line` when the record came from a file). Nothing is stored when one is raised.
The category subclasses let the CLI and HTTP layers map errors to exit statuses and status codes
in one place each.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from typing_extensions import TypedDict

from ledger.pan import redacted


class Code(StrEnum):
    # Input that is not a valid record.
    MALFORMED_JSON = "MALFORMED_JSON"
    UNKNOWN_RECORD_TYPE = "UNKNOWN_RECORD_TYPE"
    UNKNOWN_FIELD = "UNKNOWN_FIELD"
    MISSING_FIELD = "MISSING_FIELD"
    INVALID_UUID = "INVALID_UUID"
    INVALID_AMOUNT = "INVALID_AMOUNT"
    UNKNOWN_CURRENCY = "UNKNOWN_CURRENCY"
    INVALID_TIMESTAMP = "INVALID_TIMESTAMP"
    INVALID_VALUE = "INVALID_VALUE"
    # A command line click could not parse: an unknown option or command, a missing argument,
    # a value of the wrong type.
    USAGE_ERROR = "USAGE_ERROR"
    CARD_NUMBER_DETECTED = "CARD_NUMBER_DETECTED"
    # Input larger or deeper than any real record (ledger.bounds).
    RECORD_TOO_LARGE = "RECORD_TOO_LARGE"
    NESTING_TOO_DEEP = "NESTING_TOO_DEEP"
    # References to things the ledger does not know.
    UNKNOWN_LOCATION = "UNKNOWN_LOCATION"
    UNKNOWN_DEVICE = "UNKNOWN_DEVICE"
    UNKNOWN_PAYMENT = "UNKNOWN_PAYMENT"
    UNKNOWN_RESERVATION = "UNKNOWN_RESERVATION"
    NO_REPORT_DATA = "NO_REPORT_DATA"
    # Lifecycle and idempotency.
    STEP_OUT_OF_ORDER = "STEP_OUT_OF_ORDER"
    IDEMPOTENCY_CONFLICT = "IDEMPOTENCY_CONFLICT"
    PAYMENT_INTENT_MISMATCH = "PAYMENT_INTENT_MISMATCH"
    CAPTURE_EXCEEDS_AMOUNT = "CAPTURE_EXCEEDS_AMOUNT"
    TOO_MANY_FORWARD_FAILURES = "TOO_MANY_FORWARD_FAILURES"
    # Offline rules (the names follow Stripe Terminal's error codes).
    OFFLINE_MODE_DISABLED = "OFFLINE_MODE_DISABLED"
    AMOUNT_EXCEEDS_MAX_OFFLINE_AMOUNT = "AMOUNT_EXCEEDS_MAX_OFFLINE_AMOUNT"
    STORED_AMOUNT_LIMIT_EXCEEDED = "STORED_AMOUNT_LIMIT_EXCEEDED"
    OFFLINE_PAYMENTS_DATABASE_TOO_LARGE = "OFFLINE_PAYMENTS_DATABASE_TOO_LARGE"
    INVALID_OFFLINE_CURRENCY = "INVALID_OFFLINE_CURRENCY"
    CARD_SWIPE_NOT_AVAILABLE = "CARD_SWIPE_NOT_AVAILABLE"
    CONTACTLESS_NOT_ALLOWED_OFFLINE = "CONTACTLESS_NOT_ALLOWED_OFFLINE"
    INTERAC_NOT_SUPPORTED_OFFLINE = "INTERAC_NOT_SUPPORTED_OFFLINE"
    PAYMENT_METHOD_NOT_SUPPORTED_OFFLINE = "PAYMENT_METHOD_NOT_SUPPORTED_OFFLINE"
    ONLINE_PIN_NOT_SUPPORTED_OFFLINE = "ONLINE_PIN_NOT_SUPPORTED_OFFLINE"
    OFFLINE_AND_CARD_EXPIRED = "OFFLINE_AND_CARD_EXPIRED"
    READER_CONNECTION_NOT_AVAILABLE_OFFLINE = "READER_CONNECTION_NOT_AVAILABLE_OFFLINE"
    LOCATION_CONNECTION_NOT_AVAILABLE_OFFLINE = "LOCATION_CONNECTION_NOT_AVAILABLE_OFFLINE"
    NOT_CONNECTED_TO_INTERNET_AND_REQUIRE_ONLINE_SET = (
        "NOT_CONNECTED_TO_INTERNET_AND_REQUIRE_ONLINE_SET"
    )
    # A device stored more than the offline allowance it held (Ledger.allow).
    OFFLINE_ALLOWANCE_EXCEEDED = "OFFLINE_ALLOWANCE_EXCEEDED"
    # Stripe (adapters.stripe.gateway).
    STRIPE_CARD_DECLINED = "STRIPE_CARD_DECLINED"
    STRIPE_RATE_LIMITED = "STRIPE_RATE_LIMITED"
    STRIPE_INVALID_REQUEST = "STRIPE_INVALID_REQUEST"
    # Stripe refused a request reusing an Idempotency-Key with other parameters.
    STRIPE_IDEMPOTENCY_ERROR = "STRIPE_IDEMPOTENCY_ERROR"
    # Stripe needs the cardholder to authenticate (requires_action): only they can finish it.
    STRIPE_AUTHENTICATION_REQUIRED = "STRIPE_AUTHENTICATION_REQUIRED"
    STRIPE_AUTHENTICATION = "STRIPE_AUTHENTICATION"
    STRIPE_API_ERROR = "STRIPE_API_ERROR"
    STRIPE_UNREACHABLE = "STRIPE_UNREACHABLE"
    STRIPE_NOT_CONFIGURED = "STRIPE_NOT_CONFIGURED"
    CONFIG_FILE_NOT_FOUND = "CONFIG_FILE_NOT_FOUND"
    INVALID_SETTING = "INVALID_SETTING"
    STRIPE_MODE_MISMATCH = "STRIPE_MODE_MISMATCH"
    # Storage and configuration.
    DATABASE_UNAVAILABLE = "DATABASE_UNAVAILABLE"
    DATABASE_NOT_FOUND = "DATABASE_NOT_FOUND"
    DATABASE_TIMEOUT = "DATABASE_TIMEOUT"
    INVALID_DATABASE_SETTING = "INVALID_DATABASE_SETTING"
    INVALID_DATABASE_URL = "INVALID_DATABASE_URL"
    MIGRATION_REQUIRED = "MIGRATION_REQUIRED"
    CONTENTION = "CONTENTION"
    EXPORT_INVALID = "EXPORT_INVALID"
    # Encryption at rest (OFFLINE_LEDGER_CIPHER_KEY, OFFLINE_LEDGER_CIPHER_KEYRING).
    INVALID_CIPHER_KEY = "INVALID_CIPHER_KEY"
    CIPHER_KEY_REQUIRED = "CIPHER_KEY_REQUIRED"
    CIPHER_KEY_MISMATCH = "CIPHER_KEY_MISMATCH"
    INVALID_CIPHER_KEYRING = "INVALID_CIPHER_KEYRING"
    CIPHER_KEY_UNKNOWN = "CIPHER_KEY_UNKNOWN"  # an event names a key the keyring lacks
    CIPHER_KEY_RETIRED = "CIPHER_KEY_RETIRED"  # a write with a key a rotation retired
    # Sealed periods (ledger.seal, adapters.seals).
    INVALID_SEAL = "INVALID_SEAL"
    INVALID_SEAL_KEY = "INVALID_SEAL_KEY"
    CHAIN_BROKEN = "CHAIN_BROKEN"  # the hash chain does not verify: nothing is sealed
    # Alerts (adapters.alerts).
    INVALID_ALERT_CONFIG = "INVALID_ALERT_CONFIG"
    # What-if replays (ledger.what_if).
    INVALID_LIMITS_FILE = "INVALID_LIMITS_FILE"


def _redacted_values(value: Any) -> Any:
    """Details with every text in them masked as a message is (`redacted`): they are echoed
    beside it (a key's id, a cause's text) and must not repeat what the message masks."""
    if isinstance(value, str):
        return redacted(value)
    if isinstance(value, dict):
        return {key: _redacted_values(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted_values(item) for item in value]
    return value


class LedgerError(Exception):
    """Base of every error the ledger raises on purpose."""

    def __init__(
        self,
        code: Code,
        message: str,
        *,
        field: str | None = None,
        line: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        # Messages and fields are built from input: a card number that got this far (a
        # refusal raised before the edge's check) is masked, never repeated.
        message = redacted(message)
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = None if field is None else redacted(field)
        self.line = line
        self.details = _redacted_values(details) if details else {}

    def at_line(self, line: int) -> LedgerError:
        self.line = line
        return self

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": str(self.code), "message": self.message}
        if self.line is not None:
            body["line"] = self.line
        if self.field is not None:
            body["field"] = self.field
        if self.details:
            body["details"] = self.details
        return body

    def __str__(self) -> str:
        where = []
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.field is not None:
            where.append(f"field {self.field}")
        prefix = f"{', '.join(where)}: " if where else ""
        return f"{prefix}{self.code}: {self.message}"


class InvalidRecord(LedgerError):
    """The record is not valid wire format; fix the producer."""


class NotFound(LedgerError):
    """The record refers to a location, device or payment the ledger has not seen."""


class Conflict(LedgerError):
    """The record contradicts what is recorded (order, idempotency, payment intent)."""


class RuleViolation(LedgerError):
    """An offline rule or limit refuses the payment: it must go online or be declined."""


class Breach(TypedDict):
    """A broken rule as an event records it: a fact that broke it (flagged, never refused), or
    a reservation it refused. The same four keys as a `RuleViolation`, in JSON's types, so
    an event's state stays plain JSON."""

    code: str
    message: str
    field: str | None
    details: dict[str, Any]  # what the check saw: amounts, limits, counts (JSON values)


class StorageError(LedgerError):
    """The database cannot be reached or is not ready."""
