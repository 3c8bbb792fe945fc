"""Who may call the HTTP API for what: every role on every kind of endpoint, a key scoped to
one shop against the other shop's ids (404, as if they did not exist), revoked and bad keys
(401 without detail), the per-key rate; and the server's log holds no token."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import records as r
from tests.support.api_client import Api, new_key
from tests.support.cli import CLI, run
from tests.support.serve import Server, running


@pytest.fixture
def shop(sqlite_url: str, tmp_path: Path) -> Iterator[tuple[Server, Api, str]]:
    """Two shops with a reader each and a stored payment each (tml_2's id is returned)."""
    with running(sqlite_url, tmp_path) as server:
        admin = Api(server.port, new_key(sqlite_url, "admin"))
        other = str(uuid.uuid4())
        records = [
            r.location("tml_1"),
            r.location("tml_2"),
            r.device(),
            r.device("tmr_2", "tml_2"),
            *r.stored_payment(),
            *r.stored_payment(other, device_id="tmr_2", location_id="tml_2"),
        ]
        answer = admin.post("/v1/records/batch", {"records": records})
        assert answer.body["refused"] == 0, answer.body
        yield server, admin, other


def test_each_role_reaches_its_endpoints_only(
    shop: tuple[Server, Api, str], sqlite_url: str
) -> None:
    _, admin, _ = shop
    pos = admin.as_key(new_key(sqlite_url, "pos"))
    finance = admin.as_key(new_key(sqlite_url, "finance"))
    configure = r.location("tml_3")
    sale = {"amount": 100, "currency": "usd", "device_id": "tmr_1", "location_id": "tml_1"}
    assert pos.post("/v1/records", configure).code == "FORBIDDEN"
    assert pos.post("/v1/records/batch", {"records": [configure]}).code == "FORBIDDEN"
    assert pos.post("/v1/decisions", {**sale, "at": r.at(5)}).status == 200
    assert pos.get("/v1/report").status == 403
    assert pos.get("/v1/locations/tml_2").status == 200  # no locations: every location
    assert finance.post("/v1/records", r.created()).code == "FORBIDDEN"
    assert finance.post("/v1/decisions", sale).code == "FORBIDDEN"
    assert finance.get("/v1/report").status == 200
    assert finance.get("/v1/locations/tml_1/stored-payments").status == 200
    assert admin.post("/v1/records", configure).status == 200
    assert admin.get("/v1/report?format=csv").status == 200


def test_a_key_for_one_shop_finds_nothing_of_another(
    shop: tuple[Server, Api, str], sqlite_url: str
) -> None:
    _, admin, other = shop
    pos = admin.as_key(new_key(sqlite_url, "pos", "tml_1"))
    unknown_id = str(uuid.uuid4())
    for path in (
        "/v1/locations/tml_2",
        "/v1/locations/tml_2/devices/tmr_2",
        "/v1/locations/tml_2/stored-payments",
        "/v1/locations/tml_2/refusals",
        f"/v1/payments/{other}",
        f"/v1/payments/{other}/history",
    ):
        hidden, absent = (
            pos.get(path),
            pos.get(path.replace("tml_2", "tml_9").replace(other, unknown_id)),
        )
        assert (hidden.status, hidden.code) == (absent.status, absent.code), path
        assert (
            hidden.status == 404
            and hidden.body["detail"].replace("tml_2", "tml_9").replace(other, unknown_id)
            == absent.body["detail"]
        ), path
    assert [loc["location_id"] for loc in pos.get("/v1/locations").body] == ["tml_1"]
    step = pos.post("/v1/records", r.forwarded(other))
    assert (step.status, step.code) == (404, "UNKNOWN_PAYMENT")
    sale = pos.post("/v1/records", r.created(location_id="tml_2", device_id="tmr_2"))
    assert (sale.status, sale.code) == (404, "UNKNOWN_LOCATION")
    reserve = {"amount": 1, "currency": "usd", "device_id": "tmr_2", "location_id": "tml_2"}
    held = pos.post("/v1/reservations", {**reserve, "offline_id": str(uuid.uuid4())})
    assert (held.status, held.code) == (404, "UNKNOWN_LOCATION")
    batch = pos.post("/v1/records/batch", {"records": [r.forwarded(other), *r.stored_payment()]})
    assert [(i["error"] or {}).get("code") for i in batch.body["results"]] == [
        "UNKNOWN_PAYMENT",
        None,
        None,
        None,
    ]
    assert admin.get(f"/v1/payments/{other}").body["status"] == "stored"  # untouched
    finance = admin.as_key(new_key(sqlite_url, "finance", "tml_1"))
    assert finance.get("/v1/report").code == "MISSING_FIELD"
    assert finance.get("/v1/report?location_id=tml_2").status == 404
    assert finance.get("/v1/report?location_id=tml_1").status == 200


def test_no_key_a_bad_key_and_a_revoked_key_get_401_without_detail(
    shop: tuple[Server, Api, str], sqlite_url: str
) -> None:
    server, admin, _ = shop
    token = new_key(sqlite_url, "pos")
    key_id = token.split("_")[1]
    assert admin.as_key(token).get("/v1/locations").status == 200
    refused = [
        admin.as_key(None).get("/v1/locations"),
        admin.as_key("olk_0123456789abcdef_guess").get("/v1/locations"),
        admin.as_key(token[:-1] + ("A" if token[-1] != "A" else "B")).get("/v1/locations"),
        admin.as_key("not a key at all").get("/v1/locations"),
    ]
    done = subprocess.run(
        [str(CLI), "keys", "revoke", key_id, "--db", sqlite_url], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    refused.append(admin.as_key(token).get("/v1/locations"))
    for answer in refused:
        assert (answer.status, answer.code, answer.body["detail"]) == (
            401,
            "UNAUTHENTICATED",
            "authentication required",
        )
        assert answer.headers["www-authenticate"] == "Bearer"
    listed = subprocess.run(
        [str(CLI), "keys", "list", "--json", "--db", sqlite_url], capture_output=True, text=True
    )
    assert key_id in listed.stdout and token not in listed.stdout
    log = server.log.read_text()
    secret = token.split("_", 2)[2]  # base64url: it may hold "_" itself
    assert "UNAUTHENTICATED" in log and token not in log and secret not in log


def test_past_its_rate_a_key_is_answered_429(sqlite_url: str, tmp_path: Path) -> None:
    rate = {"OFFLINE_LEDGER_API_RATE_PER_SECOND": "0.01", "OFFLINE_LEDGER_API_RATE_BURST": "2"}
    with running(sqlite_url, tmp_path, **rate) as server:
        api = Api(server.port, new_key(sqlite_url, "finance"))
        other = api.as_key(new_key(sqlite_url, "finance"))
        answers = [api.get("/v1/locations") for _ in range(3)]
        assert [a.status for a in answers] == [200, 200, 429]
        assert answers[2].code == "RATE_LIMITED" and int(answers[2].headers["retry-after"]) >= 1
        assert other.get("/v1/locations").status == 200  # per key


def test_keys_create_makes_the_database_and_list_refuses_a_missing_one(tmp_path: Path) -> None:
    fresh = f"sqlite:///{tmp_path / 'new.db'}"
    missing = run("keys", "list", "--db", f"sqlite:///{tmp_path / 'none.db'}")
    assert missing.returncode == 2 and "DATABASE_NOT_FOUND" in missing.stderr
    made = run("keys", "create", "--role", "pos", "--name", "till", "--db", fresh, "--json")
    assert made.returncode == 0, made.stderr
    key = json.loads(made.stdout)
    assert key["token"].startswith(f"olk_{key['key_id']}_")
    listed = json.loads(run("keys", "list", "--db", fresh, "--json").stdout)
    assert [k["key_id"] for k in listed] == [key["key_id"]] and "token" not in listed[0]
