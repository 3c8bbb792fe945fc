"""The renderers of the reconciliation report (DESIGN §7): CSV and JSON for machines, an HTML
page for finance, a table for the terminal. Reports are built by hand, row by row."""

from __future__ import annotations

import csv
import html
import io
import json
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from projections.formats import FORMATS, render
from projections.formats.csv import render_csv
from projections.formats.html import EXPLANATIONS, render_html
from projections.formats.json import render_json
from projections.formats.table import EXCEPTION_ROWS_MAX, render_table
from projections.report import AGE_BUCKETS, COLUMNS, EXCEPTIONS, Category, Report, Row

AS_OF = datetime(2026, 11, 23, 12, 45, tzinfo=UTC)
SCRIPT = "<script>alert(1)</script>"


def sale(category: Category, number: int, amount: int, currency: str, **changes: Any) -> Row:
    """A ledger payment stored `age_hours` (default 26.5) before AS_OF on tmr_1 at loc_1."""
    age_seconds = changes.pop("age_seconds", 95_400)
    row = Row(
        category=category,
        offline_id=f"00000000-0000-4000-8000-{number:012d}",
        location_id="loc_1",
        device_id="tmr_1",
        amount=amount,
        currency=currency,
        ledger_status="forwarded",
        payment_intent_ids=(f"pi_{number}",),
        stripe_amount=amount,
        stripe_currency=currency,
        stripe_status="succeeded",
        stored_at=AS_OF - timedelta(seconds=age_seconds),
        forwarded_at=None,
        age_seconds=age_seconds,
        amount_at_risk=0,
    )
    return replace(row, **changes)


ORPHAN = Row(
    category=Category.ORPHAN_IN_STRIPE, offline_id=None, location_id=SCRIPT, device_id=None,
    amount=None, currency=None, ledger_status=None, payment_intent_ids=("pi_orphan",),
    stripe_amount=700, stripe_currency="usd", stripe_status="succeeded",
    stored_at=None, forwarded_at=None, age_seconds=None, amount_at_risk=0,
)

DUPLICATE = sale(
    Category.DUPLICATE, 7, 1250, "usd", payment_intent_ids=("pi_7a", "pi_7b"),
    stored_at=datetime(2026, 11, 22, 10, 15, tzinfo=UTC),
    forwarded_at=datetime(2026, 11, 22, 12, 20, 30, tzinfo=timezone(timedelta(hours=2))),
    age_seconds=95_400, amount_at_risk=1250,
)

ROWS = [
    sale(Category.MATCHED, 1, 1250, "usd"),
    sale(Category.MATCHED, 2, 4999, "eur", location_id="loc_2", device_id="tmr_2"),
    sale(Category.PENDING_FORWARD, 3, 1000, "jpy", ledger_status="stored",
         payment_intent_ids=(), stripe_amount=None, stripe_currency=None, stripe_status=None,
         age_seconds=7_200, amount_at_risk=1000),
    sale(Category.STALE_FORWARD, 4, 1250, "kwd", ledger_status="stored",
         payment_intent_ids=(), stripe_amount=None, stripe_currency=None, stripe_status=None,
         age_seconds=30 * 3600, amount_at_risk=1250),
    sale(Category.AWAITING_CAPTURE, 5, 2000, "usd", stripe_status="requires_capture"),
    sale(Category.CAPTURE_OVERDUE, 6, 3000, "usd", stripe_status="requires_capture",
         age_seconds=6 * 24 * 3600),
    DUPLICATE,
    sale(Category.DECLINED, 8, 500, "usd", ledger_status="declined",
         stripe_status="requires_payment_method", age_seconds=3 * 24 * 3600,
         amount_at_risk=500),
    sale(Category.AMOUNT_MISMATCH, 9, 2000, "eur", stripe_amount=2100),
    sale(Category.MISSING_IN_STRIPE, 10, 500, "jpy", payment_intent_ids=("pi_10",),
         stripe_amount=None, stripe_currency=None, stripe_status=None),
    ORPHAN,
    sale(Category.CANCELED, 11, 999, "usd", ledger_status="canceled", stripe_status="canceled",
         age_seconds=9 * 24 * 3600),
]

