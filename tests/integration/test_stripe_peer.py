"""The Stripe peer the tests use: localstripe and the fault proxy, driven by stripe-python.

Everything goes over real HTTP on 127.0.0.1 to subprocesses (tests/support/stripe_fixtures.py).
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests
import stripe

if TYPE_CHECKING:  # imported at run time by pytest_plugins, which also rewrites its asserts
    from tests.support.stripe_fixtures import FaultProxy, ServerProcess

pytest_plugins = ["tests.support.stripe_fixtures"]

API_KEY = "sk_test_offline_ledger"
PI_CREATE = "^/v1/payment_intents$"


def client_for(url: str, retries: int = 0, timeout: float = 10.0) -> stripe.StripeClient:
    session = requests.Session()
    session.trust_env = False  # straight to 127.0.0.1, whatever HTTP(S)_PROXY says
    return stripe.StripeClient(
        api_key=API_KEY,
        base_addresses={"api": url},
        max_network_retries=retries,
        http_client=stripe.RequestsClient(timeout=timeout, session=session),
    )


def create_pi(
    client: stripe.StripeClient,
    offline_id: str,
    *,
    payment_method: str = "pm_card_visa",
    idempotency_key: str | None = None,
    amount: int = 2500,
) -> stripe.PaymentIntent:
    params: Any = {
        "amount": amount,
        "currency": "usd",
        "metadata": {"offline_id": offline_id},
        "payment_method": payment_method,
        "capture_method": "manual",
        "confirm": True,
    }
    options: Any = {} if idempotency_key is None else {"idempotency_key": idempotency_key}
    return client.v1.payment_intents.create(params=params, options=options)


def by_offline_id(client: stripe.StripeClient, offline_id: str) -> list[stripe.PaymentIntent]:
    """localstripe has no Search API: list everything and filter on the metadata."""
    listing = client.v1.payment_intents.list(params={"limit": 100})
    return [pi for pi in listing.auto_paging_iter() if pi.metadata["offline_id"] == offline_id]


# --- plain localstripe ------------------------------------------------------------------------


def test_create_confirm_capture(stripe_server: str) -> None:
    client = client_for(stripe_server)
    offline_id = str(uuid.uuid4())

    pi = create_pi(client, offline_id, idempotency_key=f"fwd-{offline_id}")
    assert pi.id.startswith("pi_")
    assert pi.status == "requires_capture"
    assert pi.amount == 2500
    assert pi.metadata["offline_id"] == offline_id

    captured = client.v1.payment_intents.capture(pi.id)
    assert captured.status == "succeeded"
    assert client.v1.payment_intents.retrieve(pi.id).status == "succeeded"


def test_list_paginates(stripe_server: str) -> None:
    client = client_for(stripe_server)
    created = {create_pi(client, str(uuid.uuid4()), amount=100 + i).id for i in range(5)}

    first = client.v1.payment_intents.list(params={"limit": 2})
    assert len(first.data) == 2
    assert first.has_more
    after = first.data[-1].id
    second = client.v1.payment_intents.list(params={"limit": 2, "starting_after": after})
    assert not {pi.id for pi in first.data} & {pi.id for pi in second.data}

    listing = client.v1.payment_intents.list(params={"limit": 2})
    assert {pi.id for pi in listing.auto_paging_iter()} == created  # the store was flushed


def test_decline_raises_card_error(stripe_server: str) -> None:
    client = client_for(stripe_server)
    offline_id = str(uuid.uuid4())

    with pytest.raises(stripe.CardError) as declined:
        create_pi(client, offline_id, payment_method="pm_card_chargeCustomerFail")
    assert declined.value.http_status == 402
    assert declined.value.code == "card_declined"
    # The PaymentIntent exists although the error does not name it: find it by offline_id.
    [left_behind] = by_offline_id(client, offline_id)
    assert left_behind.status == "requires_payment_method"


def test_state_is_not_pickled_to_the_shared_temp_folder(stripe_server: str) -> None:
    shared = Path("/tmp/localstripe.pickle")
    before = shared.stat().st_mtime_ns if shared.exists() else None
    create_pi(client_for(stripe_server), str(uuid.uuid4()))
    after = shared.stat().st_mtime_ns if shared.exists() else None
    assert after == before


# --- through the fault proxy ------------------------------------------------------------------


def test_429_with_retry_after_raises_rate_limit_error(fault_proxy: FaultProxy) -> None:
    fault_proxy.rules(
        [
            {
                "action": "status",
                "method": "POST",
                "path": PI_CREATE,
                "status": 429,
                "headers": {"Retry-After": "7"},
                "times": 1,
            }
        ]
    )
    client = client_for(fault_proxy.url, retries=2)

    with pytest.raises(stripe.RateLimitError) as limited:
        create_pi(client, str(uuid.uuid4()))
    assert limited.value.http_status == 429
    assert limited.value.headers is not None and limited.value.headers["Retry-After"] == "7"
    assert limited.value.error is not None and limited.value.error.type == "rate_limit_error"
    assert len(fault_proxy.log()) == 1  # stripe-python does not retry a plain 429
    assert client_for(fault_proxy.upstream).v1.payment_intents.list().data == []


def test_503_once_is_retried_with_the_same_key(fault_proxy: FaultProxy) -> None:
    fault_proxy.rules(
        [{"action": "status", "method": "POST", "path": PI_CREATE, "status": 503, "times": 1}]
    )
    client = client_for(fault_proxy.url, retries=2)
    offline_id = str(uuid.uuid4())

    pi = create_pi(client, offline_id)  # automatic Idempotency-Key, reused by the retry
    assert pi.status == "requires_capture"
    log = fault_proxy.log()
    assert [entry["status"] for entry in log] == [503, 200]
    assert [entry["action"] for entry in log] == ["status", "forward"]
    keys = {entry["idempotency_key"] for entry in log}
    assert len(keys) == 1 and None not in keys
    assert [p.id for p in by_offline_id(client, offline_id)] == [pi.id]


@pytest.mark.parametrize(
    ("rule", "idempotency", "expected"),
    [
        ({"action": "drop_after"}, False, 2),
        ({"action": "drop_after"}, True, 1),
        ({"action": "status_after", "status": 502}, False, 2),
        ({"action": "status_after", "status": 502}, True, 1),
    ],
    ids=["drop_after-plain", "drop_after-replay", "status_after-plain", "status_after-replay"],
)
def test_lost_answer_then_retry(
    fault_proxy: FaultProxy, rule: dict[str, Any], idempotency: bool, expected: int
) -> None:
    """The write happened but the answer was lost; the retry reuses the key.

    Plain localstripe ignores Idempotency-Key: a second PaymentIntent. With the proxy's replay
    (Stripe's documented behaviour), exactly one.
    """
    fault_proxy.idempotency(idempotency)
    fault_proxy.rules([{**rule, "method": "POST", "path": PI_CREATE, "times": 1}])
    client = client_for(fault_proxy.url, retries=2)
    offline_id = str(uuid.uuid4())

    pi = create_pi(client, offline_id, idempotency_key=f"fwd-{offline_id}")

    assert len(by_offline_id(client, offline_id)) == expected
    log = [entry for entry in fault_proxy.log() if entry["method"] == "POST"]
    assert [entry["idempotency_key"] for entry in log] == [f"fwd-{offline_id}"] * 2
    assert [entry["upstream_status"] for entry in log] == [200, 200]
    assert log[1]["replayed"] is idempotency
    assert pi.last_response is not None
    replayed_header = pi.last_response.headers.get("Idempotent-Replayed")
    assert replayed_header == ("true" if idempotency else None)


def test_same_key_other_params_is_an_idempotency_error(fault_proxy: FaultProxy) -> None:
    fault_proxy.idempotency(True)
    client = client_for(fault_proxy.url)
    offline_id = str(uuid.uuid4())
    create_pi(client, offline_id, idempotency_key="same-key")

    with pytest.raises(stripe.IdempotencyError) as reused:
        create_pi(client, offline_id, idempotency_key="same-key", amount=999)
    assert reused.value.http_status == 400
    assert len(by_offline_id(client, offline_id)) == 1


def test_drop_before_never_reaches_the_peer(fault_proxy: FaultProxy) -> None:
    fault_proxy.rules([{"action": "drop_before", "method": "POST", "path": PI_CREATE}])
    client = client_for(fault_proxy.url, retries=1)

    with pytest.raises(stripe.APIConnectionError):
        create_pi(client, str(uuid.uuid4()))
    log = fault_proxy.log()
    assert [(e["action"], e["status"], e["upstream_status"]) for e in log] == [
        ("drop_before", None, None)
    ] * 2
    assert client_for(fault_proxy.upstream).v1.payment_intents.list().data == []


def test_a_late_request_reaches_the_peer_after_the_client_gave_up(
    fault_proxy: FaultProxy,
) -> None:
    fault_proxy.rules([{"action": "late", "method": "POST", "path": PI_CREATE, "times": 1}])
    client = client_for(fault_proxy.url, retries=0, timeout=0.5)
    offline_id = str(uuid.uuid4())

    with pytest.raises(stripe.APIConnectionError, match="timed out"):
        create_pi(client, offline_id)

    # The request still reaches the peer once the client is gone: an ambiguous outcome.
    deadline = time.monotonic() + 300  # only reached if the proxy never forwards it
    while fault_proxy.log()[0]["upstream_status"] is None:
        assert time.monotonic() < deadline, "the late request never reached the peer"
        time.sleep(0.05)
    assert fault_proxy.log()[0]["upstream_status"] == 200
    assert len(by_offline_id(client_for(fault_proxy.upstream), offline_id)) == 1


def test_seeded_random_faults_repeat(fault_proxy: FaultProxy) -> None:
    client = client_for(fault_proxy.url)
    pi = create_pi(client, str(uuid.uuid4()))

    def failures() -> list[int]:
        fault_proxy.clear()
        fault_proxy.rules(
            [
                {
                    "action": "status",
                    "status": 500,
                    "method": "GET",
                    "path": "^/v1/payment_intents/",
                    "probability": 0.3,
                    "seed": 42,
                }
            ]
        )
        failed = []
        for i in range(40):
            try:
                client.v1.payment_intents.retrieve(pi.id)
            except stripe.APIError:
                failed.append(i)
        assert [e["status"] == 500 for e in fault_proxy.log()] == [i in failed for i in range(40)]
        return failed

    first = failures()
    assert 0 < len(first) < 40
    assert failures() == first


# --- the processes themselves -----------------------------------------------------------------


def listening_addresses(port: int) -> set[str]:
    """Hex local addresses of the TCP sockets listening on ``port``, IPv4 and IPv6."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.split(":")
            if state == "0A" and int(port_hex, 16) == port:
                found.add(address)
    return found


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc/net/tcp")
def test_servers_listen_on_loopback_only(
    stripe_server_process: ServerProcess, fault_proxy_process: ServerProcess
) -> None:
    for server in (stripe_server_process, fault_proxy_process):
        assert server.url.startswith("http://127.0.0.1:")
        assert listening_addresses(server.port) == {"0100007F"}  # 127.0.0.1, nothing else


def gone(process: ServerProcess) -> bool:
    try:
        os.kill(process.pid, 0)
    except ProcessLookupError:
        return process.process.returncode is not None
    return False


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def test_processes_are_gone_after_use(tmp_path: Path) -> None:
    from tests.support.stripe_fixtures import running_server

    with running_server("tests.support.stripe_peer", log_path=tmp_path / "peer.log") as peer:
        args = ("--upstream", peer.url, "--idempotency")
        with running_server(
            "tests.support.fault_proxy", *args, log_path=tmp_path / "proxy.log"
        ) as proxy:
            create_pi(client_for(proxy.url, retries=0), str(uuid.uuid4()))  # leaves keep-alives
    assert gone(peer) and gone(proxy)
    assert refused(peer.port) and refused(proxy.port)


def test_server_exits_when_its_parent_goes_away(tmp_path: Path) -> None:
    from tests.support.stripe_fixtures import running_server

    with running_server("tests.support.stripe_peer", log_path=tmp_path / "peer.log") as peer:
        assert peer.process.stdin is not None
        peer.process.stdin.close()  # what the kernel does when the test process dies
        assert peer.process.wait(timeout=10) == 0
