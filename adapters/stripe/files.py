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
from datetime import UTC, datetime, tzinfo
from decimal import Context, Decimal, Inexact, InvalidOperation
from pathlib import Path
from typing import Any, NoReturn

from pydantic import ValidationError

from adapters.stripe.objects import (
    JSON_HINT,
    OFFLINE_ID_KEYS,
    dispute_observation,
    read_payment_intent,
)
from adapters.stripe.problems import (
    CARD_NUMBER_MESSAGE,
    STRIPE_ID,
    Problems,
    Where,
    pan_in,
    shown,
    validation_problems,
)
from ledger.bounds import DEPTH_MAX, check_value
from ledger.errors import Code, InvalidRecord
from ledger.moments import MomentError, check_moment
from ledger.money import exponent, is_currency
from ledger.observations import (
    BalanceTransactionObservation,
    DisputeObservation,
    PaymentIntentObservation,
)
from ledger.pan import holds_pan

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

_DECIMAL_TEXT = re.compile(r"[+-]?\d{1,20}(?:[.,]\d{1,20})?")  # a decimal point or comma
# Stripe's report format (UTC, no offset) or RFC 3339
_TIMESTAMP_TEXT = re.compile(
    r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:\d{2})?"
)
# Plenty of digits for any 20.20-digit amount scaled by 10**3: never rounds, and says so.
_EXACT = Context(prec=64, traps=[Inexact, InvalidOperation])


class ReportRows(list[BalanceTransactionObservation]):
    """The observations of a report file, in file order, with the number of rows skipped
    because they name no payment (payouts, adjustments)."""

    skipped: int = 0


def read_report_csv(path: Path, timezone: tzinfo | None = None) -> ReportRows:
    """Read an itemized balance or payout reconciliation report; raise StripeFileError.

    `timezone` is the one the report was run in (its `timezone` parameter): needed, and only
    used, when the file gives local times (`created`) without their UTC column."""
    problems = Problems(str(path))
    reader = _ReportReader(problems, timezone)
    reader.read(_decode(_read_bytes(path, problems), problems))
    problems.raise_if_any()
    return reader.rows


def read_payment_intents_json(path: Path) -> list[PaymentIntentObservation]:
    """Read PaymentIntents exported from the API; raise StripeFileError."""
    problems = Problems(str(path))
    return _payment_intents(_read_bytes(path, problems), problems)


def parse_payment_intents_json(data: bytes, file: str) -> list[PaymentIntentObservation]:
    """`read_payment_intents_json` for bytes already read (stdin); `file` names them."""
    return _payment_intents(data, Problems(file))


def read_disputes_json(path: Path) -> list[DisputeObservation]:
    """Read Disputes exported from the API (GET /v1/disputes: a list page, an array, one
    object, or JSON Lines): each dispute's status, which a balance report cannot tell (an
    open dispute and a lost one both show only the withdrawal); raise StripeFileError."""
    problems = Problems(str(path))
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


def _read_bytes(path: Path, problems: Problems) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        reason = error.strerror or type(error).__name__
        problems.fail(
            Code.INVALID_VALUE,
            Where(),
            None,
            f"cannot read the file ({reason}); give the path of an exported file",
        )


def _decode(data: bytes, problems: Problems) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        problems.fail(
            Code.INVALID_VALUE,
            Where(line=line),
            None,
            "the file is not UTF-8 text; export it again from Stripe without "
            "converting it (Stripe writes UTF-8)",
        )


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


# -- values -----------------------------------------------------------------------------------


def _to_minor(text: str, currency: str) -> int:
    """Exact conversion of major units as text (`"-12.50"`) to minor units; never rounds."""
    if not _DECIMAL_TEXT.fullmatch(text):
        raise ValueError(f"{shown(text)} is not a decimal amount like 12.50 or -3.00")
    places = exponent(currency)
    whole, comma, fraction = text.partition(",")
    if comma and len(fraction) > places:
        # "1,250" in USD is a thousands separator or a typo, never 12.50: refuse, never guess.
        raise ValueError(
            f"{shown(text)} has more decimals than {currency.upper()} has ({places}) after "
            "its decimal comma; amounts are never rounded: check the amount and the currency"
        )
    scaled = Decimal(f"{whole}.{fraction}" if comma else text).scaleb(places, context=_EXACT)
    if scaled != scaled.to_integral_value(context=_EXACT):
        raise ValueError(
            f"{shown(text)} has more decimals than {currency.upper()} has ({places}); "
            "amounts are never rounded: check the amount and the currency column"
        )
    minor = int(scaled)
    if abs(minor) > 10**15:
        raise ValueError(f"{shown(text)} is out of range")
    return minor


