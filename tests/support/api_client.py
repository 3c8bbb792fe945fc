"""A plain HTTP client of the ledger's API for the tests (urllib: what any language has), and
the keys the tests hold, made in-process on the server's database."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from adapters.http.api_keys import KeyStore, Role
from ledger import Ledger


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any
    headers: dict[str, str]

    @property
    def code(self) -> str | None:
        return self.body.get("code") if isinstance(self.body, dict) else None


@dataclass(frozen=True)
class Api:
    port: int
    token: str | None

    def as_key(self, token: str | None) -> Api:
        return Api(self.port, token)

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        data = raw if raw is not None else None if body is None else json.dumps(body).encode()
        sent = {"Content-Type": "application/json", **(headers or {})}
        if self.token is not None:
            sent["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=data, method=method, headers=sent
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return _answer(response.status, response.read(), dict(response.headers))
        except urllib.error.HTTPError as error:
            with error:
                return _answer(error.code, error.read(), dict(error.headers))

    def get(self, path: str) -> Answer:
        return self.call("GET", path)

    def post(self, path: str, body: Any = None, **options: Any) -> Answer:
        return self.call("POST", path, body, **options)


def _answer(status: int, raw: bytes, headers: dict[str, str]) -> Answer:
    lowered = {name.lower(): value for name, value in headers.items()}
    kind = lowered.get("content-type", "")
    body: Any = json.loads(raw) if "json" in kind else raw.decode()
    return Answer(status, body, lowered)


def new_key(database: str, role: str, *locations: str) -> str:
    """A new key's token on the database `serve` uses."""
    with Ledger.open(database) as ledger:
        store = KeyStore(ledger.config)
        try:
            return store.create(f"test {role}", Role(role), locations)[1]
        finally:
            store.close()


def metric(text: str, sample: str) -> float:
    """The value of one sample (`name{labels}` as Prometheus' text format writes it)."""
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {sample} in:\n{text}")
