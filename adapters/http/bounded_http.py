"""uvicorn's HTTP/1.1 connection with the bounds of `adapters.http.http_limits` that only a
connection can enforce: the deadline for a request's headers (the application never sees a
request whose headers are incomplete) and the number of connections open at once.

It is uvicorn's httptools connection (llhttp, in C): h11, the pure-Python parser, took about a
quarter of a served request's time on the event loop, reading the request and writing the
answer."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from adapters.http.http_limits import DEFAULT, REQUEST_TIMEOUT, SERVER_BUSY, HttpLimits

log = logging.getLogger("offline_ledger.http")

# How long a refused connection stays open for the client to read the answer (it is closed
# sooner when the client closes its side): closing a socket with unread input resets it, and
# the client may then lose the answer.
LINGER_SECONDS = 1.0


class BoundedHttpProtocol(HttpToolsProtocol):
    """One connection: refused at once past the connection bound, else given `header_seconds`
    for each request's headers."""

    limits: ClassVar[HttpLimits] = DEFAULT

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_deadline: asyncio.TimerHandle | None = None
        self._answered = False  # refused by this class: what the client sends is discarded
        self._headers_read = True  # no request begun: nothing to wait for but the first byte

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.connections:
            log.warning(
                "%s: refused with 503, %d connections are open (the most is %d)",
                _address(self.client),
                len(self.connections) - 1,
                self.limits.connections,
            )
            self._refuse(
                503,
                SERVER_BUSY,
                f"the server holds {self.limits.connections} connections, the most it accepts; "
                f"retry in {self.limits.retry_after_seconds} s",
                [("retry-after", str(self.limits.retry_after_seconds))],
            )
            return
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._answered:
            return
        super().data_received(data)
        if self._headers_read:  # a request's headers are complete (or the bytes were refused)
            self._disarm()
        elif self._header_deadline is None:  # the first bytes of a kept-alive connection's
            self._arm()  # next request (while idle, uvicorn's keep-alive timeout applies)

    def on_message_begin(self) -> None:
        self._headers_read = False
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._headers_read = True
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._header_deadline = self.loop.call_later(self.limits.header_seconds, self._late)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _late(self) -> None:
        self._header_deadline = None
        if self.transport.is_closing() or (self._headers_read and self.cycle is not None):
            return
        log.warning(
            "%s: no complete request headers within %s s, answered 408 and closed",
            _address(self.client),
            self.limits.header_seconds,
        )
        self._refuse(
            408,
            REQUEST_TIMEOUT,
            f"the request headers did not arrive within {self.limits.header_seconds} s",
            [],
        )

    def _refuse(self, status: int, code: str, message: str, headers: list[tuple[str, str]]) -> None:
        """Answer before any request was read (uvicorn has no answer for that: the bytes are
        written here), then close: at once if the client closes its side, else after
        LINGER_SECONDS."""
        self._answered = True
        self._unset_keepalive_if_required()
        body = json.dumps({"error": {"code": code, "message": message}}).encode()
        lines = [
            f"HTTP/1.1 {status} {'Request Timeout' if status == 408 else 'Service Unavailable'}",
            "content-type: application/json",
            f"content-length: {len(body)}",
            "connection: close",
            *(f"{name}: {value}" for name, value in headers),
        ]
        self.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)


def _address(client: tuple[str, int] | None) -> str:
    return f"{client[0]}:{client[1]}" if client else "a client"
