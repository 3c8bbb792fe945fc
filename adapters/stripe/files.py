"""Stripe's exported files as observations: the itemized balance or payout
reconciliation report (CSV) and PaymentIntents as the API returns them (JSON).

A file is read whole and checked whole before anything is recorded: the readers return every
observation of the file, or raise one `StripeFileError` listing every problem found (line or
object, column or field, code, and what to do). A file holding a full card number is refused
without echoing the number.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, tzinfo
from decimal import Context, Decimal, Inexact, InvalidOperation
from pathlib import Path
from typing import Any, NoReturn

from pydantic import ValidationError

from ledger.bounds import DEPTH_MAX, check_value
from ledger.errors import Code, InvalidRecord, LedgerError
from ledger.moments import MomentError, check_moment, from_unix_seconds
from ledger.money import exponent, is_currency
from ledger.observations import (
    BalanceTransactionObservation,
    DisputeObservation,
    PaymentIntentObservation,
    Source,
)
from ledger.pan import find_pan, holds_pan, quoted

PROBLEMS_MAX = 1_000  # problems listed per file; the count stays exact

# Ids of what a customer paid (a PaymentIntent, a charge, a payment), or of money given
# back (a refund, a dispute) or of a balance transaction as such.
PAYMENT_SOURCE_PREFIXES = ("pi_", "ch_", "py_", "re_", "pyr_", "dp_", "du_")
ID_COLUMNS = ("payment_intent_id", "charge_id", "source_id")
# A default-column report names only balance transactions: its rows are matched through the
# `txn_` ids an expanded PaymentIntent or a webhook gave, when their category is a payment's.
TXN_COLUMN = "balance_transaction_id"
PAYMENT_CATEGORIES = frozenset(
    {
        "charge",
        "payment",
        "partial_capture_reversal",
        "refund",
        "payment_refund",
        "refund_failure",
        "charge_failure",
        "payment_failure",
        "dispute",
        "dispute_reversal",
    }
)
# metadata keys for the offline id, in order of preference (the keys Stripe's docs use)
OFFLINE_ID_KEYS = ("offline_id", "offlineId", "unique-id")
OFFLINE_ID_COLUMNS = tuple(f"payment_metadata[{key}]" for key in OFFLINE_ID_KEYS)
AMOUNT_COLUMNS = ("gross", "fee", "net")
# Each moment as (the UTC column, the column in the report run's `timezone`): the UTC one is
# read when the file has it; the local one only with the time zone the report was run in.
TIMESTAMP_COLUMNS = (("created_utc", "created"),)
PAYOUT_AT_COLUMNS = (("automatic_payout_effective_at_utc", "automatic_payout_effective_at"),)

_REPORT_HINT = (
    "download Stripe's itemized balance change from activity report "
    "(balance_change_from_activity.itemized.3) or itemized payout reconciliation report "
    "(payout_reconciliation.itemized.*) with the columns currency, gross and "
    "balance_transaction_id, payment_intent_id, charge_id or source_id"
)
_JSON_HINT = (
    "export PaymentIntents as the API returns them (GET /v1/payment_intents: a list page, "
    "an array, one object, or one object per line)"
)
_CARD_NUMBER_MESSAGE = (
    "looks like a full card number (13-19 digits passing the Luhn check); the ledger never "
    "reads files holding card numbers: remove it from the export"
)

_DECIMAL_TEXT = re.compile(r"[+-]?\d{1,20}(?:[.,]\d{1,20})?")  # a decimal point or comma
# Stripe's report format (UTC, no offset) or RFC 3339
_TIMESTAMP_TEXT = re.compile(
    r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:\d{2})?"
)
_STRIPE_ID = re.compile(r"[A-Za-z0-9_]{3,255}")
# Plenty of digits for any 20.20-digit amount scaled by 10**3: never rounds, and says so.
_EXACT = Context(prec=64, traps=[Inexact, InvalidOperation])


class StripeFileError(InvalidRecord):
    """A Stripe file refused whole: nothing of it was recorded.

    `problems` lists the problems found (at most PROBLEMS_MAX), each a LedgerError with its
    code, `line` (CSV and JSON Lines), `field` (column or field path) and `details["file"]`;
    `problem_count` is the exact total.
    """

    def __init__(self, file: str, problems: list[LedgerError], problem_count: int) -> None:
        listed = "" if problem_count <= len(problems) else f" (the first {len(problems)} listed)"
        super().__init__(
            problems[0].code,
            f"{file} refused, nothing imported: {problem_count} problem"
            f"{'s' if problem_count != 1 else ''}{listed}; fix the file and import it again",
            details={"file": file},
        )
        self.file = file
        self.problems = problems
        self.problem_count = problem_count


class ReportRows(list[BalanceTransactionObservation]):
    """The observations of a report file, in file order, with the number of rows skipped
    because they name no payment (payouts, adjustments)."""

    skipped: int = 0


def read_report_csv(path: Path, timezone: tzinfo | None = None) -> ReportRows:
    """Read an itemized balance or payout reconciliation report; raise StripeFileError.

    `timezone` is the one the report was run in (its `timezone` parameter): needed, and only
    used, when the file gives local times (`created`) without their UTC column."""
    problems = _Problems(str(path))
    reader = _ReportReader(problems, timezone)
    reader.read(_decode(_read_bytes(path, problems), problems))
    problems.raise_if_any()
    return reader.rows


def read_payment_intents_json(path: Path) -> list[PaymentIntentObservation]:
    """Read PaymentIntents exported from the API; raise StripeFileError."""
    problems = _Problems(str(path))
    return _payment_intents(_read_bytes(path, problems), problems)


def parse_payment_intents_json(data: bytes, file: str) -> list[PaymentIntentObservation]:
    """`read_payment_intents_json` for bytes already read (stdin); `file` names them."""
    return _payment_intents(data, _Problems(file))


def read_disputes_json(path: Path) -> list[DisputeObservation]:
    """Read Disputes exported from the API (GET /v1/disputes: a list page, an array, one
    object, or JSON Lines): each dispute's status, which a balance report cannot tell (an
    open dispute and a lost one both show only the withdrawal); raise StripeFileError."""
    problems = _Problems(str(path))
    text = _decode(_read_bytes(path, problems), problems)
    disputes = []
    for where, item in _json_items(text, problems):
        try:
            disputes.append(dispute_observation(item, "json_file", None))
        except (ValidationError, TypeError, AttributeError) as error:
            detail = str(error).splitlines()[0][:200]
            problems.add(Code.INVALID_VALUE, where, None, f"not a Dispute object ({detail})")
    problems.raise_if_any()
    return disputes


def dispute_observation(
    item: dict[str, Any], source: Source, as_of: datetime | None
) -> DisputeObservation:
    """A Dispute object (Stripe's OpenAPI component `dispute`) as an observation; raise
    pydantic's ValidationError when it is not one."""
    if item.get("object") != "dispute":
        raise TypeError(f"the object is {_shown(item.get('object'))}, not a 'dispute'")
    return DisputeObservation.model_validate(
        {
            "source": source,
            "as_of": as_of,
            "dispute_id": item.get("id"),
            "charge_id": _expanded_id(item.get("charge")),
            "payment_intent_id": _expanded_id(item.get("payment_intent")),
            "currency": item["currency"].lower() if isinstance(item.get("currency"), str) else None,
            "amount": item.get("amount"),
            "status": item.get("status"),
        }
    )


def _expanded_id(value: Any) -> Any:
    """An id, or the id of an expanded object."""
    return value.get("id") if isinstance(value, dict) else value


def payment_intent_observation(
    item: dict[str, Any], source: Source, as_of: datetime
) -> PaymentIntentObservation:
    """One PaymentIntent from the API or a webhook, as Stripe showed it at `as_of`; raise
    StripeFileError naming the field when it is not a valid PaymentIntent."""
    problems = _Problems(f"{source} object")
    observation = _payment_intent(_Where(item="the object"), item, problems, source, as_of)
    problems.raise_if_any()
    assert observation is not None
    return observation


# -- problems ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Where:
    """Where a problem is: a line (CSV, JSON Lines) or an object of a JSON document."""

    line: int | None = None
    item: str | None = None  # "data[2]", "[2]" or "the object"
    object_id: str | None = None
    kind: str = "field"  # "column" in a CSV file

    def describe(self, field: str | None) -> str:
        parts = [f"line {self.line}"] if self.line is not None else []
        if self.item is not None:
            parts.append(f"object {self.item}" if self.item.endswith("]") else self.item)
        if self.object_id is not None:
            parts.append(f"id {self.object_id}")
        if field is not None:
            parts.append(f"{self.kind} '{field}'")
        return ", ".join(parts)


class _Problems:
    def __init__(self, file: str) -> None:
        self.file = file
        self.listed: list[LedgerError] = []
        self.count = 0

    def add(self, code: Code, where: _Where, field: str | None, message: str) -> None:
        self.count += 1
        if len(self.listed) >= PROBLEMS_MAX:
            return
        place = where.describe(field)
        details: dict[str, Any] = {"file": self.file}
        if where.item is not None:
            details["object"] = where.item
        if where.object_id is not None:
            details["id"] = where.object_id
        self.listed.append(
            InvalidRecord(
                code,
                f"{self.file}{', ' if place else ''}{place}: {message}",
                field=field,
                line=where.line,
                details=details,
            )
        )

    def fail(self, code: Code, where: _Where, field: str | None, message: str) -> NoReturn:
        self.add(code, where, field, message)
        raise StripeFileError(self.file, self.listed, self.count)

    def raise_if_any(self) -> None:
        if self.count:
            raise StripeFileError(self.file, self.listed, self.count)


def _read_bytes(path: Path, problems: _Problems) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        reason = error.strerror or type(error).__name__
        problems.fail(
            Code.INVALID_VALUE,
            _Where(),
            None,
            f"cannot read the file ({reason}); give the path of an exported file",
        )


def _decode(data: bytes, problems: _Problems) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        problems.fail(
            Code.INVALID_VALUE,
            _Where(line=line),
            None,
            "the file is not UTF-8 text; export it again from Stripe without "
            "converting it (Stripe writes UTF-8)",
        )


def _shown(value: Any) -> str:
    """A short rendering of an offending value: digit runs masked, never a card number."""
    return quoted(value)


def _about_a_payment(ids: dict[str, str | None], category: str | None, txn: str | None) -> bool:
    """A row names a payment by its PaymentIntent or charge, or a refund or dispute of one;
    a row whose only id is a payout, transfer or adjustment (`po_`, `tr_`, `ia_`...) is not
    about a payment. A row with no such column (a default-column report) is, when its
    category is a payment's."""
    source = ids.get("source_id") or ""
    if ids.get("payment_intent_id") or ids.get("charge_id"):
        return True
    if source:
        return source.startswith(PAYMENT_SOURCE_PREFIXES)
    return bool(txn) and category in PAYMENT_CATEGORIES


def _pan_in(value: Any) -> str | None:
    try:
        return find_pan(value)
    except RecursionError:  # nested deeper than any PaymentIntent: refused as a whole
        return "(record)"


# -- values -----------------------------------------------------------------------------------


def _to_minor(text: str, currency: str) -> int:
    """Exact conversion of major units as text (`"-12.50"`) to minor units; never rounds."""
    if not _DECIMAL_TEXT.fullmatch(text):
        raise ValueError(f"{_shown(text)} is not a decimal amount like 12.50 or -3.00")
    places = exponent(currency)
    whole, comma, fraction = text.partition(",")
    if comma and len(fraction) > places:
        # "1,250" in USD is a thousands separator or a typo, never 12.50: refuse, never guess.
        raise ValueError(
            f"{_shown(text)} has more decimals than {currency.upper()} has ({places}) after "
            "its decimal comma; amounts are never rounded: check the amount and the currency"
        )
    scaled = Decimal(f"{whole}.{fraction}" if comma else text).scaleb(places, context=_EXACT)
    if scaled != scaled.to_integral_value(context=_EXACT):
        raise ValueError(
            f"{_shown(text)} has more decimals than {currency.upper()} has ({places}); "
            "amounts are never rounded: check the amount and the currency column"
        )
    minor = int(scaled)
    if abs(minor) > 10**15:
        raise ValueError(f"{_shown(text)} is out of range")
    return minor


def _to_utc(text: str, zone: tzinfo = UTC) -> datetime:
    """Stripe's report timestamps (`2026-11-22 10:15:00`, in `zone`) or RFC 3339, as UTC."""
    if not _TIMESTAMP_TEXT.fullmatch(text):
        raise ValueError(
            f"{_shown(text)} is not a timestamp like 2026-11-22 10:15:00 (UTC) or RFC 3339"
        )
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{_shown(text)} is not a valid date and time") from None
    try:
        moment = check_moment(parsed.replace(tzinfo=zone) if parsed.tzinfo is None else parsed)
    except MomentError as error:
        raise ValueError(f"{_shown(text)} {error}") from None
    return moment.astimezone(UTC)


def _validation_problems(
    error: ValidationError,
    where: _Where,
    problems: _Problems,
    amount_fields: tuple[str, ...],
    source_names: dict[str, str],
) -> None:
    """Limits the readers do not check themselves (lengths, ranges), from the model; a field
    is named as the file names it (`source_names`: model field -> column or field path)."""
    for detail in error.errors(include_url=False):
        name = ".".join(str(part) for part in detail["loc"])
        field = source_names.get(name, name) or None
        code = Code.INVALID_AMOUNT if name in amount_fields else Code.INVALID_VALUE
        problems.add(code, where, field, f"{detail['msg']} (got {_shown(detail['input'])})")


# -- the itemized report (CSV) ----------------------------------------------------------------


_LATER_FIELDS = frozenset(
    {"payout_id", "payout_at", "customer_facing_amount", "customer_facing_currency"}
)


class _ReportReader:
    def __init__(self, problems: _Problems, timezone: tzinfo | None) -> None:
        self.problems = problems
        self.timezone = timezone
        self.rows = ReportRows()
        self.occurrences: dict[str, int] = {}
        self.header: list[str] = []

    def read(self, text: str) -> None:
        reader = csv.reader(io.StringIO(text, newline=""))
        while True:
            line = reader.line_num + 1  # where the next row starts
            try:
                cells = next(reader)
            except StopIteration:
                break
            except csv.Error as error:
                self.problems.fail(
                    Code.INVALID_VALUE,
                    _Where(line=line),
                    None,
                    f"not readable as CSV ({error}); {_REPORT_HINT}",
                )
            if line == 1:
                self.read_header(cells)
            elif cells:  # a blank line is no row
                self.read_row(line, cells)
        if not self.header:
            self.read_header([])

    def read_header(self, cells: list[str]) -> None:
        where = _Where(line=1, kind="column")
        self.header = [cell.strip() for cell in cells]
        for index, name in enumerate(self.header):
            if holds_pan(name):
                self.problems.add(
                    Code.CARD_NUMBER_DETECTED, where, f"#{index + 1}", _CARD_NUMBER_MESSAGE
                )
            elif name and self.header.index(name) != index:
                self.problems.add(
                    Code.INVALID_VALUE, where, name, "the column appears twice; keep one"
                )
        present = set(self.header)
        for needed in ("currency", "gross"):
            if needed not in present:
                self.problems.add(
                    Code.MISSING_FIELD,
                    where,
                    needed,
                    f"the file has no '{needed}' column; {_REPORT_HINT}",
                )
        if not present.intersection((*ID_COLUMNS, TXN_COLUMN)):
            self.problems.add(
                Code.MISSING_FIELD,
                where,
                "/".join(ID_COLUMNS),
                f"the file has none of the columns {', '.join(ID_COLUMNS)} (nor "
                f"{TXN_COLUMN}), so no row names a payment; {_REPORT_HINT}",
            )
        for utc_column, local_column in TIMESTAMP_COLUMNS + PAYOUT_AT_COLUMNS:
            if local_column in present and utc_column not in present and self.timezone is None:
                self.problems.add(
                    Code.INVALID_TIMESTAMP,
                    where,
                    local_column,
                    f"the file gives '{local_column}' in the time zone the report was run in "
                    f"and no '{utc_column}': give that time zone (--timezone, e.g. "
                    f"Europe/Paris) or download the report with the '{utc_column}' column; "
                    "the ledger never guesses a time zone",
                )
        self.problems.raise_if_any()  # rows of an unusable header are not worth reading

    def read_row(self, line: int, cells: list[str]) -> None:
        where = _Where(line=line, kind="column")
        # Cell by cell: the cells of a row joined would read as one long number.
        index = next((i for i, cell in enumerate(cells) if holds_pan(cell)), None)
        if index is not None:
            column = self.header[index] if index < len(self.header) else f"#{index + 1}"
            self.problems.add(Code.CARD_NUMBER_DETECTED, where, column, _CARD_NUMBER_MESSAGE)
            return
        if len(cells) != len(self.header):
            self.problems.add(
                Code.INVALID_VALUE,
                where,
                None,
                f"the row has {len(cells)} cells but the header has "
                f"{len(self.header)}; the file is cut or was edited: export it "
                "again",
            )
            return
        values = {name: cell.strip() for name, cell in zip(self.header, cells, strict=True)}
        ids = {column: values.get(column) or None for column in ID_COLUMNS}
        category = values.get("reporting_category") or None
        if not _about_a_payment(ids, category, values.get(TXN_COLUMN)):
            self.rows.skipped += 1
            return
        count_before = self.problems.count
        for column, value in ids.items():
            if value is not None and not _STRIPE_ID.fullmatch(value):
                self.problems.add(
                    Code.INVALID_VALUE,
                    where,
                    column,
                    f"{_shown(value)} is not a Stripe id (letters, digits, _)",
                )
        fields: dict[str, Any] = {"source": "report_file", **ids}
        currency = values["currency"].lower()
        if not currency:
            self.problems.add(
                Code.MISSING_FIELD,
                where,
                "currency",
                "the currency is empty; every row tied to a payment has one",
            )
        elif not is_currency(currency):
            self.problems.add(
                Code.UNKNOWN_CURRENCY,
                where,
                "currency",
                f"{_shown(values['currency'])} is not an ISO 4217 currency code",
            )
        else:
            fields["currency"] = currency
            for column in AMOUNT_COLUMNS:
                fields[column] = self.amount(where, column, values.get(column, ""), currency)
        timestamp_column = self.moment(where, values, fields, "created_at", TIMESTAMP_COLUMNS[0])
        self.moment(where, values, fields, "payout_at", PAYOUT_AT_COLUMNS[0])
        fields["payout_id"] = values.get("automatic_payout_id") or None
        fields["reporting_category"] = category
        self.customer_facing(where, values, fields)
        offline_id_column = next((c for c in OFFLINE_ID_COLUMNS if values.get(c)), None)
        fields["offline_id"] = values[offline_id_column] if offline_id_column else None
        if self.problems.count > count_before:
            return
        fields["balance_transaction_id"] = values.get("balance_transaction_id") or self.derived_id(
            fields
        )
        try:
            self.rows.append(BalanceTransactionObservation(**fields))
        except ValidationError as error:
            _validation_problems(
                error,
                where,
                self.problems,
                AMOUNT_COLUMNS,
                {"offline_id": offline_id_column or "", "created_at": timestamp_column or ""},
            )

    def moment(
        self,
        where: _Where,
        values: dict[str, str],
        fields: dict[str, Any],
        name: str,
        columns: tuple[str, str],
    ) -> str | None:
        """Read one moment, from its UTC column, else from its local one in the report's
        time zone (the header check made sure there is one); the column read, if any."""
        utc_column, local_column = columns
        column = next((c for c in columns if values.get(c)), None)
        if column is None:
            return None
        zone = UTC if column == utc_column else (self.timezone or UTC)
        if column == local_column and utc_column in values and self.timezone is None:
            # An empty UTC cell beside a local one: the local one says nothing certain.
            return None
        try:
            fields[name] = _to_utc(values[column], zone)
        except ValueError as error:
            self.problems.add(Code.INVALID_TIMESTAMP, where, column, str(error))
        return column

    def customer_facing(
        self, where: _Where, values: dict[str, str], fields: dict[str, Any]
    ) -> None:
        """What the customer paid, in their currency, when the settlement was converted."""
        text = values.get("customer_facing_amount", "")
        currency = (values.get("customer_facing_currency") or "").lower()
        if not text or not currency:
            return
        if not is_currency(currency):
            self.problems.add(
                Code.UNKNOWN_CURRENCY,
                where,
                "customer_facing_currency",
                f"{_shown(currency)} is not an ISO 4217 currency code",
            )
            return
        fields["customer_facing_currency"] = currency
        fields["customer_facing_amount"] = self.amount(
            where, "customer_facing_amount", text, currency
        )

    def amount(self, where: _Where, column: str, text: str, currency: str) -> int | None:
        if not text:
            if column == "gross":
                self.problems.add(
                    Code.MISSING_FIELD,
                    where,
                    column,
                    "the gross amount is empty; every row tied to a payment has one",
                )
            return None
        try:
            return _to_minor(text, currency)
        except ValueError as error:
            self.problems.add(Code.INVALID_AMOUNT, where, column, str(error))
            return None

    def derived_id(self, fields: dict[str, Any]) -> str:
        """A stable id for a row the report gives none: its normalized content, numbered
        among identical rows of the file, so importing the file again records nothing."""
        # Columns read since ids were first derived count only when present, so that a file
        # imported before reads as the same rows.
        kept = {k: v for k, v in fields.items() if v is not None or k not in _LATER_FIELDS}
        content = json.dumps(kept, sort_keys=True, default=str)
        digest = hashlib.sha256(content.encode()).hexdigest()
        occurrence = self.occurrences.get(digest, 0) + 1
        self.occurrences[digest] = occurrence
        return f"row:{digest}:{occurrence}"


# -- PaymentIntents (JSON) --------------------------------------------------------------------


def _payment_intents(data: bytes, problems: _Problems) -> list[PaymentIntentObservation]:
    text = _decode(data, problems)
    observations = []
    for where, item in _json_items(text, problems):
        observation = _payment_intent(where, item, problems, "json_file", None)
        if observation is not None:
            observations.append(observation)
    problems.raise_if_any()
    return observations


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON number")


def _loads(text: str) -> Any:
    """JSON with decimals as Decimal (so 12.5 is refused as an amount, never a float)."""
    try:
        document = json.loads(text, parse_float=Decimal, parse_constant=_refuse_constant)
        # A list page nests its objects two levels down; each object as deep as a record.
        check_value(document, what="the JSON", depth_max=DEPTH_MAX + 2, values_max=None)
    except RecursionError:
        raise ValueError(f"nested more than {DEPTH_MAX} levels deep") from None
    except InvalidRecord as error:
        raise ValueError(error.message) from None
    return document


def _json_items(text: str, problems: _Problems) -> Iterator[tuple[_Where, Any]]:
    """The objects of a list page, an array, one object, or JSON Lines, with where each is;
    lazily, so that problems come in file order."""
    if not text.strip():
        problems.fail(Code.MALFORMED_JSON, _Where(), None, f"the file is empty; {_JSON_HINT}")
    try:
        document = _loads(text)
    except ValueError as error:
        lines = text.split("\n")  # JSON Lines ends lines with \n only
        first = next(line for line in lines if line.strip())
        if first.lstrip().startswith("{") and _parses(first):
            yield from _json_lines(lines, problems)
            return
        _malformed(problems, _Where(), text, f"not valid JSON ({error}); {_JSON_HINT}")
        return
    if isinstance(document, list):
        yield from ((_Where(item=f"[{index}]"), item) for index, item in enumerate(document))
    elif isinstance(document, dict) and document.get("object") in ("list", "search_result"):
        items = document.get("data")
        if not isinstance(items, list):
            problems.fail(
                Code.INVALID_VALUE,
                _Where(),
                "data",
                f"a list page needs a 'data' array; {_JSON_HINT}",
            )
        yield from ((_Where(item=f"data[{index}]"), item) for index, item in enumerate(items))
    else:
        yield _Where(item="the object"), document


def _parses(text: str) -> bool:
    try:
        _loads(text)
    except ValueError:
        return False
    return True


def _json_lines(lines: list[str], problems: _Problems) -> Iterator[tuple[_Where, Any]]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = _Where(line=number)
        try:
            yield where, _loads(line)
        except ValueError as error:
            _malformed(
                problems,
                where,
                line,
                f"not valid JSON ({error}); each line must hold one PaymentIntent",
            )


def _malformed(problems: _Problems, where: _Where, text: str, message: str) -> None:
    """Text that is not JSON is still searched for a card number, to refuse it as such."""
    if _pan_in(text) is not None:
        problems.add(Code.CARD_NUMBER_DETECTED, where, None, _CARD_NUMBER_MESSAGE)
    else:
        problems.add(Code.MALFORMED_JSON, where, None, message)


def _payment_intent(
    where: _Where, item: Any, problems: _Problems, source: Source, as_of: datetime | None
) -> PaymentIntentObservation | None:
    if not isinstance(item, dict):
        problems.add(
            Code.INVALID_VALUE,
            where,
            None,
            f"{_shown(item)} is not a PaymentIntent object; {_JSON_HINT}",
        )
        return None
    pan_path = _pan_in(item)
    if pan_path is not None:
        problems.add(Code.CARD_NUMBER_DETECTED, where, pan_path, _CARD_NUMBER_MESSAGE)
        return None
    object_id = item.get("id")
    if isinstance(object_id, str) and _STRIPE_ID.fullmatch(object_id):
        where = replace(where, object_id=object_id)
    kind = item.get("object")
    # Hand-written or trimmed exports may drop `object`; a pi_ id still says what it is.
    is_payment_intent = kind == "payment_intent" or (
        kind is None and isinstance(object_id, str) and object_id.startswith("pi_")
    )
    if not is_payment_intent:
        problems.add(
            Code.INVALID_VALUE,
            where,
            "object",
            f"the object is {_shown(kind)}, not a 'payment_intent'; {_JSON_HINT}",
        )
        return None
    reader = _ObjectReader(item, where, problems)
    fields: dict[str, Any] = {
        "source": source,
        "as_of": as_of,
        "payment_intent_id": reader.stripe_id("id", required=True),
        "amount": reader.amount_minor("amount", required=True),
        "amount_received": reader.amount_minor("amount_received"),
        "amount_capturable": reader.amount_minor("amount_capturable"),
        "currency": reader.currency(),
        "status": reader.text("status", required=True),
        "created_at": reader.created_at(),
        "offline_id": reader.offline_id(),
        "decline_code": reader.decline_code(),
        "livemode": item.get("livemode") if isinstance(item.get("livemode"), bool) else None,
        **reader.latest_charge(),
    }
    if reader.failed:
        return None
    try:
        return PaymentIntentObservation(**fields)
    except ValidationError as error:
        _validation_problems(error, where, problems, _AMOUNT_FIELDS, _JSON_FIELDS)
        return None


_AMOUNT_FIELDS = ("amount", "amount_received", "amount_capturable")
# PaymentIntentObservation's fields as the PaymentIntent object names them
_JSON_FIELDS = {
    "payment_intent_id": "id",
    "created_at": "created",
    "offline_id": "metadata",
    "charge_id": "latest_charge",
    "card_brand": "latest_charge.payment_method_details.card_present.brand",
    "decline_code": "last_payment_error.decline_code",
}


class _ObjectReader:
    """Reads the fields of one PaymentIntent object, adding a problem for each bad one."""

    def __init__(self, item: dict[str, Any], where: _Where, problems: _Problems) -> None:
        self.item = item
        self.where = where
        self.problems = problems
        self.failed = False

    def problem(self, code: Code, field: str, message: str) -> None:
        self.failed = True
        self.problems.add(code, self.where, field, message)

    def get(self, path: str, required: bool) -> Any:
        """The value at a dotted path; None when absent (a problem if required)."""
        value: Any = self.item
        for name in path.split("."):
            value = value.get(name) if isinstance(value, dict) else None
        if value is None and required:
            self.problem(
                Code.MISSING_FIELD, path, f"required field '{path}' is missing; {_JSON_HINT}"
            )
        return value

    def stripe_id(self, path: str, required: bool = False) -> str | None:
        value = self.get(path, required)
        if value is None or (isinstance(value, str) and _STRIPE_ID.fullmatch(value)):
            return value
        self.problem(
            Code.INVALID_VALUE, path, f"{_shown(value)} is not a Stripe id (letters, digits, _)"
        )
        return None

    def text(self, path: str, required: bool = False) -> str | None:
        value = self.get(path, required)
        if value is None or (isinstance(value, str) and value):
            return value
        self.problem(Code.INVALID_VALUE, path, f"{_shown(value)} is not a non-empty string")
        return None

    def amount_minor(self, path: str, required: bool = False) -> int | None:
        value = self.get(path, required)
        if value is None or (type(value) is int and 0 <= value <= 10**15):
            return value
        self.problem(
            Code.INVALID_AMOUNT,
            path,
            f"{_shown(value)} is not an amount: Stripe's amounts are whole numbers "
            "of minor units (1250 for 12.50 USD); export the object unchanged",
        )
        return None

    def currency(self) -> str | None:
        value = self.get("currency", True)
        if value is None:
            return None
        if isinstance(value, str) and is_currency(value.lower()):
            return value.lower()
        self.problem(
            Code.UNKNOWN_CURRENCY, "currency", f"{_shown(value)} is not an ISO 4217 currency code"
        )
        return None

    def created_at(self) -> datetime | None:
        value = self.get("created", False)
        if value is None:
            return None
        try:
            return from_unix_seconds(value)
        except MomentError as error:
            self.problem(Code.INVALID_TIMESTAMP, "created", f"{_shown(value)} {error}")
        return None

    def offline_id(self) -> str | None:
        metadata = self.get("metadata", False)
        if metadata is None:
            return None
        if not isinstance(metadata, dict):
            self.problem(Code.INVALID_VALUE, "metadata", f"{_shown(metadata)} is not an object")
            return None
        for key in OFFLINE_ID_KEYS:
            value = self.text(f"metadata.{key}") if metadata.get(key) != "" else None
            if value is not None:
                return value
        return None

    def decline_code(self) -> str | None:
        return self.text("last_payment_error.decline_code")

    def latest_charge(self) -> dict[str, Any]:
        """charge_id, and from an expanded charge the offline marker and the card brand.

        Every API version alike: since 2022-11-15 `latest_charge` (an id, or the charge when
        expanded); before, the `charges` list (all attempts, newest first, each expanded).
        The other charges and the charges' balance transactions become `related_ids`."""
        listed = self.get("charges.data", False)
        charges = [c for c in listed if isinstance(c, dict)] if isinstance(listed, list) else []
        latest = self.get("latest_charge", False)
        if isinstance(latest, dict):
            charges.insert(0, latest)
            path = "latest_charge"
        elif latest is not None or not charges:
            fields: dict[str, Any] = {"charge_id": self.stripe_id("latest_charge")}
            fields["related_ids"] = self.related(charges, fields["charge_id"])
            return fields
        else:
            path = "charges.data.0"
        # The charge that took the money, else the newest attempt.
        chosen = next((c for c in charges if c.get("status") == "succeeded"), charges[0])
        charge_id = chosen.get("id")
        if not (isinstance(charge_id, str) and _STRIPE_ID.fullmatch(charge_id)):
            self.problem(
                Code.MISSING_FIELD if charge_id is None else Code.INVALID_VALUE,
                f"{path}.id",
                f"{_shown(charge_id)} is not a charge id",
            )
            return {}
        fields = {"charge_id": charge_id, "related_ids": self.related(charges, charge_id)}
        details = chosen.get("payment_method_details")
        card_present = details.get("card_present") if isinstance(details, dict) else None
        if isinstance(card_present, dict):
            fields["offline_collected"] = any(_collected_offline(c) for c in charges)
            brand = card_present.get("brand")
            fields["card_brand"] = brand if isinstance(brand, str) and brand else None
        return fields

    def related(self, charges: list[dict[str, Any]], charge_id: str | None) -> tuple[str, ...]:
        """The charges other than `charge_id`, and every charge's balance transaction."""
        ids: list[str] = []
        for charge in charges:
            txn = charge.get("balance_transaction")
            if isinstance(txn, dict):  # expanded
                txn = txn.get("id")
            for value in (charge.get("id"), txn):
                if isinstance(value, str) and _STRIPE_ID.fullmatch(value) and value != charge_id:
                    ids.append(value)
        return tuple(dict.fromkeys(ids))


def _collected_offline(charge: dict[str, Any]) -> bool:
    """payment_method_details.card_present.offline is set: the card was read offline."""
    details = charge.get("payment_method_details")
    card_present = details.get("card_present") if isinstance(details, dict) else None
    return isinstance(card_present, dict) and card_present.get("offline") is not None
