"""The renderers of the reconciliation report: CSV and JSON for machines, an HTML
page for finance, a table for the terminal. Reports are built by hand, row by row."""

from __future__ import annotations

import csv
import html
import io
import json
import re
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any

import pytest

from projections.formats import FORMATS, render
from projections.formats.charts import ACTION, SETTLED, WAITING
from projections.formats.csv import render_csv
from projections.formats.html import (
    AT_RISK_RULES,
    EXPLANATIONS,
    LEDGER_STATUSES,
    STRIPE_STATUSES,
    render_html,
)
from projections.formats.json import render_json
from projections.formats.table import EXCEPTION_ROWS_MAX, render_table
from projections.formats.values import age, category_label, money
from projections.report import AGE_BUCKETS, COLUMNS, EXCEPTIONS, Category, Report, Row
from tests.support.sample_report import (
    AS_OF,
    DUPLICATE,
    EMPTY,
    ORPHAN,
    REPORT,
    ROWS,
    SCRIPT,
    THRESHOLDS,
    sale,
)


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
        "refunded_amount": "0",
        "disputed_amount": "0",
        "dispute_status": "",
        "settlement_amount": "",
        "settlement_currency": "",
        "stripe_fee": "",
        "stripe_net": "",
        "payout_id": "",
        "payout_date": "",
        "breaches": "",
    }


def test_csv_leaves_a_cell_empty_where_the_value_is_missing() -> None:
    line = next(
        line for line in csv_lines(REPORT) if line[COLUMNS.index("category")] == "orphan_in_stripe"
    )
    cells = dict(zip(COLUMNS, line, strict=True))
    for column in (
        "offline_id",
        "device_id",
        "amount",
        "currency",
        "ledger_status",
        "stored_at",
        "forwarded_at",
        "age_hours",
    ):
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
            "offline_id": text(row.offline_id),
            "location_id": text(row.location_id),
            "device_id": text(row.device_id),
            "amount": text(row.amount),
            "currency": text(row.currency),
            "category": row.category.value,
            "ledger_status": text(row.ledger_status),
            "payment_intent_ids": ";".join(row.payment_intent_ids),
            "stripe_amount": text(row.stripe_amount),
            "stripe_currency": text(row.stripe_currency),
            "stripe_status": text(row.stripe_status),
            "stored_at": text(row.stored_at),
            "forwarded_at": text(row.forwarded_at),
            "age_hours": text(row.age_hours),
            "amount_at_risk": text(row.amount_at_risk),
            "refunded_amount": text(row.refunded_amount),
            "disputed_amount": text(row.disputed_amount),
            "dispute_status": text(row.dispute_status),
            "settlement_amount": text(row.settlement_amount),
            "settlement_currency": text(row.settlement_currency),
            "stripe_fee": text(row.stripe_fee),
            "stripe_net": text(row.stripe_net),
            "payout_id": text(row.payout_id),
            "payout_date": text(row.payout_at.date() if row.payout_at else None),
            "breaches": ";".join(row.breaches),
        }


def test_csv_of_an_empty_report_is_the_header_alone() -> None:
    assert render_csv(EMPTY) == ",".join(COLUMNS) + "\n"


# JSON


