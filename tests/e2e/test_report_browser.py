"""The HTML report in a real headless browser (Debian's chromium): it loads without error, the
parsed page shows every exception section with its rows and the charts, it paints, and laid
out 1400 and 390 pixels wide (a laptop, a phone) neither it nor any of its tables scrolls
sideways.

Chromium runs as a subprocess on the local file only, with a fresh profile and no background
networking. Without chromium on PATH the tests are skipped with a notice at the end of the run;
with OFFLINE_LEDGER_REQUIRE_BROWSER=1 (CI) they fail instead.
"""

from __future__ import annotations

import contextlib
import html
import json
import os
import shutil
import signal
import struct
import subprocess
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from projections.formats.html import render_html
from projections.formats.values import money
from projections.report import EXCEPTIONS, Report
from tests.conftest import BROWSER_ENV, BROWSER_SKIP
from tests.support.sample_report import REPORT, ROWS

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
TIMEOUT_SECONDS = 60
INSTALL_HINT = "install Debian's chromium package (apt-get install chromium)"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
WINDOW = (1280, 2000)


@pytest.fixture
def chromium(request: pytest.FixtureRequest) -> str:
    """The path of the chromium launcher; skips (or fails, when required) without it."""
    path = shutil.which("chromium")
    if path is None:
        if os.environ.get(BROWSER_ENV) == "1":
            pytest.fail(f"{BROWSER_ENV}=1 but chromium is not on PATH: {INSTALL_HINT}")
        pytest.skip(f"{BROWSER_SKIP} {INSTALL_HINT} to run it")
    return path


@pytest.fixture
def page(tmp_path: Path) -> Path:
    path = tmp_path / "report.html"
    path.write_text(render_html(REPORT), encoding="utf-8")
    return path


def run_chromium(chromium: str, tmp_path: Path, *args: str) -> str:
    """Run chromium once with a fresh profile and HOME; its stdout. Fails on a non-zero exit
    or after TIMEOUT_SECONDS, and kills whatever it left behind either way."""
    profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=tmp_path)
    command = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        errors="replace",
        env={**os.environ, "HOME": profile},
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail(f"chromium did not finish within {TIMEOUT_SECONDS} s: {command}")
    finally:
        with contextlib.suppress(ProcessLookupError):  # helpers (crashpad...) still running
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 0, f"chromium exited with {process.returncode}:\n{stderr}"
    return stdout


def between(text: str, start: str, end: str) -> str:
    assert start in text, start
    return text.split(start, 1)[1].split(end, 1)[0]


def test_the_browser_shows_every_exception_with_its_rows_and_the_charts(
    chromium: str, page: Path, tmp_path: Path
) -> None:
    dom = run_chromium(chromium, tmp_path, "--dump-dom", page.as_uri())

    exceptions = between(dom, '<section id="exceptions">', '<section id="totals">')
    assert "Exceptions: what needs action, what can still be saved first" in exceptions
    for category in EXCEPTIONS:
        rows = [row for row in ROWS if row.category == category]
        section = between(exceptions, f'<section id="{category.value}">', "</section>")
        assert f"({len(rows)})</h3>" in section, category
        assert between(section, "<tbody>", "</tbody>").count("<tr>") == len(rows), category
        for row in rows:
            assert (row.offline_id or row.payment_intent_ids[0]) in section, category
    assert "pi_7a, pi_7b" in between(dom, '<section id="duplicate">', "</section>")
    assert "pi_orphan" in between(dom, '<section id="orphan_in_stripe">', "</section>")

    # the headline comes first and gives the money at risk in each currency
    headline = between(dom, 'id="headline">', '<section id="exceptions">')
    for currency, amount in REPORT.at_risk().items():
        assert f'<li class="figure">{money(amount, currency)}</li>' in headline
    assert "is stale after 24 hours." in between(dom, "<header>", "</header>")

    # rows per category in two charts (exceptions on their own scale), and per currency the
    # money at risk by age, by card brand and by location
    assert dom.count('<figure class="chart"') == 2 + 3 * len(REPORT.at_risk())
    assert "<script" not in dom and "&lt;script&gt;alert(1)&lt;/script&gt;" in dom


