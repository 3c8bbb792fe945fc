"""The server's log: one JSON object per line, for log collectors to parse without patterns.

Every line has `time` (UTC, RFC 3339), `level`, `logger` and `message`, and the id of the
request it was written for (`request_id`, also echoed as the `Request-Id` header), so the
lines of one request can be found together across workers. A line may add fields of its own
(the access line's method, path, status and milliseconds). Messages and tracebacks pass
through the card-number scanner's masking on the way out: the code never logs a key or a card
number, and this is the last net under that rule.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson

from ledger.pan import redacted

# The id of the request being served: set by the request log middleware, read by every line
# written while the request runs (the worker threads of `Services.run` copy the context).
REQUEST_ID: ContextVar[str | None] = ContextVar("offline_ledger_request_id", default=None)


class JsonLines(logging.Formatter):
    """One JSON object per record (`fields` given as `extra` are merged in)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
        }
        request_id = REQUEST_ID.get()
        if request_id is not None:
            entry["request_id"] = request_id
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        entry["message"] = redacted(record.getMessage())
        if record.exc_info:
            entry["traceback"] = redacted(self.formatException(record.exc_info))
        return orjson.dumps(entry).decode()