def test_json_rows_carry_the_csv_fields_with_lists_integers_and_rfc3339_times() -> None:
    document = json.loads(render_json(REPORT))
    assert document["as_of"] == "2026-11-23T12:45:00Z"
    assert document["filters"] == {"location": "loc_1", "since": "2026-11-01"}
    assert all(list(row) == [*COLUMNS, "flagged"] for row in document["rows"])
    assert row_by_id(document, DUPLICATE.offline_id) == {
        "offline_id": DUPLICATE.offline_id,
        "location_id": "loc_1",
        "device_id": "tmr_1",
        "amount": 1250,
        "currency": "usd",
        "category": "duplicate",
        "ledger_status": "forwarded",
        "payment_intent_ids": ["pi_7a", "pi_7b"],
        "stripe_amount": 1250,
        "stripe_currency": "usd",
        "stripe_status": "succeeded",
        "stored_at": "2026-11-22T10:15:00Z",
        "forwarded_at": "2026-11-22T10:20:30Z",
        "age_hours": 26.5,
        "amount_at_risk": 1250,
        "refunded_amount": 0,
        "disputed_amount": 0,
        "dispute_status": None,
        "settlement_amount": None,
        "settlement_currency": None,
        "stripe_fee": None,
        "stripe_net": None,
        "payout_id": None,
        "payout_date": None,
        "breaches": [],
        "flagged": False,
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
            currency, {"count": 0, "amount": 0}
        )
        totals["count"] += 1
        totals["amount"] += amount
    assert document["summary"] == expected
    assert set(document["summary"]) == {category.value for category in Category}
    assert document["summary"]["orphan_in_stripe"] == {"usd": {"count": 1, "amount": 700}}
    assert document["summary"]["matched"] == {
        "eur": {"count": 1, "amount": 4999},
        "usd": {"count": 1, "amount": 1250},
    }


def test_json_at_risk_equals_the_sum_of_amount_at_risk_per_currency() -> None:
    document = json.loads(render_json(REPORT))
    expected: dict[str, int] = {}
    for row in document["rows"]:
        if row["amount_at_risk"]:
            currency = row["currency"] or row["stripe_currency"]
            expected[currency] = expected.get(currency, 0) + row["amount_at_risk"]
    assert document["at_risk"] == expected == {"eur": 900, "jpy": 1500, "kwd": 1250, "usd": 7250}


def test_json_money_at_risk_by_age_runs_from_the_youngest_bucket_to_the_oldest() -> None:
    document = json.loads(render_json(REPORT))
    assert document["at_risk_by_age"] == {
        "< 24 h": {"jpy": 1000},
        "1-2 days": {"eur": 100, "jpy": 500, "kwd": 1250, "usd": 1250},
        "2-7 days": {"eur": 800, "usd": 6000},
    }
    labels = [label for label, _ in AGE_BUCKETS]
    assert list(document["at_risk_by_age"]) == sorted(document["at_risk_by_age"], key=labels.index)


def test_json_breaks_totals_down_by_location_device_and_day() -> None:
    document = json.loads(render_json(REPORT))
    orphan = {"count": 1, "amount": 700, "exceptions": 1, "matched": 0, "at_risk": 0}
    assert document["by_location"]["loc_2"] == {
        "eur": {"count": 1, "amount": 4999, "exceptions": 0, "matched": 4999, "at_risk": 0}
    }
    assert document["by_location"][SCRIPT] == {"usd": orphan}
    assert document["by_device"]["(unknown)"] == {"usd": orphan}
    assert document["by_day"]["(unknown)"] == {"usd": orphan}
    # matched 12.50, awaiting capture 20.00 and the duplicate 12.50, all stored that day
    assert document["by_day"]["2026-11-22"]["usd"] == {
        "count": 3,
        "amount": 4500,
        "exceptions": 1,
        "matched": 1250,
        "at_risk": 1250,
    }


def test_json_breakdowns_agree_with_the_rows_field_by_field() -> None:
    document = json.loads(render_json(REPORT))
    for location, by_currency in document["by_location"].items():
        for currency, totals in by_currency.items():
            rows = [
                row
                for row in document["rows"]
                if (row["location_id"] or "(unknown)") == location
                and (row["currency"] or row["stripe_currency"]) == currency
            ]
            assert totals["count"] == len(rows)
            assert totals["at_risk"] == sum(row["amount_at_risk"] for row in rows)
            assert totals["exceptions"] == sum(Category(r["category"]) in EXCEPTIONS for r in rows)