def test_the_browser_paints_the_page_into_a_real_screenshot(
    chromium: str, page: Path, tmp_path: Path
) -> None:
    screenshot = tmp_path / "report.png"
    width, height = WINDOW
    run_chromium(
        chromium,
        tmp_path,
        f"--screenshot={screenshot}",
        f"--window-size={width},{height}",
        page.as_uri(),
    )

    assert screenshot.is_file(), "chromium wrote no screenshot"
    data = screenshot.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR" and struct.unpack(">II", data[16:24]) == WINDOW
    # a blank page of this size compresses to about 12 KB, this report to about 250 KB
    assert len(data) > 50_000, f"the screenshot is only {len(data)} bytes: a blank page?"


# The page laid out at a laptop's width and a phone's. Headless chromium keeps its window at
# least 500 pixels wide, so the page is laid out in an iframe of the width measured (its own
# viewport, as a phone's: the media queries and the viewport meta apply to it), and a script of
# the test, outside the page, measures it once it has loaded.
MEASURE = """<!DOCTYPE html>
<html><body style="margin: 0">
<iframe id="page" style="border: 0; width: %(width)dpx; height: 900px" srcdoc="%(page)s"></iframe>
<pre id="measured"></pre>
<script>
document.getElementById("page").addEventListener("load", function () {
  var frame = this, doc = frame.contentDocument, view = frame.contentWindow.innerWidth;
  function box(el) {
    var rect = el.getBoundingClientRect();
    return {right: rect.right, scroll: el.scrollWidth, client: el.clientWidth};
  }
  function all(selector) { return Array.prototype.map.call(doc.querySelectorAll(selector), box); }
  var fonts = Array.prototype.map.call(doc.querySelectorAll("table td, .bar"), function (el) {
    return parseFloat(frame.contentWindow.getComputedStyle(el).fontSize);
  });
  document.getElementById("measured").textContent = JSON.stringify({
    view: view,
    page: doc.documentElement.scrollWidth,
    headline: all("#headline, #headline .tile"),
    rows: all("table.rows"),
    wrappers: all(".scroll"),
    charts: all(".chart"),
    smallest_font: Math.min.apply(null, fonts)
  });
});
</script>
</body></html>
"""


# The report with the long names of a real shop (the demo's), which widen its columns.
LONG_NAMES = Report(
    REPORT.as_of,
    [
        replace(row, location_id="tml_tokyo_shibuya", device_id="tmr_tokyo_shibuya_2")
        if row.location_id == "loc_1"
        else row
        for row in ROWS
    ],
    REPORT.filters,
    REPORT.thresholds,
)


def laid_out(chromium: str, tmp_path: Path, width: int) -> dict[str, Any]:
    """The measures of the report laid out `width` pixels wide (see MEASURE)."""
    page = html.escape(render_html(LONG_NAMES), quote=True)
    path = tmp_path / f"measure-{width}.html"
    path.write_text(MEASURE % {"width": width, "page": page}, encoding="utf-8")
    dom = run_chromium(
        chromium, tmp_path, "--virtual-time-budget=10000", "--dump-dom", path.as_uri()
    )
    measured: dict[str, Any] = json.loads(
        html.unescape(between(dom, '<pre id="measured">', "</pre>"))
    )
    return measured


@pytest.mark.parametrize("width", [1400, 390])
def test_the_page_never_scrolls_sideways_and_its_summary_and_action_tables_fit(
    chromium: str, tmp_path: Path, width: int
) -> None:
    measured = laid_out(chromium, tmp_path, width)

    assert measured["view"] == width
    assert measured["page"] <= width, "the page scrolls sideways"
    # the summary's tiles, the charts, the rows to act on and every table fit, whole, without
    # scrolling (on a phone the tables are cards of labelled lines)
    for name in ("headline", "charts", "rows", "wrappers"):
        assert measured[name], name
        for box in measured[name]:
            assert box["right"] <= width and box["scroll"] <= box["client"], (name, box)
    # tables readable: no text smaller than 12 pixels
    assert measured["smallest_font"] >= 12
