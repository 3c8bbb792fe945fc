"""Problems found in what Stripe sent: where each is (line, object, column or field), its
code and what to do, gathered so that a file or an object is refused whole with every problem
listed, and never with a card number echoed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, NoReturn

from pydantic import ValidationError

from ledger.errors import Code, InvalidRecord, LedgerError
from ledger.pan import find_pan, quoted
from ledger.wire import shown_errors

PROBLEMS_MAX = 1_000  # problems listed per file; the count stays exact


CARD_NUMBER_MESSAGE = (
    "looks like a full card number (13-19 digits passing the Luhn check); the ledger never "
    "reads files holding card numbers: remove it from the export"
)


STRIPE_ID = re.compile(r"[A-Za-z0-9_]{3,255}")


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


@dataclass(frozen=True)
class Where:
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


class Problems:
    def __init__(self, file: str) -> None:
        self.file = file
        self.listed: list[LedgerError] = []
        self.count = 0

    def add(self, code: Code, where: Where, field: str | None, message: str) -> None:
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

    def fail(self, code: Code, where: Where, field: str | None, message: str) -> NoReturn:
        self.add(code, where, field, message)
        raise StripeFileError(self.file, self.listed, self.count)

    def raise_if_any(self) -> None:
        if self.count:
            raise StripeFileError(self.file, self.listed, self.count)


def shown(value: Any) -> str:
    """A short rendering of an offending value: digit runs masked, never a card number."""
    return quoted(value)


def pan_in(value: Any) -> str | None:
    try:
        return find_pan(value)
    except RecursionError:  # nested deeper than any PaymentIntent: refused as a whole
        return "(record)"


def validation_problems(
    error: ValidationError,
    where: Where,
    problems: Problems,
    amount_fields: tuple[str, ...],
    source_names: dict[str, str],
) -> None:
    """Limits the readers do not check themselves (lengths, ranges), from the model; a field
    is named as the file names it (`source_names`: model field -> column or field path)."""
    for detail in shown_errors(error):
        name = ".".join(str(part) for part in detail["loc"])
        field = source_names.get(name, name) or None
        code = Code.INVALID_AMOUNT if name in amount_fields else Code.INVALID_VALUE
        problems.add(code, where, field, f"{detail['msg']} (got {shown(detail['input'])})")