REPORT = Report(AS_OF, ROWS, {"location": "loc_1", "since": "2026-11-01"})
EMPTY = Report(AS_OF, [])


def csv_lines(report: Report) -> list[list[str]]:
    return list(csv.reader(io.StringIO(render_csv(report))))


def row_by_id(report_json: dict[str, Any], offline_id: str | None) -> dict[str, Any]:
    (row,) = [row for row in report_json["rows"] if row["offline_id"] == offline_id]
    return dict(row)


# CSV


def test_csv_columns_come_in_the_documented_order() -> None:
    assert csv_lines(REPORT)[0] == list(COLUMNS)


def test_csv_has_one_line_per_row_and_ends_lines_with_a_bare_newline() -> None:
    text = render_csv(REPORT)
    assert "\r" not in text
    assert text.endswith("\n")
    assert len(text.splitlines()) == 1 + len(ROWS)


def test_csv_cells_hold_minor_units_utc_times_with_z_and_semicolon_joined_ids() -> None:
    line = next(line for line in csv_lines(REPORT) if line[0] == DUPLICATE.offline_id)
    assert dict(zip(COLUMNS, line, strict=True)) == {
        "offline_id": "00000000-0000-4000-8000-000000000007",
        "location_id": "loc_1",
        "device_id": "tmr_1",
        "amount": "1250",
        "currency": "usd",
        "category": "duplicate",
        "ledger_status": "forwarded",
        "payment_intent_ids": "pi_7a;pi_7b",
        "stripe_amount": "1250",
        "stripe_currency": "usd",
        "stripe_status": "succeeded",
        "stored_at": "2026-11-22T10:15:00Z",
        "forwarded_at": "2026-11-22T10:20:30Z",  # written at +02:00, reported in UTC
        "age_hours": "26.5",
        "amount_at_risk": "1250",
    }


def test_csv_leaves_a_cell_empty_where_the_value_is_missing() -> None:
    line = next(line for line in csv_lines(REPORT) if line[COLUMNS.index("category")]
                == "orphan_in_stripe")
    cells = dict(zip(COLUMNS, line, strict=True))
    for column in ("offline_id", "device_id", "amount", "currency", "ledger_status",
                   "stored_at", "forwarded_at", "age_hours"):
        assert cells[column] == "", column
    assert (cells["stripe_amount"], cells["stripe_currency"]) == ("700", "usd")
    assert cells["location_id"] == SCRIPT  # data for machines is written as it is
    assert cells["amount_at_risk"] == "0"


def test_csv_parses_back_to_the_values_of_the_rows() -> None:
    parsed = list(csv.DictReader(io.StringIO(render_csv(REPORT))))

    def text(value: object) -> str:
        if value is None:
            return ""
        if isinstance(value, datetime):
            return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return str(value)

    assert len(parsed) == len(ROWS)
    for line, row in zip(parsed, ROWS, strict=True):
        assert line == {
            "offline_id": text(row.offline_id), "location_id": text(row.location_id),
            "device_id": text(row.device_id), "amount": text(row.amount),
            "currency": text(row.currency), "category": row.category.value,
            "ledger_status": text(row.ledger_status),
            "payment_intent_ids": ";".join(row.payment_intent_ids),
            "stripe_amount": text(row.stripe_amount),
            "stripe_currency": text(row.stripe_currency),
            "stripe_status": text(row.stripe_status), "stored_at": text(row.stored_at),
            "forwarded_at": text(row.forwarded_at), "age_hours": text(row.age_hours),
            "amount_at_risk": text(row.amount_at_risk),
        }


def test_csv_of_an_empty_report_is_the_header_alone() -> None:
    assert render_csv(EMPTY) == ",".join(COLUMNS) + "\n"


# JSON


