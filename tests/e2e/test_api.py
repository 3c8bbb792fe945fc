"""The HTTP API over real HTTP: `offline-ledger serve` in a subprocess on loopback, on a real
SQLite file and on real PostgreSQL, called as a POS backend in any language would (JSON over
urllib, a bearer key)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger import Ledger, LedgerError
from tests.support import records as r
from tests.support.api_client import Api, metric, new_key
from tests.support.serve import running

PAN = "4242424242424242"


@pytest.fixture
def served(database: str, tmp_path: Path) -> Iterator[tuple[Api, str]]:
    """The server, an admin key's client, and the database (two locations, a reader each)."""
    with running(database, tmp_path) as server:
        api = Api(server.port, new_key(database, "admin"))
        for record in (r.location("tml_1"), r.location("tml_2"), r.device()):
            assert api.post("/v1/records", record).status == 200
        assert api.post("/v1/records", r.device("tmr_2", "tml_2")).status == 200
        yield api, database


def test_a_sale_through_the_api(served: tuple[Api, str]) -> None:
    admin, database = served
    pos = admin.as_key(new_key(database, "pos", "tml_1"))
    offline_id = str(uuid.uuid4())
    sale = {"amount": 1250, "currency": "usd", "device_id": "tmr_1", "location_id": "tml_1"}

    decided = pos.post("/v1/decisions", {**sale, "at": r.at(1)})
    assert (decided.status, decided.body["offline_behavior"]) == (200, "prefer_online")
    held = pos.post("/v1/reservations", {**sale, "offline_id": offline_id, "at": r.at(1)})
    assert (held.status, held.body["granted"]) == (200, True)
    again = pos.post("/v1/reservations", {**sale, "offline_id": offline_id, "at": r.at(1)})
    assert again.body == held.body

    for record in (r.created(offline_id), r.collected(offline_id), r.confirmed(offline_id)):
        answer = pos.post("/v1/records", record)
        assert (answer.status, answer.body["recorded"]) == (200, True), answer
    assert answer.body["state"]["status"] == "stored"
    assert answer.headers["request-id"]

    payment = pos.get(f"/v1/payments/{offline_id}")
    assert (payment.status, payment.body["status"], payment.body["amount"]) == (200, "stored", 1250)
    events = [entry["event"] for entry in pos.get(f"/v1/payments/{offline_id}/history").body]
    assert len(events) >= 3

    queue = pos.get("/v1/locations/tml_1/stored-payments?device_id=tmr_1")
    assert queue.status == 200
    assert [(p["offline_id"], p["amount"]) for p in queue.body] == [(offline_id, 1250)]
    assert queue.body[0]["age_seconds"] > 0  # stored at T0 + 2 minutes, days ago

    status = pos.get("/v1/locations/tml_1")
    assert (status.status, status.body["offline_payments_count"]) == (200, 1)
    assert [loc["location_id"] for loc in pos.get("/v1/locations").body] == ["tml_1"]
    device = pos.get("/v1/locations/tml_1/devices/tmr_1")
    assert device.body["offline_payment_amounts_by_currency"] == {"usd": 1250}

    until = "2099-01-01T00:00:00Z"
    granted = pos.post(
        "/v1/allowances",
        {
            "device_id": "tmr_1",
            "location_id": "tml_1",
            "amounts": {"usd": 10_000},
            "count": 5,
            "valid_until": until,
        },
    )
    assert (granted.status, granted.body["count"]) == (200, 5)
    assert pos.get("/v1/locations/tml_1/devices/tmr_1/allowance").body == granted.body
    # With its `at`, a retry of the request gets the same grant; other content is a conflict.
    asked = {"device_id": "tmr_1", "location_id": "tml_1", "amounts": {"usd": 500}, "count": 2,
             "valid_until": until, "at": r.at(2)}  # fmt: skip
    first, retried = (pos.post("/v1/allowances", asked) for _ in range(2))
    assert (first.status, retried.status, retried.body) == (200, 200, first.body)
    changed = pos.post("/v1/allowances", {**asked, "count": 3})
    assert (changed.status, changed.code, changed.body["field"]) == (
        409,
        "IDEMPOTENCY_CONFLICT",
        "count",
    )

    too_much = {**sale, "amount": 60_000, "offline_id": str(uuid.uuid4()), "at": r.at(3)}
    refused = pos.post("/v1/reservations", too_much)
    assert (refused.status, refused.body["granted"]) == (200, False)
    listed = pos.get("/v1/locations/tml_1/refusals").body
    assert [(x["offline_id"], x["code"]) for x in listed] == [
        (too_much["offline_id"], "AMOUNT_EXCEEDS_MAX_OFFLINE_AMOUNT")
    ]
    abandoned = {**sale, "offline_id": str(uuid.uuid4()), "at": r.at(4)}
    assert pos.post("/v1/reservations", abandoned).body["granted"] is True
    released = pos.post(f"/v1/reservations/{abandoned['offline_id']}/release")
    assert (released.status, released.body["released_at"] is not None) == (200, True)

    finance = admin.as_key(new_key(database, "finance"))
    as_json = finance.get("/v1/report?location_id=tml_1")
    assert as_json.status == 200 and as_json.headers["content-type"] == "application/json"
    assert [row["offline_id"] for row in as_json.body["rows"]] == [offline_id]
    as_csv = finance.get("/v1/report?format=csv&location_id=tml_1&since=2026-11-01T00:00:00Z")
    assert as_csv.status == 200 and as_csv.headers["content-type"].startswith("text/csv")
    assert offline_id in as_csv.body


