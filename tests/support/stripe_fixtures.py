"""Fixtures for tests that talk to a Stripe-compatible peer over real HTTP on 127.0.0.1.

Load them in a test module with ``pytest_plugins = ["tests.support.stripe_fixtures"]``.

- ``stripe_server_process`` (session): localstripe (tests/support/stripe_peer.py) in a
  subprocess, as a ``ServerProcess`` (``.url``, ``.pid``, ``.port``).
- ``stripe_server`` (function): that server emptied (``DELETE /_config/data``); yields its base
  URL ``http://127.0.0.1:PORT``, for ``StripeClient(base_addresses={"api": url})``.
- ``fault_proxy_process`` (session): tests/support/fault_proxy.py in a subprocess, in front of it.
- ``fault_proxy`` (function, uses ``stripe_server``): a ``FaultProxy`` handle with no rules, an
  empty log and idempotency emulation off.

Subprocesses are stopped at the end of the session (SIGTERM, then SIGKILL after 5 s) and, as
they are started with ``--exit-on-stdin-eof``, also exit if this process dies without cleaning
up. ``running_server`` starts one outside the fixtures. Their stderr (the request log) goes to a
file under pytest's temporary folder, named in start-up errors.
"""

from __future__ import annotations

import json
import select
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # ignore HTTP_PROXY


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not exited after STOP_TIMEOUT; always reaped."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()


@contextmanager
def running_server(module: str, *args: str, log_path: Path) -> Iterator[ServerProcess]:
    """Run ``python -m module args`` until its ready line; stop it on exit, whatever happens."""
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", module, "--exit-on-stdin-eof", *args],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
        )
    server = ServerProcess(process, "", log_path)
    try:
        server.url = _read_ready_line(process, module, log_path)
        yield server
    finally:
        server.stop()


def _read_ready_line(process: subprocess.Popen[bytes], module: str, log_path: Path) -> str:
    assert process.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], 0.1)
        if ready:
            line = process.stdout.readline().decode()
            if line.startswith("READY http://127.0.0.1:"):
                return line.split()[1]
            if not line:  # exited
                break
    raise RuntimeError(f"{module} did not start; its log: {log_path}\n{log_path.read_text()}")


def http_json(method: str, url: str, payload: object = None) -> Any:
    """A JSON request to a control route (no proxy, loopback only)."""
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    with _DIRECT.open(request, timeout=10) as response:
        body = response.read()
    return json.loads(body) if body else None


@dataclass
class FaultProxy:
    """Handle on a running tests/support/fault_proxy.py; point a StripeClient at ``url``."""

    url: str
    upstream: str
    process: ServerProcess

    def rules(self, rules: list[dict[str, Any]]) -> None:
        """Replace the rules (see tests/support/fault_proxy.py for their fields)."""
        http_json("POST", f"{self.url}/_fault/rules", rules)

    def log(self) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = http_json("GET", f"{self.url}/_fault/log")
        return entries

    def idempotency(self, enabled: bool) -> None:
        http_json("POST", f"{self.url}/_fault/idempotency", {"enabled": enabled})

    def clear(self) -> None:
        """Forget the rules, the log and the saved idempotent answers."""
        http_json("DELETE", f"{self.url}/_fault/log")


@pytest.fixture(scope="session")
def stripe_server_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    log_path = tmp_path_factory.mktemp("stripe_peer") / "stripe_peer.log"
    with running_server("tests.support.stripe_peer", log_path=log_path) as server:
        yield server


@pytest.fixture
def stripe_server(stripe_server_process: ServerProcess) -> str:
    """Base URL of the session's localstripe, emptied for this test."""
    http_json("DELETE", f"{stripe_server_process.url}/_config/data")
    return stripe_server_process.url


@pytest.fixture(scope="session")
def fault_proxy_process(
    stripe_server_process: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    log_path = tmp_path_factory.mktemp("fault_proxy") / "fault_proxy.log"
    args = ("--upstream", stripe_server_process.url)
    with running_server("tests.support.fault_proxy", *args, log_path=log_path) as server:
        yield server


@pytest.fixture
def fault_proxy(stripe_server: str, fault_proxy_process: ServerProcess) -> FaultProxy:
    """The session's fault proxy, in front of an emptied localstripe, reset for this test."""
    proxy = FaultProxy(fault_proxy_process.url, stripe_server, fault_proxy_process)
    proxy.clear()
    proxy.idempotency(False)
    return proxy