def test_json_output_is_deterministic_and_indented() -> None:
    text = render_json(REPORT)
    assert text == render_json(
        Report(
            AS_OF,
            list(ROWS),
            dict(reversed(REPORT.filters.items())),
            dict(reversed(THRESHOLDS.items())),
        )
    )
    assert text.startswith('{\n  "as_of"')


def test_json_carries_the_thresholds_next_to_the_filters() -> None:
    document = json.loads(render_json(REPORT))
    assert document["thresholds"] == {
        "stale_after_hours": 24,
        "capture_window_default_hours": 48,
        "capture_warning_hours": 12,
        "capture_window_visa_hours": 114,
    }
    halves = Report(AS_OF, [], thresholds={"capture_warning_hours": "1.5"})
    assert json.loads(render_json(halves))["thresholds"] == {"capture_warning_hours": 1.5}
    keys = list(document)
    assert keys.index("thresholds") == keys.index("filters") + 1
    assert json.loads(render_json(EMPTY))["thresholds"] == {}


def test_json_of_an_empty_report_has_empty_totals_and_no_rows() -> None:
    document = json.loads(render_json(EMPTY))
    assert document["rows"] == [] and document["summary"] == {} and document["at_risk"] == {}


# HTML


def test_html_shows_the_exception_sections_in_the_documented_order() -> None:
    page = render_html(REPORT)
    positions = [page.index(f'<section id="{category.value}">') for category in EXCEPTIONS]
    assert positions == sorted(positions)
    assert positions[-1] < page.index('<section id="totals">')


def test_html_lists_what_can_still_be_saved_first() -> None:
    page = render_html(REPORT)
    anchors = re.findall(r'<section id="([a-z_]+)">', page)
    order = [Category(anchor) for anchor in anchors if anchor in set(Category)]
    assert order[:3] == [Category.CAPTURE_OVERDUE, Category.STALE_FORWARD, Category.DISPUTED]
    assert order.index(Category.DUPLICATE) < order.index(Category.DECLINED)
    assert order[-2:] == [Category.DISPUTE_LOST, Category.PENDING_FORWARD]


def row_ids(section: str) -> list[str]:
    return re.findall(r'<span class="id">([^<]*)</span>', section)


def test_html_orders_rows_within_a_section_by_deadline_age_or_money_not_by_id() -> None:
    overdue = [
        sale(
            Category.CAPTURE_OVERDUE,
            number,
            1000,
            "usd",
            forwarded_at=AS_OF - timedelta(hours=hours),
            card_brand=brand,
            amount_at_risk=1000,
        )
        # Visa lapses 114 hours after forwarding, the others 48: 1 lapses in 4 hours,
        # 2 in 10, 3 lapsed 2 hours ago
        for number, hours, brand in ((1, 110, "visa"), (2, 38, "mastercard"), (3, 50, None))
    ]
    stale = [
        sale(Category.STALE_FORWARD, n, 100, "usd", age_seconds=hours * 3600, amount_at_risk=100)
        for n, hours in ((4, 30), (5, 90), (6, 40))
    ]
    declined = [
        sale(Category.DECLINED, n, amount, "usd", amount_at_risk=amount)
        for n, amount in ((7, 500), (8, 9000), (9, 700))
    ]
    page = render_html(Report(AS_OF, [*overdue, *stale, *declined], thresholds=THRESHOLDS))
    overdue_ids = row_ids(section_of(page, '<section id="capture_overdue">'))
    assert [i[-1] for i in overdue_ids] == ["3", "1", "2"]  # the earliest deadline first
    stale_ids = row_ids(section_of(page, '<section id="stale_forward">'))
    assert [i[-1] for i in stale_ids] == ["5", "6", "4"]  # the longest stored first
    declined_ids = row_ids(section_of(page, '<section id="declined">'))
    assert [i[-1] for i in declined_ids] == ["8", "9", "7"]  # the most money first


