"""Scale-out: `serve --workers 2` and a second `serve` on one PostgreSQL, many concurrent
clients spread over them. The limits hold across devices and servers, no record is lost or
doubled, the same Idempotency-Key sent to two servers at once is applied once, the hash
chain verifies, and a key revoked is refused by every server at its next request. SQLite
refuses more than one worker."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support import records as r
from tests.support.api_client import Answer, Api, metric, new_key
from tests.support.cli import run
from tests.support.serve import free_port, running

DEVICES = [f"tmr_{n}" for n in range(1, 5)]
LIMIT = 10_000  # usd stored (and held) at the location
AMOUNT = 1_000


@pytest.fixture
def two_servers(postgres_url: str, tmp_path: Path) -> Iterator[list[Api]]:
    """Three server processes (two workers of one `serve`, and another `serve`), a client of
    each `serve` holding the same pos key; one location with four readers."""
    with (
        running(postgres_url, tmp_path, "--workers", "2") as first,
        running(postgres_url, tmp_path) as second,
    ):
        admin = Api(first.port, new_key(postgres_url, "admin"))
        limits = {"per_payment_max": {"usd": 5_000}, "stored_amount_max": {"usd": LIMIT}}
        configure = r.location("tml_1", limits=limits, device_limits={})
        readers = [r.device(device) for device in DEVICES]
        assert admin.post("/v1/records/batch", {"records": [configure, *readers]}).status == 200
        token = new_key(postgres_url, "pos", "tml_1")
        yield [Api(first.port, token), Api(second.port, token)]


def test_reservations_across_servers_never_exceed_the_limit(two_servers: list[Api]) -> None:
    sales = [
        {
            "offline_id": str(uuid.uuid4()),
            "amount": AMOUNT,
            "currency": "usd",
            "device_id": DEVICES[n % len(DEVICES)],
            "location_id": "tml_1",
        }
        for n in range(3 * LIMIT // AMOUNT)
    ]

    def reserve(n: int) -> Answer:
        return two_servers[n % 2].post("/v1/reservations", sales[n])

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(reserve, range(len(sales))))
    assert all(a.status == 200 or a.code == "CONTENTION" for a in answers), answers
    granted = [n for n, a in enumerate(answers) if a.status == 200 and a.body["granted"]]
    assert 0 < len(granted) * AMOUNT <= LIMIT
    # Each answer is recorded once: asked again, on the other server, it is the same.
    for n in granted[:3]:
        assert two_servers[(n + 1) % 2].post("/v1/reservations", sales[n]).body == answers[n].body


def test_concurrent_sales_are_each_recorded_once(two_servers: list[Api], postgres_url: str) -> None:
    offline_ids = [str(uuid.uuid4()) for _ in range(24)]

    def sell(n: int) -> list[Answer]:
        offline_id, device = offline_ids[n], DEVICES[n % len(DEVICES)]
        api = two_servers[n % 2]
        sale = [r.created(offline_id, device_id=device), r.collected(offline_id)]
        return [api.post("/v1/records", record) for record in [*sale, r.confirmed(offline_id)]]

    with ThreadPoolExecutor(12) as pool:
        answers = [a for sale in pool.map(sell, range(len(offline_ids))) for a in sale]
    assert all(a.status == 200 and a.body["recorded"] for a in answers), answers
    queue = two_servers[1].get("/v1/locations/tml_1/stored-payments").body
    assert sorted(p["offline_id"] for p in queue) == sorted(offline_ids)
    status = two_servers[0].get("/v1/locations/tml_1").body
    assert status["offline_payments_count"] == len(offline_ids)
    verified = run("audit", "verify", "--db", postgres_url)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    # The first serve's two workers counted their requests apart; a scrape sums them: the
    # fixture's batch of five records, and three records of every other sale.
    finance = two_servers[0].as_key(new_key(postgres_url, "finance"))
    text = finance.get("/metrics").body
    recorded = 'offline_ledger_records_total{code="",outcome="recorded"}'
    assert metric(text, recorded) == 5 + 3 * len(offline_ids[::2])


def test_one_idempotency_key_sent_to_two_servers_at_once_applies_once(
    two_servers: list[Api],
) -> None:
    for round_ in range(8):
        record = r.created(device_id=DEVICES[round_ % len(DEVICES)])
        answers = at_once(two_servers, record, {"Idempotency-Key": f"sale-{round_}"})
        assert sorted(a.body["recorded"] for a in answers) == [False, True], answers
        assert answers[0].body["state"] == answers[1].body["state"]


def at_once(servers: list[Api], record: dict[str, object], headers: dict[str, str]) -> list[Answer]:
    """The same request sent to each server at the same moment."""
    start = threading.Barrier(len(servers))

    def send(api: Api) -> Answer:
        start.wait()
        return api.post("/v1/records", record, headers=headers)

    with ThreadPoolExecutor(len(servers)) as pool:
        return list(pool.map(send, servers))


def test_a_revoked_key_is_refused_at_once_by_every_server(
    two_servers: list[Api], postgres_url: str
) -> None:
    # Each server process reads the key at every request (the first server's two workers
    # each take some of the requests on their shared port).
    for api in two_servers * 4:
        assert api.get("/v1/locations/tml_1").status == 200
    token = two_servers[0].token
    assert token is not None
    done = run("keys", "revoke", token.split("_")[1], "--db", postgres_url)
    assert done.returncode == 0, done.stderr
    for api in two_servers * 4:
        answer = api.get("/v1/locations/tml_1")
        assert (answer.status, answer.code) == (401, "UNAUTHENTICATED"), answer


def test_sqlite_serves_one_process_and_says_so(sqlite_url: str) -> None:
    port = str(free_port())
    secret = {"STRIPE_WEBHOOK_SECRET": "whsec_test"}
    done = run("serve", "--db", sqlite_url, "--port", port, "--workers", "2", env=secret)
    assert done.returncode == 2
    assert "serves one process" in done.stderr and "PostgreSQL" in done.stderr