def _to_utc(text: str, zone: tzinfo = UTC) -> datetime:
    """Stripe's report timestamps (`2026-11-22 10:15:00`, in `zone`) or RFC 3339, as UTC."""
    if not _TIMESTAMP_TEXT.fullmatch(text):
        raise ValueError(
            f"{shown(text)} is not a timestamp like 2026-11-22 10:15:00 (UTC) or RFC 3339"
        )
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{shown(text)} is not a valid date and time") from None
    try:
        moment = check_moment(parsed.replace(tzinfo=zone) if parsed.tzinfo is None else parsed)
    except MomentError as error:
        raise ValueError(f"{shown(text)} {error}") from None
    return moment.astimezone(UTC)


# -- the itemized report (CSV) ----------------------------------------------------------------


_LATER_FIELDS = frozenset(
    {"payout_id", "payout_at", "customer_facing_amount", "customer_facing_currency"}
)


class _ReportReader:
    def __init__(self, problems: Problems, timezone: tzinfo | None) -> None:
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
                    Where(line=line),
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
        where = Where(line=1, kind="column")
        self.header = [cell.strip() for cell in cells]
        for index, name in enumerate(self.header):
            if holds_pan(name):
                self.problems.add(
                    Code.CARD_NUMBER_DETECTED, where, f"#{index + 1}", CARD_NUMBER_MESSAGE
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
        where = Where(line=line, kind="column")
        # Cell by cell: the cells of a row joined would read as one long number.
        index = next((i for i, cell in enumerate(cells) if holds_pan(cell)), None)
        if index is not None:
            column = self.header[index] if index < len(self.header) else f"#{index + 1}"
            self.problems.add(Code.CARD_NUMBER_DETECTED, where, column, CARD_NUMBER_MESSAGE)
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
            if value is not None and not STRIPE_ID.fullmatch(value):
                self.problems.add(
                    Code.INVALID_VALUE,
                    where,
                    column,
                    f"{shown(value)} is not a Stripe id (letters, digits, _)",
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
                f"{shown(values['currency'])} is not an ISO 4217 currency code",
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
            validation_problems(
                error,
                where,
                self.problems,
                AMOUNT_COLUMNS,
                {"offline_id": offline_id_column or "", "created_at": timestamp_column or ""},
            )

    def moment(
        self,
        where: Where,
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

    def customer_facing(self, where: Where, values: dict[str, str], fields: dict[str, Any]) -> None:
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
                f"{shown(currency)} is not an ISO 4217 currency code",
            )
            return
        fields["customer_facing_currency"] = currency
        fields["customer_facing_amount"] = self.amount(
            where, "customer_facing_amount", text, currency
        )

    def amount(self, where: Where, column: str, text: str, currency: str) -> int | None:
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


def _payment_intents(data: bytes, problems: Problems) -> list[PaymentIntentObservation]:
    text = _decode(data, problems)
    observations = []
    for where, item in _json_items(text, problems):
        observation = read_payment_intent(where, item, problems, "json_file", None)
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


def _json_items(text: str, problems: Problems) -> Iterator[tuple[Where, Any]]:
    """The objects of a list page, an array, one object, or JSON Lines, with where each is;
    lazily, so that problems come in file order."""
    if not text.strip():
        problems.fail(Code.MALFORMED_JSON, Where(), None, f"the file is empty; {JSON_HINT}")
    try:
        document = _loads(text)
    except ValueError as error:
        lines = text.split("\n")  # JSON Lines ends lines with \n only
        first = next(line for line in lines if line.strip())
        if first.lstrip().startswith("{") and _parses(first):
            yield from _json_lines(lines, problems)
            return
        _malformed(problems, Where(), text, f"not valid JSON ({error}); {JSON_HINT}")
        return
    if isinstance(document, list):
        yield from ((Where(item=f"[{index}]"), item) for index, item in enumerate(document))
    elif isinstance(document, dict) and document.get("object") in ("list", "search_result"):
        items = document.get("data")
        if not isinstance(items, list):
            problems.fail(
                Code.INVALID_VALUE,
                Where(),
                "data",
                f"a list page needs a 'data' array; {JSON_HINT}",
            )
        yield from ((Where(item=f"data[{index}]"), item) for index, item in enumerate(items))
    else:
        yield Where(item="the object"), document


def _parses(text: str) -> bool:
    try:
        _loads(text)
    except ValueError:
        return False
    return True


def _json_lines(lines: list[str], problems: Problems) -> Iterator[tuple[Where, Any]]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = Where(line=number)
        try:
            yield where, _loads(line)
        except ValueError as error:
            _malformed(
                problems,
                where,
                line,
                f"not valid JSON ({error}); each line must hold one PaymentIntent",
            )


def _malformed(problems: Problems, where: Where, text: str, message: str) -> None:
    """Text that is not JSON is still searched for a card number, to refuse it as such."""
    if pan_in(text) is not None:
        problems.add(Code.CARD_NUMBER_DETECTED, where, None, CARD_NUMBER_MESSAGE)
    else:
        problems.add(Code.MALFORMED_JSON, where, None, message)