def test_json_rows_carry_the_csv_fields_with_lists_integers_and_rfc3339_times() -> None:
    document = json.loads(render_json(REPORT))
    assert document["as_of"] == "2026-11-23T12:45:00Z"
    assert document["filters"] == {"location": "loc_1", "since": "2026-11-01"}
    assert all(list(row) == list(COLUMNS) for row in document["rows"])
    assert row_by_id(document, DUPLICATE.offline_id) == {
        "offline_id": DUPLICATE.offline_id, "location_id": "loc_1", "device_id": "tmr_1",
        "amount": 1250, "currency": "usd", "category": "duplicate", "ledger_status": "forwarded",
        "payment_intent_ids": ["pi_7a", "pi_7b"], "stripe_amount": 1250,
        "stripe_currency": "usd", "stripe_status": "succeeded",
        "stored_at": "2026-11-22T10:15:00Z", "forwarded_at": "2026-11-22T10:20:30Z",
        "age_hours": "26.5", "amount_at_risk": 1250,
    }
    orphan = row_by_id(document, None)
    assert (orphan["amount"], orphan["currency"], orphan["age_hours"]) == (None, None, None)
    assert orphan["payment_intent_ids"] == ["pi_orphan"]


def test_json_summary_totals_equal_the_sums_over_its_rows() -> None:
    document = json.loads(render_json(REPORT))
    expected: dict[str, dict[str, dict[str, int]]] = {}
    for row in document["rows"]:
        currency = row["currency"] or row["stripe_currency"] or ""
        amount = row["amount"] if row["amount"] is not None else row["stripe_amount"]
        totals = expected.setdefault(row["category"], {}).setdefault(
            currency, {"count": 0, "amount": 0})
        totals["count"] += 1
        totals["amount"] += amount
    assert document["summary"] == expected
    assert set(document["summary"]) == {category.value for category in Category}
    assert document["summary"]["orphan_in_stripe"] == {"usd": {"count": 1, "amount": 700}}
    assert document["summary"]["matched"] == {"eur": {"count": 1, "amount": 4999},
                                              "usd": {"count": 1, "amount": 1250}}


def test_json_at_risk_equals_the_sum_of_amount_at_risk_per_currency() -> None:
    document = json.loads(render_json(REPORT))
    expected: dict[str, int] = {}
    for row in document["rows"]:
        if row["amount_at_risk"]:
            currency = row["currency"] or row["stripe_currency"]
            expected[currency] = expected.get(currency, 0) + row["amount_at_risk"]
    assert document["at_risk"] == expected == {"jpy": 1000, "kwd": 1250, "usd": 1750}


def test_json_money_at_risk_by_age_runs_from_the_youngest_bucket_to_the_oldest() -> None:
    document = json.loads(render_json(REPORT))
    assert document["at_risk_by_age"] == {
        "< 24 h": {"jpy": 1000},
        "1-2 days": {"kwd": 1250, "usd": 1250},
        "2-7 days": {"usd": 500},
    }
    labels = [label for label, _ in AGE_BUCKETS]
    assert list(document["at_risk_by_age"]) == sorted(document["at_risk_by_age"],
                                                      key=labels.index)


def test_json_breaks_totals_down_by_location_device_and_day() -> None:
    document = json.loads(render_json(REPORT))
    assert document["by_location"]["loc_2"] == {"eur": {"count": 1, "amount": 4999}}
    assert document["by_location"][SCRIPT] == {"usd": {"count": 1, "amount": 700}}
    assert document["by_device"]["(unknown)"] == {"usd": {"count": 1, "amount": 700}}
    assert document["by_day"]["(unknown)"] == {"usd": {"count": 1, "amount": 700}}
    # matched 12.50, awaiting capture 20.00 and the duplicate 12.50, all stored that day
    assert document["by_day"]["2026-11-22"]["usd"] == {"count": 3, "amount": 4500}


def test_json_output_is_deterministic_and_indented() -> None:
    text = render_json(REPORT)
    assert text == render_json(Report(AS_OF, list(ROWS), dict(reversed(REPORT.filters.items()))))
    assert text.startswith('{\n  "as_of"')


def test_json_of_an_empty_report_has_empty_totals_and_no_rows() -> None:
    document = json.loads(render_json(EMPTY))
    assert document["rows"] == [] and document["summary"] == {} and document["at_risk"] == {}


# HTML


def test_html_shows_the_exception_sections_in_the_documented_order() -> None:
    page = render_html(REPORT)
    positions = [page.index(f'<section id="{category.value}">') for category in EXCEPTIONS]
    assert positions == sorted(positions)
    assert positions[-1] < page.index('<section id="totals">')