def test_idempotency_key_as_stripe_takes_it(served: tuple[Api, str]) -> None:
    api, _ = served
    record = r.created()
    key = {"Idempotency-Key": "sale-1-created"}
    first = api.post("/v1/records", record, headers=key)
    assert (first.status, first.body["recorded"]) == (200, True)
    assert "idempotent-replayed" not in first.headers
    again = api.post("/v1/records", record, headers=key)
    assert (again.status, again.body["recorded"], again.body["state"]) == (
        200,
        False,
        first.body["state"],
    )
    assert again.headers["idempotent-replayed"] == "true"
    changed = api.post("/v1/records", {**record, "amount": 1300}, headers=key)
    assert (changed.status, changed.code, changed.body["field"]) == (
        409,
        "IDEMPOTENCY_CONFLICT",
        "amount",
    )
    both = api.post("/v1/records", {**r.created(), "idempotency_key": "other"}, headers=key)
    assert (both.status, both.code, both.body["field"]) == (
        409,
        "IDEMPOTENCY_CONFLICT",
        "idempotency_key",
    )


def test_a_batch_answers_what_record_many_answers(served: tuple[Api, str]) -> None:
    api, _ = served
    offline_id = str(uuid.uuid4())
    batch = [
        r.created(offline_id),
        r.collected(offline_id),
        r.created(offline_id, amount=-5),
        r.confirmed(str(uuid.uuid4())),
        r.created(offline_id),
    ]
    answer = api.post("/v1/records/batch", {"records": batch}, headers={"Idempotency-Key": "b1"})
    assert answer.status == 200
    with Ledger.open("memory://") as library:
        for record in (r.location("tml_1"), r.device()):
            library.record(record)
        keyed = [{"idempotency_key": f"b1:{i}", **record} for i, record in enumerate(batch)]
        expected = library.record_many(keyed)
    got = [(item["recorded"], (item["error"] or {}).get("code")) for item in answer.body["results"]]
    assert got == [
        (None, str(e.code)) if isinstance(e, LedgerError) else (e.recorded, None) for e in expected
    ]
    assert (answer.body["recorded"], answer.body["repeats"], answer.body["refused"]) == (2, 1, 2)
    replay = api.post("/v1/records/batch", {"records": batch}, headers={"Idempotency-Key": "b1"})
    assert [item["recorded"] for item in replay.body["results"]] == [
        None if item["error"] else False for item in answer.body["results"]
    ]


