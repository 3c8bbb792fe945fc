"""Reading Stripe's exported files into observations (adapters/stripe/files.py): the itemized
balance report (CSV) and PaymentIntents as the API returns them (JSON). A file is returned
whole or refused whole, with every problem named by line or object and column or field."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from adapters.stripe.files import (
    parse_payment_intents_json,
    read_payment_intents_json,
    read_report_csv,
)
from adapters.stripe.problems import PROBLEMS_MAX, StripeFileError
from ledger.observations import BalanceTransactionObservation, PaymentIntentObservation

PAN = "4242 4242 4242 4242"  # Luhn-valid: a full card number
OFFLINE_ID = "2f1c7d36-5d7b-4b43-9b8a-1f2d2e0b6c11"
FULL_HEADER = (
    "balance_transaction_id,created_utc,currency,gross,fee,net,reporting_category,source_id,"
    "payment_intent_id,charge_id,payment_metadata[offline_id]"
)
NOV_22_10_15 = datetime(2026, 11, 22, 10, 15, tzinfo=UTC)


def write(tmp_path: Path, text: str, name: str = "report.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def csv_file(tmp_path: Path, header: str, *rows: str) -> Path:
    return write(tmp_path, "\n".join([header, *rows]) + "\n")


def refused(read: Callable[[Path], Any], path: Path) -> StripeFileError:
    with pytest.raises(StripeFileError) as caught:
        read(path)
    error = caught.value
    assert error.problems and error.problem_count >= len(error.problems)
    assert all(str(path) in problem.message for problem in error.problems)
    assert str(path) in error.message and "nothing imported" in error.message
    return error


def problems(error: StripeFileError) -> list[tuple[int | None, str | None, str]]:
    return [(p.line, p.field, str(p.code)) for p in error.problems]


def assert_never_echoed(error: StripeFileError) -> None:
    everything = (
        str(error)
        + json.dumps([error.to_dict(), *(p.to_dict() for p in error.problems)])
        + " ".join(str(p) for p in error.problems)
    )
    assert PAN not in everything and PAN.replace(" ", "") not in everything


# -- the itemized report (CSV) ----------------------------------------------------------------


def test_a_full_report_row_becomes_a_balance_transaction(tmp_path: Path) -> None:
    path = csv_file(
        tmp_path,
        FULL_HEADER,
        f"txn_1,2026-11-22 10:15:00,usd,12.50,-0.66,11.84,charge,ch_1,pi_1,ch_1,{OFFLINE_ID}",
    )

    (row,) = read_report_csv(path)

    assert row == BalanceTransactionObservation(
        source="report_file",
        balance_transaction_id="txn_1",
        payment_intent_id="pi_1",
        charge_id="ch_1",
        source_id="ch_1",
        currency="usd",
        gross=1_250,
        fee=-66,
        net=1_184,
        created_at=NOV_22_10_15,
        reporting_category="charge",
        offline_id=OFFLINE_ID,
    )
    assert row.created_at is not None and row.created_at.tzinfo is UTC


@pytest.mark.parametrize(
    ("currency", "gross", "gross_minor"),
    [
        ("usd", "12.50", 1_250),
        ("usd", "12.5", 1_250),
        ("usd", "0.07", 7),
        ("usd", "-3.00", -300),  # a refund
        ("usd", "+4.10", 410),
        ("usd", "123456789012.34", 12_345_678_901_234),  # beyond a float's exact digits
        ("usd", "12.500", 1_250),  # exact: a trailing zero rounds nothing
        ("jpy", "1000", 1_000),
        ("jpy", "-500", -500),
        ("kwd", "1.250", 1_250),
        ("kwd", "0.001", 1),
        ("USD", "1.00", 100),  # Stripe's reports may write currencies in upper case
    ],
)
def test_amounts_convert_exactly_with_the_currency_exponent(
    tmp_path: Path, currency: str, gross: str, gross_minor: int
) -> None:
    path = csv_file(
        tmp_path, "charge_id,currency,gross,fee,net", f"ch_1,{currency},{gross},{gross},{gross}"
    )

    (row,) = read_report_csv(path)

    assert (row.gross, row.fee, row.net) == (gross_minor, gross_minor, gross_minor)
    assert row.currency == currency.lower()


@pytest.mark.parametrize(
    ("currency", "gross", "says"),
    [
        ("usd", "12.345", "more decimals than USD has (2)"),
        ("usd", "0.001", "more decimals than USD has (2)"),
        ("jpy", "1000.5", "more decimals than JPY has (0)"),
        ("kwd", "1.2505", "more decimals than KWD has (3)"),
        ("usd", "1,250.00", "not a decimal amount"),  # a thousands separator is never guessed
        ("usd", "1,250", "more decimals than USD has (2)"),  # read as a decimal comma
        ("usd", "1e3", "not a decimal amount"),
        ("usd", "NaN", "not a decimal amount"),
        ("usd", "12.", "not a decimal amount"),
        ("usd", "$12.50", "not a decimal amount"),
    ],
)
def test_an_amount_that_does_not_fit_the_currency_is_refused_never_rounded(
    tmp_path: Path, currency: str, gross: str, says: str
) -> None:
    path = csv_file(
        tmp_path, "charge_id,currency,gross", "ch_1,usd,1.00", f'ch_2,{currency},"{gross}"'
    )

    error = refused(read_report_csv, path)

    assert problems(error) == [(3, "gross", "INVALID_AMOUNT")]
    assert says in error.problems[0].message
    assert "line 3" in error.problems[0].message and "'gross'" in error.problems[0].message


def test_an_unknown_or_empty_currency_is_refused(tmp_path: Path) -> None:
    path = csv_file(
        tmp_path, "charge_id,currency,gross", "ch_1,usx,1.00", "ch_2,,1.00", "ch_3,usd,"
    )

    error = refused(read_report_csv, path)

    assert problems(error) == [
        (2, "currency", "UNKNOWN_CURRENCY"),
        (3, "currency", "MISSING_FIELD"),
        (4, "gross", "MISSING_FIELD"),
    ]
    assert "'usx' is not an ISO 4217 currency" in error.problems[0].message


@pytest.mark.parametrize("id_column", ["payment_intent_id", "charge_id", "source_id"])
def test_currency_gross_and_any_one_id_column_are_enough(tmp_path: Path, id_column: str) -> None:
    path = csv_file(tmp_path, f"gross,{id_column},currency", "-2.00,pi_1,eur")

    (row,) = read_report_csv(path)

    assert getattr(row, id_column) == "pi_1"
    assert (row.currency, row.gross, row.fee, row.net) == ("eur", -200, None, None)
    assert (row.created_at, row.reporting_category, row.offline_id) == (None, None, None)
    assert row.balance_transaction_id.startswith("row:")
    assert row.source == "report_file"


def test_columns_come_in_any_order_and_unknown_ones_are_ignored(tmp_path: Path) -> None:
    header = (
        "description,net,payment_metadata[offline_id],customer_email,currency,"
        "created_utc,charge_id,gross,balance_transaction_id,fee"
    )
    path = csv_file(
        tmp_path,
        header,
        f'"Sale, table 4",11.84,{OFFLINE_ID},a@example.com,usd,'
        "2026-11-22 10:15:00,ch_1,12.50,txn_1,-0.66",
    )

    (row,) = read_report_csv(path)

    assert (row.balance_transaction_id, row.charge_id, row.gross, row.fee, row.net) == (
        "txn_1",
        "ch_1",
        1_250,
        -66,
        1_184,
    )
    assert (row.offline_id, row.created_at) == (OFFLINE_ID, NOV_22_10_15)


@pytest.mark.parametrize(
    ("header", "missing"),
    [
        ("charge_id,gross", ["currency"]),
        ("charge_id,currency,net", ["gross"]),
        ("currency,gross,description", ["payment_intent_id/charge_id/source_id"]),
        ("balance_transaction_id,amount", ["currency", "gross"]),
    ],
)
def test_a_file_without_the_needed_columns_is_refused_naming_them(
    tmp_path: Path, header: str, missing: list[str]
) -> None:
    path = csv_file(tmp_path, header, "x,y,z")

    error = refused(read_report_csv, path)

    assert problems(error) == [(1, column, "MISSING_FIELD") for column in missing]
    for problem in error.problems:
        assert "balance_change_from_activity.itemized" in problem.message
        assert "payout_reconciliation.itemized" in problem.message


def test_an_empty_file_is_refused_as_the_wrong_report(tmp_path: Path) -> None:
    error = refused(read_report_csv, write(tmp_path, ""))
    assert [p.field for p in error.problems] == [
        "currency",
        "gross",
        "payment_intent_id/charge_id/source_id",
    ]


def test_rows_that_name_no_payment_are_skipped_and_counted(tmp_path: Path) -> None:
    path = csv_file(
        tmp_path,
        "balance_transaction_id,reporting_category,currency,gross,payment_intent_id,"
        "charge_id,source_id",
        "txn_1,charge,usd,12.50,pi_1,ch_1,ch_1",
        "txn_2,payout,usd,-100.00,,,",
        "txn_3,other_adjustment,usd,-1.00, , ,",
        "txn_4,refund,usd,-3.00,pi_1,ch_1,re_1",
        "txn_5,payout,usd,-50.00,,,po_1",
        "txn_6,charge,usd,7.00,,,py_1",
    )

    rows = read_report_csv(path)

    assert [row.balance_transaction_id for row in rows] == ["txn_1", "txn_4", "txn_6"]
    assert rows.skipped == 3
    assert rows[1].gross == -300


def test_a_header_only_file_reads_as_nothing(tmp_path: Path) -> None:
    rows = read_report_csv(csv_file(tmp_path, FULL_HEADER))
    assert (list(rows), rows.skipped) == ([], 0)


def test_derived_ids_are_stable_across_reads_and_tell_identical_rows_apart(
    tmp_path: Path,
) -> None:
    path = csv_file(
        tmp_path,
        "balance_transaction_id,currency,gross,charge_id,created_utc",
        ",usd,12.50,ch_1,2026-11-22 10:15:00",
        ",usd,12.50,ch_1,2026-11-22 10:15:00",  # the same again: a second fact
        ",usd,12.50,ch_1,2026-11-22 10:16:00",
        "txn_9,usd,12.50,ch_1,2026-11-22 10:15:00",
    )

    first = [row.balance_transaction_id for row in read_report_csv(path)]
    again = [row.balance_transaction_id for row in read_report_csv(path)]

    assert first == again
    assert len(set(first)) == 4
    assert first[3] == "txn_9"
    assert all(id_.startswith("row:") for id_ in first[:3])
    assert first[0].rsplit(":", 1)[0] == first[1].rsplit(":", 1)[0]  # same content, numbered
    # the same values written differently are the same row
    same = csv_file(
        tmp_path,
        "charge_id,created_utc,gross,currency,balance_transaction_id",
        "ch_1,2026-11-22T05:15:00-05:00,12.5,USD,",
    )
    assert read_report_csv(same)[0].balance_transaction_id == first[0]


@pytest.mark.parametrize(
    ("columns", "cells", "offline_id"),
    [
        (["payment_metadata[offline_id]"], ["a"], "a"),
        (["payment_metadata[offlineId]"], ["b"], "b"),
        (["payment_metadata[unique-id]"], ["c"], "c"),
        (["payment_metadata[unique-id]", "payment_metadata[offline_id]"], ["c", "a"], "a"),
        (["payment_metadata[offlineId]", "payment_metadata[unique-id]"], ["b", "c"], "b"),
        (["payment_metadata[offline_id]", "payment_metadata[unique-id]"], ["", "c"], "c"),
        (["payment_metadata[offline_id]"], [""], None),
        (["payment_metadata[order_id]"], ["A-17"], None),
    ],
)
def test_the_offline_id_comes_from_the_metadata_keys_in_order(
    tmp_path: Path, columns: list[str], cells: list[str], offline_id: str | None
) -> None:
    path = csv_file(
        tmp_path,
        ",".join(["charge_id", "currency", "gross", *columns]),
        ",".join(["ch_1", "usd", "1.00", *cells]),
    )
    assert read_report_csv(path)[0].offline_id == offline_id


@pytest.mark.parametrize(
    ("column", "text"),
    [
        ("created_utc", "2026-11-22 10:15:00"),
        ("created_utc", "2026-11-22T10:15:00Z"),
        ("created_utc", "2026-11-22T11:15:00+01:00"),
        ("created", "2026-11-22 11:15:00"),  # run with timezone=Europe/Paris
        ("created", "2026-11-22T05:15:00-05:00"),
    ],
)
def test_timestamps_are_read_as_utc(tmp_path: Path, column: str, text: str) -> None:
    path = csv_file(tmp_path, f"charge_id,currency,gross,{column}", f"ch_1,usd,1.00,{text}")

    (row,) = read_report_csv(path, ZoneInfo("Europe/Paris"))

    assert row.created_at == NOV_22_10_15
    assert row.created_at is not None and row.created_at.utcoffset() is not None


@pytest.mark.parametrize(
    "text", ["22/11/2026 10:15", "2026-11-22", "2026-02-30 10:00:00", "1795334400"]
)
def test_an_unreadable_timestamp_is_refused(tmp_path: Path, text: str) -> None:
    path = csv_file(tmp_path, "charge_id,currency,gross,created_utc", f"ch_1,usd,1.00,{text}")
    assert problems(refused(read_report_csv, path)) == [(2, "created_utc", "INVALID_TIMESTAMP")]


def test_every_problem_of_the_file_is_listed_with_its_physical_line(tmp_path: Path) -> None:
    path = csv_file(
        tmp_path,
        "description,charge_id,currency,gross,created_utc",
        "ok,ch_1,usd,1.00,",
        '"two\nlines",ch_2,usd,1.001,',  # lines 3-4
        "",  # line 5: blank
        "ok,ch-3,usd,1.00,",  # line 6
        "ok,ch_4,usd,1.00,yesterday,extra",  # line 7
        "ok,ch_5,usd,1.00,yesterday",  # line 8
    )

    error = refused(read_report_csv, path)

    assert problems(error) == [
        (3, "gross", "INVALID_AMOUNT"),
        (6, "charge_id", "INVALID_VALUE"),
        (7, None, "INVALID_VALUE"),
        (8, "created_utc", "INVALID_TIMESTAMP"),
    ]
    assert error.problem_count == 4
    assert "6 cells but the header has 5" in error.problems[2].message


def test_limits_of_the_model_name_the_column(tmp_path: Path) -> None:
    path = csv_file(
        tmp_path,
        "charge_id,currency,gross,payment_metadata[unique-id],reporting_category",
        f"ch_1,usd,1.00,{'x' * 256},{'y' * 65}",
    )

    error = refused(read_report_csv, path)

    assert problems(error) == [
        (2, "payment_metadata[unique-id]", "INVALID_VALUE"),
        (2, "reporting_category", "INVALID_VALUE"),
    ]


def test_a_column_named_twice_is_refused(tmp_path: Path) -> None:
    path = csv_file(tmp_path, "charge_id,currency,gross,gross", "ch_1,usd,1.00,2.00")
    assert problems(refused(read_report_csv, path)) == [(1, "gross", "INVALID_VALUE")]


def test_the_list_of_problems_is_capped_but_the_count_is_exact(tmp_path: Path) -> None:
    rows = [f"ch_{i},usd,1.001" for i in range(PROBLEMS_MAX + 200)]
    error = refused(read_report_csv, csv_file(tmp_path, "charge_id,currency,gross", *rows))
    assert len(error.problems) == PROBLEMS_MAX
    assert error.problem_count == PROBLEMS_MAX + 200
    assert f"{PROBLEMS_MAX + 200} problems" in error.message


@pytest.mark.parametrize("where", ["cell", "skipped_row", "header"])
def test_a_card_number_anywhere_refuses_the_file_without_echoing_it(
    tmp_path: Path, where: str
) -> None:
    header = "charge_id,currency,gross,description"
    rows = ["ch_1,usd,1.00,fine", f"ch_2,usd,1.00,card {PAN}", f",usd,-5.00,{PAN}"]
    if where == "header":
        header, rows = f"{header},{PAN}", ["ch_1,usd,1.00,fine,x"]
    elif where == "skipped_row":
        rows.pop(1)
    path = csv_file(tmp_path, header, *rows)

    error = refused(read_report_csv, path)

    assert {p.code for p in error.problems} == {"CARD_NUMBER_DETECTED"}
    assert error.problems[0].line == (1 if where == "header" else 3)
    assert_never_echoed(error)


def test_a_file_that_is_not_utf8_text_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "report.csv"
    path.write_bytes("charge_id,currency,gross\nch_1,usd,1.00\nch_2,eur,1.00 €\n".encode("cp1252"))

    error = refused(read_report_csv, path)

    assert problems(error) == [(3, None, "INVALID_VALUE")]
    assert "not UTF-8" in error.problems[0].message


def test_a_utf8_byte_order_mark_is_not_part_of_the_first_column(tmp_path: Path) -> None:
    path = tmp_path / "report.csv"
    path.write_bytes(b"\xef\xbb\xbfcharge_id,currency,gross\nch_1,usd,1.00\n")
    assert read_report_csv(path)[0].charge_id == "ch_1"


@pytest.mark.parametrize("read", [read_report_csv, read_payment_intents_json])
def test_a_directory_or_a_missing_file_is_refused(
    tmp_path: Path, read: Callable[[Path], Any]
) -> None:
    for path in (tmp_path, tmp_path / "missing.csv"):
        error = refused(read, path)
        assert problems(error) == [(None, None, "INVALID_VALUE")]
        assert "cannot read the file" in error.problems[0].message


# -- PaymentIntents (JSON) --------------------------------------------------------------------


def payment_intent(id_: str = "pi_1", **fields: Any) -> dict[str, Any]:
    """A PaymentIntent as the API returns it (trimmed), collected offline and captured."""
    return {
        "id": id_,
        "object": "payment_intent",
        "amount": 1250,
        "amount_capturable": 0,
        "amount_received": 1250,
        "capture_method": "automatic",
        "client_secret": f"{id_}_secret_abc",
        "created": 1_795_342_500,
        "currency": "usd",
        "last_payment_error": None,
        "latest_charge": "ch_1",
        "livemode": False,
        "metadata": {"offline_id": OFFLINE_ID},
        "payment_method_types": ["card_present"],
        "status": "succeeded",
        **fields,
    }


def expanded_charge(offline: dict[str, Any] | None, brand: str = "visa") -> dict[str, Any]:
    return {
        "id": "ch_1",
        "object": "charge",
        "amount": 1250,
        "captured": True,
        "payment_method_details": {
            "type": "card_present",
            "card_present": {
                "brand": brand,
                "last4": "4242",
                "exp_month": 12,
                "exp_year": 2028,
                "read_method": "contact_emv",
                "offline": offline,
            },
        },
    }


OFFLINE_MARKER = {"stored_at": 1_795_342_400, "type": "deferred"}


def json_file(tmp_path: Path, document: Any) -> Path:
    return write(tmp_path, json.dumps(document, indent=2), "payment_intents.json")


def jsonl_file(tmp_path: Path, *objects: Any) -> Path:
    return write(
        tmp_path, "\n".join(json.dumps(o) for o in objects) + "\n", "payment_intents.jsonl"
    )


def test_a_payment_intent_with_its_expanded_charge_becomes_an_observation(
    tmp_path: Path,
) -> None:
    path = json_file(tmp_path, payment_intent(latest_charge=expanded_charge(OFFLINE_MARKER)))

    (observation,) = read_payment_intents_json(path)

    assert observation == PaymentIntentObservation(
        source="json_file",
        payment_intent_id="pi_1",
        amount=1_250,
        amount_received=1_250,
        amount_capturable=0,
        currency="usd",
        status="succeeded",
        created_at=NOV_22_10_15,
        charge_id="ch_1",
        offline_collected=True,
        card_brand="visa",
        offline_id=OFFLINE_ID,
        livemode=False,
    )


def list_page(objects: list[Any]) -> dict[str, Any]:
    return {"object": "list", "url": "/v1/payment_intents", "has_more": False, "data": objects}


def search_result(objects: list[Any]) -> dict[str, Any]:
    return {"object": "search_result", "url": "/v1/payment_intents/search", "data": objects}


@pytest.mark.parametrize(
    "write_objects",
    [
        lambda tmp_path, objects: json_file(tmp_path, list_page(objects)),
        lambda tmp_path, objects: json_file(tmp_path, search_result(objects)),
        lambda tmp_path, objects: json_file(tmp_path, objects),
        lambda tmp_path, objects: jsonl_file(tmp_path, *objects),
        lambda tmp_path, objects: write(  # blank lines and CRLF line ends
            tmp_path, "\r\n\r\n".join(json.dumps(o) for o in objects), "crlf.jsonl"
        ),
    ],
    ids=["list_page", "search_result", "array", "json_lines", "json_lines_crlf"],
)
def test_list_pages_arrays_and_json_lines_read_the_same(
    tmp_path: Path, write_objects: Callable[[Path, list[Any]], Path]
) -> None:
    objects = [payment_intent("pi_1"), payment_intent("pi_2", amount=99, status="canceled")]

    observations = read_payment_intents_json(write_objects(tmp_path, objects))

    assert [(o.payment_intent_id, o.amount, o.status) for o in observations] == [
        ("pi_1", 1250, "succeeded"),
        ("pi_2", 99, "canceled"),
    ]


def test_a_single_object_and_stdin_bytes_read_the_same(tmp_path: Path) -> None:
    document = payment_intent()
    from_file = read_payment_intents_json(json_file(tmp_path, document))
    from_bytes = parse_payment_intents_json(json.dumps(document).encode(), "stdin")
    assert from_file == from_bytes and len(from_file) == 1


@pytest.mark.parametrize(
    ("latest_charge", "charge_id", "offline_collected", "card_brand"),
    [
        ("ch_1", "ch_1", None, None),
        (None, None, None, None),
        (expanded_charge(OFFLINE_MARKER, "mastercard"), "ch_1", True, "mastercard"),
        (expanded_charge(None), "ch_1", False, "visa"),  # collected online
        (
            {"id": "ch_1", "object": "charge", "payment_method_details": {"type": "card"}},
            "ch_1",
            None,
            None,
        ),
    ],
    ids=["id", "none", "expanded_offline", "expanded_online", "expanded_not_card_present"],
)
def test_latest_charge_as_an_id_or_expanded(
    tmp_path: Path,
    latest_charge: Any,
    charge_id: str | None,
    offline_collected: bool | None,
    card_brand: str | None,
) -> None:
    path = json_file(tmp_path, payment_intent(latest_charge=latest_charge))

    (observation,) = read_payment_intents_json(path)

    assert (observation.charge_id, observation.offline_collected, observation.card_brand) == (
        charge_id,
        offline_collected,
        card_brand,
    )


def test_a_declined_payment_intent_keeps_its_decline_code(tmp_path: Path) -> None:
    declined = payment_intent(
        status="requires_payment_method",
        amount_received=0,
        latest_charge="ch_9",
        last_payment_error={
            "type": "card_error",
            "code": "card_declined",
            "decline_code": "insufficient_funds",
            "charge": "ch_9",
        },
    )

    (observation,) = read_payment_intents_json(json_file(tmp_path, declined))

    assert (observation.status, observation.decline_code, observation.charge_id) == (
        "requires_payment_method",
        "insufficient_funds",
        "ch_9",
    )


@pytest.mark.parametrize(
    ("metadata", "offline_id"),
    [
        ({"offline_id": "a"}, "a"),
        ({"offlineId": "b"}, "b"),
        ({"unique-id": "c"}, "c"),
        ({"unique-id": "c", "offlineId": "b", "offline_id": "a"}, "a"),
        ({"offline_id": "", "unique-id": "c"}, "c"),
        ({"order": "A-17"}, None),
        ({}, None),
        (None, None),
    ],
)
def test_the_offline_id_comes_from_the_metadata_keys_in_order_json(
    tmp_path: Path, metadata: dict[str, str] | None, offline_id: str | None
) -> None:
    path = json_file(tmp_path, payment_intent(metadata=metadata))
    assert read_payment_intents_json(path)[0].offline_id == offline_id


def test_fields_that_may_be_absent_are_none(tmp_path: Path) -> None:
    minimal = {
        "id": "pi_1",
        "object": "payment_intent",
        "amount": 500,
        "currency": "JPY",
        "status": "requires_payment_method",
    }

    (observation,) = read_payment_intents_json(json_file(tmp_path, minimal))

    assert observation.currency == "jpy"
    assert (
        observation.amount_received,
        observation.created_at,
        observation.charge_id,
        observation.offline_id,
        observation.decline_code,
    ) == (None, None, None, None, None)


@pytest.mark.parametrize(
    ("bad", "field", "code"),
    [
        ({"object": "charge", "id": "ch_1"}, "object", "INVALID_VALUE"),
        ({"object": "event"}, "object", "INVALID_VALUE"),
        ({"id": None}, "id", "MISSING_FIELD"),
        ({"id": "pi 1"}, "id", "INVALID_VALUE"),
        ({"amount": None}, "amount", "MISSING_FIELD"),
        ({"amount": 12.5}, "amount", "INVALID_AMOUNT"),
        ({"amount": 1250.0}, "amount", "INVALID_AMOUNT"),
        ({"amount": "1250"}, "amount", "INVALID_AMOUNT"),
        ({"amount": True}, "amount", "INVALID_AMOUNT"),
        ({"amount": -5}, "amount", "INVALID_AMOUNT"),
        ({"amount_received": 1e3}, "amount_received", "INVALID_AMOUNT"),
        ({"currency": None}, "currency", "MISSING_FIELD"),
        ({"currency": "usx"}, "currency", "UNKNOWN_CURRENCY"),
        ({"status": None}, "status", "MISSING_FIELD"),
        ({"status": ""}, "status", "INVALID_VALUE"),
        ({"status": "x" * 65}, "status", "INVALID_VALUE"),
        ({"created": "2026-11-22"}, "created", "INVALID_TIMESTAMP"),
        ({"metadata": ["offline_id"]}, "metadata", "INVALID_VALUE"),
        ({"metadata": {"offline_id": 17}}, "metadata.offline_id", "INVALID_VALUE"),
        ({"latest_charge": 7}, "latest_charge", "INVALID_VALUE"),
        ({"metadata": {"offlineId": "x" * 256}}, "metadata", "INVALID_VALUE"),
        ({"latest_charge": {"object": "charge"}}, "latest_charge.id", "MISSING_FIELD"),
    ],
)
def test_anything_but_a_payment_intent_is_refused_naming_the_object_and_field(
    tmp_path: Path, bad: dict[str, Any], field: str, code: str
) -> None:
    objects = [payment_intent("pi_1"), {**payment_intent("pi_2"), **bad}]

    error = refused(read_payment_intents_json, json_file(tmp_path, list_page(objects)))

    assert [(p.field, str(p.code)) for p in error.problems] == [(field, code)]
    (problem,) = error.problems
    assert problem.details["object"] == "data[1]" and "object data[1]" in problem.message
    if "id" not in bad:
        assert problem.details["id"] == "pi_2" and "pi_2" in problem.message
    assert f"'{field}'" in problem.message


def test_every_bad_object_is_listed_with_its_json_lines_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "\n".join(
            [
                json.dumps(payment_intent("pi_1")),
                json.dumps(payment_intent("pi_2", amount=12.5, currency="usx")),
                "",
                '{"id": "pi_3", "object": "payment_intent", ',  # line 4: cut
                json.dumps([payment_intent("pi_5")]),
                json.dumps({"id": "ch_6", "object": "charge"}),
            ]
        ),
        "intents.jsonl",
    )

    error = refused(read_payment_intents_json, path)

    assert problems(error) == [
        (2, "amount", "INVALID_AMOUNT"),
        (2, "currency", "UNKNOWN_CURRENCY"),
        (4, None, "MALFORMED_JSON"),
        (5, None, "INVALID_VALUE"),
        (6, "object", "INVALID_VALUE"),
    ]
    assert "line 2, id pi_2, field 'amount'" in error.problems[0].message
    assert "ch_6" in error.problems[4].message


@pytest.mark.parametrize(
    "text", ["", "  \n", '{\n  "object": "list",\n', "[1, 2", "nope", '{"amount": NaN}']
)
def test_text_that_is_not_json_is_refused(tmp_path: Path, text: str) -> None:
    error = refused(read_payment_intents_json, write(tmp_path, text, "intents.json"))
    assert [str(p.code) for p in error.problems] == ["MALFORMED_JSON"]


def test_a_list_page_without_data_is_refused(tmp_path: Path) -> None:
    error = refused(read_payment_intents_json, json_file(tmp_path, {"object": "list"}))
    assert problems(error) == [(None, "data", "INVALID_VALUE")]


@pytest.mark.parametrize(
    "text",
    [
        json.dumps([payment_intent(metadata={"note": f"card {PAN}"})]),
        json.dumps(payment_intent(description=PAN.replace(" ", ""))),
        json.dumps(payment_intent()) + "\n" + '{"id": "pi_2", "note": "' + PAN + '"',  # cut
        '[{"id": "pi_1", "card": "' + PAN + '"',  # not JSON at all
    ],
    ids=["array", "single", "json_lines_malformed", "malformed"],
)
def test_a_card_number_anywhere_refuses_the_json_file_without_echoing_it(
    tmp_path: Path, text: str
) -> None:
    error = refused(read_payment_intents_json, write(tmp_path, text, "intents.json"))
    assert [str(p.code) for p in error.problems] == ["CARD_NUMBER_DETECTED"]
    assert_never_echoed(error)


def test_a_json_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "intents.json"
    path.write_bytes(
        json.dumps(payment_intent(description="café"), ensure_ascii=False).encode("latin-1")
    )
    assert problems(refused(read_payment_intents_json, path)) == [(1, None, "INVALID_VALUE")]