def test_html_explains_each_exception_and_lists_its_rows() -> None:
    page = render_html(REPORT)
    for category in EXCEPTIONS:
        section = page.split(f'<section id="{category.value}">')[1].split("</section>")[0]
        assert EXPLANATIONS[category] in html.unescape(section)
        for row in ROWS:
            if row.category == category and row.offline_id:
                assert row.offline_id in section
    duplicate = page.split('<section id="duplicate">')[1].split("</section>")[0]
    assert "pi_7a, pi_7b" in duplicate and "12.50 USD" in duplicate


def test_html_shows_the_as_of_time_the_filters_and_formatted_totals() -> None:
    page = render_html(REPORT)
    assert "As of 2026-11-23 12:45 UTC" in page
    assert "location loc_1" in page and "since 2026-11-01" in page
    for amount in ("12.50 USD", "49.99 EUR", "1,000 JPY", "1.250 KWD", "7.00 USD"):
        assert amount in page


def test_html_draws_inline_svg_bars_with_whole_pixel_lengths() -> None:
    page = render_html(REPORT)
    assert "<svg" in page
    assert 'aria-label="Money at risk by age, USD"' in page
    widths = [int(width) for width in re.findall(r'<rect [^>]*width="(\d+)"', page)]
    assert widths and max(widths) == 360


def test_html_escapes_a_malicious_location_id() -> None:
    page = render_html(REPORT)
    assert SCRIPT not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script" not in page


def test_html_is_self_contained() -> None:
    page = render_html(REPORT)
    assert "http://" not in page and "https://" not in page
    assert "<link" not in page and "src=" not in page


def test_html_says_plainly_when_the_report_has_no_rows() -> None:
    page = render_html(EMPTY)
    assert "No payments match this report" in page
    assert "No filters" in page


def test_html_says_when_nothing_needs_action() -> None:
    page = render_html(Report(AS_OF, [sale(Category.MATCHED, 1, 1250, "usd")]))
    assert "No exceptions: nothing needs action." in page
    assert "No money is at risk." in page


# Terminal table


def test_table_mentions_each_category_present_and_its_formatted_amounts() -> None:
    text = render_table(REPORT)
    assert "Reconciliation report as of 2026-11-23 12:45 UTC" in text
    for label in ("Matched", "Pending forward", "Stale forward", "Awaiting capture",
                  "Capture overdue", "Declined", "Duplicate", "Amount mismatch",
                  "Missing in stripe", "Orphan in stripe", "Canceled"):
        assert label in text
    for amount in ("12.50 USD", "1,000 JPY", "1.250 KWD", "49.99 EUR", "17.50 USD"):
        assert amount in text


def test_table_is_plain_text_without_ansi_codes() -> None:
    text = render_table(REPORT)
    assert "\x1b" not in text
    assert SCRIPT in text  # shown as text, not read as rich markup


def test_table_lists_at_most_50_exception_rows_and_says_how_many_more() -> None:
    declined = [sale(Category.DECLINED, number, 100, "usd") for number in range(60)]
    text = render_table(Report(AS_OF, declined))
    shown = [number for number in range(60) if f"-{number:012d}" in text]
    assert shown == list(range(EXCEPTION_ROWS_MAX))
    assert "… and 10 more exception rows" in text


def test_table_of_an_empty_report_says_there_is_nothing_to_reconcile() -> None:
    assert "No payments match: nothing to reconcile." in render_table(EMPTY)


# All formats


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_renders_a_row_without_any_currency(fmt: str) -> None:
    bare = replace(ORPHAN, stripe_currency=None, location_id="loc_3")
    text = render(Report(AS_OF, [bare]), fmt)
    assert "loc_3" in text


def test_render_dispatches_on_the_format_name() -> None:
    assert render(REPORT, "csv") == render_csv(REPORT)
    assert render(REPORT, "json") == render_json(REPORT)
    assert render(REPORT, "html") == render_html(REPORT)
    assert render(REPORT, "table") == render_table(REPORT)


def test_render_refuses_an_unknown_format_and_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="table, csv, json, html"):
        render(REPORT, "xlsx")