def test_html_gives_an_overdue_capture_its_deadline_and_the_time_left() -> None:
    overdue = section_of(render_html(REPORT), '<section id="capture_overdue">')
    assert '<th class="deadline">Capture by' in overdue
    # forwarded 5 days before AS_OF, Visa's 114 hours: lapsed 6 hours ago
    assert (
        '<td class="when deadline" data-label="Capture by">2026-11-23 06:45 UTC'
        '<span class="sub">6.0 h ago</span></td>'
    ) in overdue
    later = Report(AS_OF - timedelta(hours=10), ROWS, thresholds=THRESHOLDS)
    assert '<span class="sub">in 4.0 h</span>' in render_html(later)
    assert "deadline" not in section_of(render_html(REPORT), '<section id="declined">')


def test_html_lists_the_payments_still_stored_on_readers_in_their_own_section() -> None:
    page = render_html(REPORT)
    stored = section_of(page, '<section id="pending_forward">')
    assert "<h2>Still stored on readers (1)</h2>" in stored
    assert "00000000-0000-4000-8000-000000000003" in stored
    # stored 2 hours ago, stale after 24: in 22 hours
    assert '2026-11-24 10:45 UTC<span class="sub">in 22.0 h</span>' in stored
    headline = section_of(page, 'id="headline">', '<section id="exceptions">')
    assert '<a href="#pending_forward">still stored on readers</a>: 1 payment, 1,000 JPY' in (
        headline
    )


def test_html_lists_every_row_with_money_at_risk_so_the_headline_adds_up() -> None:
    page = render_html(REPORT)
    rows = section_of(page, '<section id="exceptions">', '<section id="totals">')
    listed = re.findall(r'<td class="num" data-label="At risk">([^<]*)</td>', rows)
    expected = [money(row.amount_at_risk, row.risk_currency) for row in ROWS if row.amount_at_risk]
    assert sorted(cell for cell in listed if cell != "—") == sorted(expected)


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


def chart_bars(page: str, title: str) -> dict[str, tuple[int, str, str]]:
    """{label: (length per mille, colour, value)} of the chart titled `title`."""
    chart = section_of(page, f'<figure class="chart" role="img" aria-label="{title}">', "</figure>")
    bars = re.findall(
        r'<span class="label">([^<]*)</span><span class="track"><span class="fill" '
        r'style="width: ([\d.]+)%; background: ([^"]+)"></span></span>'
        r'<span class="value">([^<]*)</span>',
        chart,
    )
    return {
        html.unescape(label): (round(float(width) * 10), colour, html.unescape(value))
        for label, width, colour, value in bars
    }


def test_html_draws_bars_each_chart_on_its_own_scale() -> None:
    many = [sale(Category.MATCHED, n, 100, "usd") for n in range(100, 400)]
    page = render_html(Report(AS_OF, [*ROWS, *many], thresholds=THRESHOLDS))
    exceptions = chart_bars(page, "Rows needing action, per category")
    # one row each: every bar spans the chart, not a sliver beside 302 matched rows
    assert {label: length for label, (length, _, _) in exceptions.items()} == {
        category_label(category): 1000 for category in EXCEPTIONS
    }
    others = chart_bars(page, "Other rows, per category")
    assert others["Matched"][0] == 1000 and others["Matched"][2] == "302"
    assert others["Canceled"][0] == 5  # one row beside 302 still shows
    assert "<svg" not in page