def test_refusals_are_problem_details_with_the_ledger_codes(served: tuple[Api, str]) -> None:
    api, _ = served
    malformed = api.post("/v1/records", raw=b'{"type": ')
    assert (malformed.status, malformed.code) == (400, "MALFORMED_JSON")
    assert malformed.headers["content-type"] == "application/problem+json"
    assert set(malformed.body) >= {"type", "title", "status", "detail", "code", "request_id"}
    missing = api.post("/v1/records", {"type": "payment.created", "occurred_at": r.at()})
    assert (missing.status, missing.code, missing.body["field"]) == (
        422,
        "MISSING_FIELD",
        "offline_id",
    )
    card = api.post("/v1/records", r.collected(str(uuid.uuid4()), last4=PAN))
    assert (card.status, card.code) == (422, "CARD_NUMBER_DETECTED")
    assert PAN not in str(card.body)
    unknown = api.post("/v1/records", r.collected(str(uuid.uuid4())))
    assert (unknown.status, unknown.code) == (404, "UNKNOWN_PAYMENT")
    route = api.get("/v1/nothing-here")
    assert (route.status, route.code) == (404, "NOT_FOUND")
    large = api.post("/v1/records", raw=b"[" + b" " * (2 * 1024 * 1024) + b"]")
    assert (large.status, large.code) == (413, "PAYLOAD_TOO_LARGE")
    batch = api.post("/v1/records/batch", {"records": [r.created()] * 5001})
    assert (batch.status, batch.code) == (422, "BATCH_TOO_LARGE")
    asked = api.post("/v1/decisions", {"amount": 1, "currency": "usd"})
    assert (asked.status, asked.code) == (422, "MISSING_FIELD")
    supplied = api.get("/v1/report?stale_hours=0")
    assert (supplied.status, supplied.code, supplied.body["field"]) == (
        422,
        "INVALID_VALUE",
        "stale_hours",
    )


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/v1/report?location_id=tml%001", "location_id"),
        ("/v1/locations/tml_1/stored-payments?device_id=tmr%001", "device_id"),
        ("/v1/locations/tml%001", "location_id"),
        ("/v1/locations/tml_1/devices/tmr%20", "device_id"),
        ("/v1/locations/tml%001/refusals", "location_id"),
    ],
)
def test_a_name_the_wire_format_would_refuse_is_refused_in_a_path_or_query(
    served: tuple[Api, str], path: str, field: str
) -> None:
    """A NUL byte in a name reached the report's SQL, and PostgreSQL answered a server error."""
    api, _ = served
    refused = api.get(path)
    assert (refused.status, refused.code, refused.body["field"]) == (422, "INVALID_VALUE", field)


def test_health_ready_and_the_document(served: tuple[Api, str]) -> None:
    api, _ = served
    anonymous = api.as_key(None)
    assert anonymous.get("/health").body == {"status": "ok"}
    assert anonymous.get("/ready").body == {"status": "ok"}
    document = anonymous.get("/openapi.json")
    assert document.status == 200 and "/v1/records" in document.body["paths"]


def test_metrics_count_requests_and_records_and_read_the_stored_totals(
    served: tuple[Api, str],
) -> None:
    admin, database = served
    offline_id = str(uuid.uuid4())
    for record in (*r.stored_payment(offline_id), r.created(offline_id)):
        admin.post("/v1/records", record)
    assert admin.post("/v1/records", r.collected(str(uuid.uuid4()))).code == "UNKNOWN_PAYMENT"
    assert admin.as_key(new_key(database, "pos")).get("/metrics").status == 403
    scraped = admin.as_key(new_key(database, "finance")).get("/metrics")
    assert scraped.status == 200 and scraped.headers["content-type"].startswith("text/plain")
    text = scraped.body
    # The fixture's four records, this sale's three, then a repeat and a refusal.
    assert metric(text, 'offline_ledger_records_total{code="",outcome="recorded"}') == 7
    assert metric(text, 'offline_ledger_records_total{code="",outcome="repeat"}') == 1
    refused = 'offline_ledger_records_total{code="UNKNOWN_PAYMENT",outcome="refused"}'
    assert metric(text, refused) == 1
    posted = 'offline_ledger_http_requests_total{method="POST",route="/v1/records",status="200"}'
    assert metric(text, posted) == 8
    stored = 'offline_ledger_stored_amount_minor{currency="usd",location_id="tml_1"}'
    assert metric(text, stored) == 1250
    assert metric(text, 'offline_ledger_stored_payments{currency="usd",location_id="tml_1"}') == 1
    assert metric(text, "offline_ledger_projection_lag_events") >= 0
    assert metric(text, "offline_ledger_projection_settling") == 0
