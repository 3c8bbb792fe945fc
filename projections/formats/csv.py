"""The report as CSV: one line per row, the columns of `COLUMNS` (README documents them)."""

from __future__ import annotations

import csv
import io
from typing import TextIO

from projections.formats.values import Field, row_fields
from projections.report import COLUMNS, Report


def write_csv(report: Report, out: TextIO) -> None:
    """Streamed row by row: a million-row report never exists as one string."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    if report.csv_lines is not None:
        report.csv_lines(out)
        return
    for row in report.rows:
        writer.writerow(_cell(value) for value in row_fields(row).values())


def render_csv(report: Report) -> str:
    out = io.StringIO()
    write_csv(report, out)
    return out.getvalue()


def _cell(value: Field) -> str | int:
    if value is None:
        return ""
    if isinstance(value, list):
        return ";".join(value)
    return value