def test_html_charts_money_at_risk_by_age_card_brand_and_location_per_currency() -> None:
    page = render_html(REPORT)
    by_age = chart_bars(page, "Money at risk by age, USD")
    assert list(by_age) == [label for label, _ in AGE_BUCKETS]
    assert by_age["2-7 days"] == (1000, "#d35400", "60.00 USD")
    assert by_age["> 7 days"][0] == 0
    brands = chart_bars(page, "Money at risk by card brand, USD")
    assert list(brands) == ["Unknown", "Visa", "Mastercard"]  # largest first
    assert brands["Visa"][2] == "30.00 USD" and brands["Mastercard"][2] == "5.00 USD"
    assert brands["Unknown"][2] == "37.50 USD"
    locations = chart_bars(page, "Money at risk by location, USD")
    assert locations == {
        "loc_1": (1000, "#d35400", "47.50 USD"),
        "loc_3": (1000 * 2500 // 4750, "#d35400", "25.00 USD"),
    }
    assert "Money at risk by location, JPY" in page and "Money at risk by card brand, EUR" in page


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


def section_of(page: str, start: str, end: str = "</section>") -> str:
    assert start in page, start
    return page.split(start, 1)[1].split(end, 1)[0]


class _Tables(HTMLParser):
    """The text of every cell of every table, row by row (a cell's tags are dropped), as a
    wide screen shows them (without the cells only a phone shows, `td.phone`)."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th") and ("class", "phone") not in attrs:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def tables_in(fragment: str) -> list[list[list[str]]]:
    parser = _Tables()
    parser.feed(fragment)
    return parser.tables


def grouped_lines(table: list[list[str]], width: int, spanned: int = 1) -> list[list[str]]:
    """The body lines of a table whose first `spanned` cells span lines (rowspan), each
    made whole."""
    lines: list[list[str]] = []
    for cells in table[1:]:
        if len(cells) < width:
            cells = [*lines[-1][:spanned], *cells]
        assert len(cells) == width, cells
        lines.append(cells)
    return lines


def test_html_headline_gives_the_exception_rows_the_money_at_risk_and_the_matches() -> None:
    page = render_html(REPORT)
    headline = section_of(page, '<div class="headline" id="headline">', '<section id="exceptions">')
    assert page.index('id="headline"') < page.index('<section id="exceptions">')
    exceptions = sum(row.category in EXCEPTIONS for row in ROWS)
    assert f"{exceptions} exception rows</div>" in headline
    at_risk = REPORT.at_risk()
    assert at_risk == {"eur": 900, "jpy": 1500, "kwd": 1250, "usd": 7250}
    figures = re.findall(r'<li class="figure">([^<]*)</li>', headline)
    assert figures == [money(amount, currency) for currency, amount in at_risk.items()]
    assert figures == ["9.00 EUR", "1,500 JPY", "1.250 KWD", "72.50 USD"]
    assert "2 payments matched" in headline and "Of 17 rows in all." in headline
    assert 'class="tile action"' in headline and 'class="tile risk"' in headline
    for category in EXCEPTIONS:
        assert f'<a href="#{category.value}">{category_label(category)}</a>: 1' in headline


def test_html_headline_of_a_report_where_all_is_well() -> None:
    page = render_html(Report(AS_OF, [sale(Category.MATCHED, 1, 1250, "usd")]))
    headline = section_of(page, 'id="headline">', '<section id="exceptions">')
    assert "0 exception rows" in headline and "Nothing needs action." in headline
    assert '<div class="figure">None</div>' in headline
    assert "1 payment matched" in headline and "Of 1 row in all." in headline
    assert 'class="tile action"' not in headline and 'class="tile risk"' not in headline


def test_html_labels_categories_with_stripe_capitalized() -> None:
    page = render_html(REPORT)
    assert "<h3>Orphan in Stripe (1)</h3>" in page and "<h3>Missing in Stripe (1)</h3>" in page
    assert "Orphan in stripe" not in page and "Missing in stripe" not in page


def test_html_shows_the_thresholds_in_plain_words_in_the_header() -> None:
    header = section_of(render_html(REPORT), "<header>", "</header>")
    assert "A payment still stored on a reader is stale after 24 hours." in header
    assert (
        "After forwarding, an authorization must be captured within 4 days 18 hours "
        "(114 hours) for Visa and 2 days (48 hours) for other card brands."
    ) in header
    assert "A capture is overdue once 12 hours or less of that window is left." in header
    assert "by default" not in render_html(REPORT)

    custom = Report(
        AS_OF,
        ROWS,
        thresholds={
            "stale_after_hours": "6",
            "capture_window_default_hours": "36",
            "capture_warning_hours": "1.5",
        },
    )
    header = section_of(render_html(custom), "<header>", "</header>")
    assert "stale after 6 hours." in header
    assert "captured within 36 hours for every card brand." in header
    assert "overdue once 1.5 hours or less" in header
    assert "were not recorded" in section_of(
        render_html(Report(AS_OF, ROWS)), "<header>", "</header>"
    )


def test_html_shows_status_codes_only_next_to_a_label() -> None:
    page = render_html(REPORT)
    declined = section_of(page, '<section id="declined">')
    assert "Failed, needs a new card" in declined
    overdue = section_of(page, '<section id="capture_overdue">')
    assert "Authorized, not captured" in overdue
    # without the title attributes and the small grey codes, no raw code is left
    bare = re.sub(r'<code class="raw">[^<]*</code>|title="[^"]*"', "", page)
    for code in ("requires_payment_method", "requires_capture"):
        assert f'<code class="raw">{code}</code>' in page, code
        assert code not in bare, code
    cells = re.findall(r'<td class="status"[^>]*>(.*?)</td>', page, re.DOTALL)
    listed = (*EXCEPTIONS, Category.PENDING_FORWARD)
    assert len(cells) == 2 * sum(row.category in listed for row in ROWS)
    labels = {*LEDGER_STATUSES.values(), *STRIPE_STATUSES.values(), "—"}
    for cell in cells:
        shown = re.sub(r"<[^>]*>", "", re.sub(r'<code class="raw">[^<]*</code>', "", cell))
        assert shown.strip() in labels, cell
        for code in re.findall(r'<code class="raw">([^<]*)</code>', cell):
            assert f'title="Status code: {code}">' in cell  # the label carries it too


def test_html_keeps_ids_and_times_on_one_line_and_lets_wide_tables_scroll() -> None:
    page = render_html(REPORT)
    assert re.search(r"\.id \{[^}]*white-space: nowrap", page)
    assert re.search(r"\.nowrap \{[^}]*white-space: nowrap", page)
    assert re.search(r"\.scroll \{[^}]*overflow-x: auto", page)
    assert page.count("<table") == len(re.findall(r'<div class="scroll">\s*<table', page))
    overdue = section_of(page, '<section id="capture_overdue">')
    assert '<span class="id">00000000-0000-4000-8000-000000000006</span>' in overdue
    assert (
        '<td class="when" data-label="Stored at">2026-11-17 12:45 UTC'
        '<span class="sub">age 6.0 days</span>'
    ) in overdue
    declined = section_of(page, '<section id="declined">')
    assert "age 3.0 days" in declined  # 72 hours
    stale = section_of(page, '<section id="stale_forward">')
    assert "age 30.0 h" in stale


def test_html_ages_are_hours_under_two_days_and_days_from_then_on() -> None:
    assert [
        age(seconds)
        for seconds in (None, 0, 95_400, 47 * 3600, 48 * 3600, 518_400, 9 * 86_400 + 4_320)
    ] == ["", "0.0 h", "26.5 h", "47.0 h", "2.0 days", "6.0 days", "9.1 days"]


def test_html_colours_exceptions_apart_from_the_other_categories() -> None:
    page = render_html(REPORT)
    exceptions = chart_bars(page, "Rows needing action, per category")
    others = chart_bars(page, "Other rows, per category")
    assert list(exceptions) == [category_label(category) for category in EXCEPTIONS]
    assert set(others) == {
        category_label(category) for category in Category if category not in EXCEPTIONS
    }
    assert {colour for _, colour, _ in exceptions.values()} == {ACTION.colour}
    assert ACTION.colour not in {colour for _, colour, _ in others.values()}
    assert others["Matched"][1] == others["Awaiting capture"][1] == SETTLED.colour
    assert others["Pending forward"][1] == others["Canceled"][1] == WAITING.colour


def test_html_totals_table_marks_the_categories_that_need_action() -> None:
    totals = section_of(render_html(REPORT), '<section id="totals">')
    (table,) = [table for table in tables_in(totals) if table[0][0] == "Category"]
    assert table[0] == ["Category", "Action", "Currency", "Rows", "Amount", "At risk"]
    lines = grouped_lines(table, 6, spanned=2)
    # matched spans two currencies: its category and action cells are shared
    assert [line[:3] for line in lines if line[0] == "Matched"] == [
        ["Matched", "None", "EUR"],
        ["Matched", "None", "USD"],
    ]
    actions = {line[0]: line[1] for line in lines}
    assert actions == {
        category_label(category): "Needs action" if category in EXCEPTIONS else "None"
        for category in Category
    }
    assert ["Amount mismatch", "Needs action", "EUR", "1", "20.00 EUR", "1.00 EUR"] in lines


def test_html_at_risk_intro_names_what_the_code_counts() -> None:
    section = section_of(render_html(REPORT), '<section id="at-risk">')
    assert "never added across" in section and "currencies" in section
    counted = dict(AT_RISK_RULES)
    # every category that puts money at risk in the rows is explained, and only those
    assert {row.category for row in ROWS if row.amount_at_risk} <= set(counted)
    assert set(counted) == {
        Category.PENDING_FORWARD,
        Category.STALE_FORWARD,
        Category.DECLINED,
        Category.DUPLICATE,
        Category.CAPTURE_OVERDUE,
        Category.AMOUNT_MISMATCH,
        Category.MISSING_IN_STRIPE,
        Category.DISPUTED,
        Category.DISPUTE_LOST,
    }
    for category, rule in AT_RISK_RULES:
        assert f"<strong>{category_label(category)}</strong>: {rule}." in html.unescape(section)
    assert "difference" in counted[Category.AMOUNT_MISMATCH]
    assert "refund" in counted[Category.DUPLICATE]
    assert (
        "No money at risk: Orphan in Stripe, Matched, Awaiting capture, Canceled, Refunded, "
        "Partially refunded and Dispute won." in section
    )


@pytest.mark.parametrize(
    ("anchor", "key"),
    [
        ("by-location", lambda row: row.location_id),
        ("by-reader", lambda row: row.device_id),
        ("by-day", lambda row: row.day),
    ],
)
def test_html_breakdowns_give_rows_matched_and_at_risk_per_group_and_currency(
    anchor: str, key: Callable[[Row], str | None]
) -> None:
    section = section_of(render_html(REPORT), f'<section id="{anchor}">')
    (table,) = tables_in(section)
    assert table[0][1:] == [
        "Currency",
        "Rows (any category)",
        "Rows needing action",
        "Amount matched",
        "Amount at risk",
    ]
    expected: dict[tuple[str, str], list[int]] = {}
    for row in ROWS:
        currency = row.risk_currency or ""
        sums = expected.setdefault((key(row) or "(unknown)", currency), [0, 0, 0, 0])
        sums[0] += 1
        sums[1] += row.category in EXCEPTIONS
        if row.category == Category.MATCHED:
            sums[2] += row.amount or 0
        sums[3] += row.amount_at_risk
    assert grouped_lines(table, 6) == [
        [
            group,
            currency.upper(),
            str(count),
            str(exceptions),
            money(matched, currency) if matched else "—",
            money(at_risk, currency) if at_risk else "—",
        ]
        for (group, currency), (count, exceptions, matched, at_risk) in sorted(expected.items())
    ]


def test_html_breakdown_by_location_leaves_canceled_rows_out_of_the_money() -> None:
    section = section_of(render_html(REPORT), '<section id="by-location">')
    lines = grouped_lines(tables_in(section)[0], 6)
    # loc_1 in USD: matched 12.50, awaiting 20.00, overdue 30.00, duplicate, declined, canceled
    assert ["loc_1", "USD", "6", "3", "12.50 USD", "47.50 USD"] in lines
    assert ["loc_2", "EUR", "1", "0", "49.99 EUR", "—"] in lines


# Terminal table


def test_table_mentions_each_category_present_and_its_formatted_amounts() -> None:
    text = render_table(REPORT)
    assert "Reconciliation report as of 2026-11-23 12:45 UTC" in text
    for label in (
        "Matched",
        "Pending forward",
        "Stale forward",
        "Awaiting capture",
        "Capture overdue",
        "Declined",
        "Duplicate",
        "Amount mismatch",
        "Missing in Stripe",
        "Orphan in Stripe",
        "Canceled",
        "Refunded",
        "Partially refunded",
        "Disputed",
        "Dispute lost",
        "Dispute won",
    ):
        assert label in text
    for amount in ("12.50 USD", "1,000 JPY", "1.250 KWD", "49.99 EUR", "72.50 USD"):
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


@pytest.mark.parametrize("width", [80, 100, 120, 200])
def test_table_fits_its_width_and_never_cuts_a_number_or_an_id(width: int) -> None:
    text = render_table(REPORT, width)
    assert max(len(line) for line in text.splitlines()) <= width
    assert "…" not in text.replace("… and", "")  # rich's mark of a cut cell
    for row in REPORT.rows:
        if row.category in EXCEPTIONS:
            for whole in (row.offline_id, row.location_id, *row.payment_intent_ids):
                assert whole is None or whole in text, (width, whole)
            assert money(row.amount, row.currency) in text


def test_a_wide_terminal_gets_the_exceptions_one_line_each_and_a_file_120_columns() -> None:
    assert "Stripe amount" in render_table(REPORT, 200)
    assert "Payment (location, PaymentIntents, age)" in render_table(REPORT, 80)
    assert render_table(REPORT) == render_table(REPORT, 120)


def test_html_gives_a_row_never_stored_the_time_it_was_created_and_its_age() -> None:
    created = AS_OF - timedelta(hours=3)
    orphan = replace(ORPHAN, began_at=created, age_seconds=3 * 3600)
    section = section_of(render_html(Report(AS_OF, [orphan])), '<section id="orphan_in_stripe">')
    assert 'created 2026-11-23 09:45 UTC<span class="sub">age 3.0 h</span>' in section


def test_html_repeats_a_group_on_each_of_its_lines_for_a_phone() -> None:
    section = section_of(render_html(REPORT), '<section id="by-location">')
    phone = re.findall(r'<td class="phone">([^<]*)</td>', section)
    # loc_1 holds rows in several currencies: a line each, each line named
    currencies = {row.risk_currency for row in ROWS if row.location_id == "loc_1"}
    assert len(currencies) > 1 and phone.count("loc_1") == len(currencies)
    totals = section_of(render_html(REPORT), '<section id="totals">')
    assert '<td class="phone">Matched</td>' in totals
    assert '<td class="phone">Declined: needs action</td>' in totals


@pytest.mark.parametrize("width", [80, 200])
def test_table_lists_what_can_still_be_saved_first_with_each_capture_deadline(width: int) -> None:
    text = render_table(REPORT, width)
    titles = [f"{category_label(category)} (1)" for category in EXCEPTIONS]
    positions = [text.index(title) for title in titles]
    assert positions == sorted(positions)
    overdue = text[positions[0] : positions[1]]
    assert "2026-11-23 06:45 UTC" in overdue and "6.0 h ago" in overdue
    assert "Capture by" in overdue or "capture by" in overdue
    assert "Capture by" not in text[positions[1] :] and "capture by" not in text[positions[1] :]
