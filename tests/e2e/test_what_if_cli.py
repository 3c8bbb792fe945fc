"""`offline-ledger what-if` as an operator runs it: a day recorded on SQLite, replayed against
a lower limit in every format, and a bad limits file refused with its code."""

from __future__ import annotations

import json
from pathlib import Path

from ledger import Ledger
from tests.support.cli import run, run_json
from tests.support.days import A, B, C, D, record_day


def _recorded(sqlite_url: str) -> str:
    with Ledger.open(sqlite_url, create=True) as ledger:
        record_day(ledger, refusal=True)
    return sqlite_url


def _limits(tmp_path: Path, stored_max: int) -> Path:
    path = tmp_path / f"proposed-{stored_max}.json"
    limits = {"per_payment_max": {"usd": 5000}, "stored_amount_max": {"usd": stored_max}}
    path.write_text(json.dumps({"limits": limits}))
    return path


def test_what_if_reports_a_lower_limit_in_every_format(sqlite_url: str, tmp_path: Path) -> None:
    url = _recorded(sqlite_url)
    limits = str(_limits(tmp_path, 600))
    answer = run_json("what-if", "--limits", limits, "--db", url, "--top", "1")
    (usd,) = answer["outcomes"]
    assert (usd["location_id"], usd["currency"]) == ("tml_1", "usd")
    assert (usd["sales"], usd["reservations_refused"]) == (4, 1)
    assert usd["refused"] == {"recorded": 3, "proposed": 3}
    assert (usd["declines_avoided"], usd["declines_added"]) == (1, 0)
    assert usd["money_at_risk"] == {"recorded": 800, "proposed": 0, "proposed_unknown": 0}
    assert [change["offline_id"] for change in usd["changes"]] == [A]
    looser = str(_limits(tmp_path, 5000))
    (taken,) = run_json("what-if", "--limits", looser, "--db", url)["outcomes"]
    assert taken["money_at_risk"] == {"recorded": 800, "proposed": 800, "proposed_unknown": 400}
    assert {change["offline_id"]: change["attempt"] for change in taken["changes"]} == {
        B: "stored",
        C: "stored",
        D: "reservation_refused",
    }
    csv_done = run("what-if", "--limits", limits, "--db", url, "--format", "csv")
    assert csv_done.returncode == 0, csv_done.stderr
    header, row = csv_done.stdout.splitlines()
    assert header.startswith(
        "location_id,currency,sales,reservations_refused,refused_recorded,refused_proposed"
    )
    assert row.startswith("tml_1,usd,4,1,3,3,1,1,")
    html = tmp_path / "what-if.html"
    table = run(
        "what-if", "--limits", limits, "--db", url, "--location", "tml_1", "--html", str(html)
    )
    assert table.returncode == 0, table.stderr
    assert "tml_1 USD" in table.stdout and A in table.stdout
    written = html.read_text()
    assert "tml_1 · USD" in written and written.count('class="proposed" d="M 0 180') == 1


def test_a_bad_limits_file_or_location_is_refused_with_its_code(
    sqlite_url: str, tmp_path: Path
) -> None:
    url = _recorded(sqlite_url)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"limits": {"stored_amount_max": {"usd": -1}}}))
    refused = run_json("what-if", "--limits", str(bad), "--db", url, status=1)
    assert refused["error"]["code"] == "INVALID_LIMITS_FILE"
    assert "limits.stored_amount_max" in refused["error"]["message"]
    bad.write_text("{not json")
    refused = run_json("what-if", "--limits", str(bad), "--db", url, status=1)
    assert refused["error"]["code"] == "INVALID_LIMITS_FILE"
    limits = str(_limits(tmp_path, 600))
    unknown = run_json("what-if", "--limits", limits, "--db", url, "--location", "tml_x", status=1)
    assert unknown["error"]["code"] == "UNKNOWN_LOCATION"


def test_a_limits_file_holding_a_card_number_is_refused_without_echoing_it(
    sqlite_url: str, tmp_path: Path
) -> None:
    """The refusal names where the problem is, and a key read from the file can be anything:
    what is said is masked."""
    url = _recorded(sqlite_url)
    card = "4242424242424242"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"limits": {"stored_amount_max": {card: 100}}}))
    refused = run("what-if", "--limits", str(bad), "--db", url, "--json")
    assert refused.returncode == 1
    assert json.loads(refused.stdout)["error"]["code"] == "INVALID_LIMITS_FILE"
    assert card not in refused.stdout + refused.stderr
    said = run("what-if", "--limits", str(bad), "--db", url)
    assert said.returncode == 1 and "INVALID_LIMITS_FILE" in said.stderr
    assert card not in said.stdout + said.stderr


def test_a_memory_ledger_is_refused_with_its_code(tmp_path: Path) -> None:
    """A memory:// ledger starts empty in each command: nothing to replay, said plainly."""
    limits = str(_limits(tmp_path, 600))
    refused = run_json("what-if", "--limits", limits, "--db", "memory://", status=2)
    assert refused["error"]["code"] == "INVALID_DATABASE_URL"
    assert "memory://" in refused["error"]["message"]
    assert "what-if" in refused["error"]["message"]


def test_a_limits_file_in_an_unknown_currency_is_refused_in_the_exact_words(
    sqlite_url: str, tmp_path: Path
) -> None:
    """Read before the database is opened: said once, where it is, as a record's would be."""
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"currencies": ["USD"]}))
    refused = run_json("what-if", "--limits", str(bad), "--db", sqlite_url, status=1)
    message = refused["error"]["message"]
    assert refused["error"]["code"] == "INVALID_LIMITS_FILE"
    assert "currencies.0: 'USD' is not an ISO 4217 currency code" in message
    assert "'aed'" not in message and "fast" not in message
