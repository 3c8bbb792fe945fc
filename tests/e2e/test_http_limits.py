"""What one HTTP client can hold of `offline-ledger serve` (`adapters.http.http_limits`): the
installed command in a subprocess, raw sockets on loopback, short limits set through the
environment. Each test waits on what the server does (an answer, a log line), never on a
clock: a socket's timeout is only a guard against a server that never answers."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import stripe

from ledger import Ledger
from tests.support.serve import SECRET, Server, last_id, running

GUARD_SECONDS = 60.0  # a server that never answers fails the test instead of hanging it


def connect(server: Server) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=GUARD_SECONDS)
    return sock


def answer(sock: socket.socket) -> tuple[int, dict[str, str], Any]:
    """Everything the server sends until it closes: status, headers, JSON body."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("ascii").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in header_lines)
    return int(status_line.split()[1]), headers, json.loads(body)


def wait_for(condition: Any, what: str) -> None:
    deadline = time.monotonic() + GUARD_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.05)


def request_head(length: int) -> bytes:
    return (
        "POST /stripe/webhook HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


@pytest.fixture
def short(sqlite_url: str, tmp_path: Path) -> Iterator[Server]:
    """`serve` with half a second for headers and for a body, and at most 3 connections."""
    with running(
        sqlite_url,
        tmp_path,
        OFFLINE_LEDGER_HTTP_HEADER_SECONDS="0.5",
        OFFLINE_LEDGER_HTTP_BODY_SECONDS="0.5",
        OFFLINE_LEDGER_HTTP_CONNECTIONS="3",
    ) as server:
        yield server


def test_headers_that_never_end_are_answered_408_and_the_connection_closed(
    short: Server,
) -> None:
    with connect(short) as sock:
        sock.sendall(b"POST /stripe/webhook HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and no more
        status, headers, body = answer(sock)
    assert status == 408 and headers["connection"] == "close"
    assert body["error"]["code"] == "REQUEST_TIMEOUT"
    with connect(short) as sock:  # a connection that sends nothing at all
        assert answer(sock)[2]["error"]["code"] == "REQUEST_TIMEOUT"
    log = short.log.read_text()
    assert log.count("no complete request headers within 0.5 s, answered 408") == 2
    assert short.get("/health") == (200, {"status": "ok"})


def test_a_body_that_never_ends_is_answered_408_and_nothing_is_stored(
    short: Server, sqlite_url: str
) -> None:
    with Ledger.open(sqlite_url) as ledger:
        before = last_id(ledger)
    with connect(short) as sock:
        sock.sendall(request_head(1000) + b'{"id": "evt_1", ')
        status, headers, body = answer(sock)
    assert status == 408 and headers["connection"] == "close"
    assert body["error"]["code"] == "REQUEST_TIMEOUT"
    assert "the body did not arrive within 0.5 s" in short.log.read_text()
    with Ledger.open(sqlite_url) as ledger:
        assert last_id(ledger) == before


def test_a_client_gone_mid_body_is_one_log_line_without_a_traceback(short: Server) -> None:
    with connect(short) as sock:
        sock.sendall(request_head(1000) + b'{"id": "evt_1", ')
    wait_for(lambda: "disconnected" in short.log.read_text(), "the disconnect is logged")
    lines = [line for line in short.log.read_text().splitlines() if "disconnected" in line]
    assert len(lines) == 1
    line = json.loads(lines[0])  # the server logs one JSON object per line
    assert (line["level"], line["logger"], line["message"]) == (
        "WARNING",
        "offline_ledger.webhooks",
        "webhook: the client disconnected before the end of the body; nothing was stored",
    )
    assert line["request_id"] and line["time"].endswith("Z")
    assert short.get("/health") == (200, {"status": "ok"})
    # (`running` asserts, when the server stops, that its log holds no traceback at all.)


def test_connections_past_the_bound_are_answered_503_with_retry_after(short: Server) -> None:
    with ExitStack() as held:
        for _ in range(3):  # the bound: three clients, each sending its headers slowly
            held.enter_context(connect(short)).sendall(b"GET /health HTTP/1.1\r\n")
        with connect(short) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            status, headers, body = answer(sock)
        assert status == 503 and headers["retry-after"] == "5"
        assert body["error"]["code"] == "SERVER_BUSY"
        assert "refused with 503, 3 connections are open (the most is 3)" in short.log.read_text()

    # Once they are gone, the server takes new connections again.
    def healthy() -> bool:
        try:
            return short.get("/health") == (200, {"status": "ok"})
        except OSError:
            return False

    wait_for(healthy, "a connection is accepted once the held ones closed")


@pytest.mark.parametrize("depth", [40, 5000])
def test_a_signed_webhook_of_deep_json_is_answered_400(
    short: Server, sqlite_url: str, depth: int
) -> None:
    """Deeper than the ledger's bound (32), and deeper than orjson's own (1024)."""
    payload = (
        '{"id": "evt_deep", "object": "event", "type": "payment_intent.succeeded", '
        '"created": 1764547200, "data": {"object": ' + '{"a": ' * depth + "1" + "}" * depth + "}}"
    )
    header = stripe.WebhookSignature.generate_signature_header(payload, SECRET)
    with Ledger.open(sqlite_url) as ledger:
        before = last_id(ledger)
    status, body = short.post(payload.encode(), header)
    assert status == 400 and body["error"]["code"] == "NESTING_TOO_DEEP"
    with Ledger.open(sqlite_url) as ledger:
        assert last_id(ledger) == before
