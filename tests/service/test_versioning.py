"""Old events are upcast on read: the versioning story of docs/events.md, on a real store."""

from __future__ import annotations

from typing import Any

import pytest

from ledger import Ledger
from ledger.payment import Payment
from tests.support import records as r


def test_an_event_stored_as_version_2_is_read_as_version_3(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    oid = "7c0c3b57-4f0e-4a77-9d2a-4f4f6b0f1a10"
    with Ledger.open(sqlite_url) as ledger:
        for record in [r.location(), r.device(), *r.stored_payment(oid)]:
            ledger.record(record)

    # A later release makes ConfirmedOffline version 3, adding a `channel` field.
    def upcast_v2_v3(state: dict[str, Any]) -> None:
        state["channel"] = "sdk"

    monkeypatch.setattr(Payment.ConfirmedOffline, "class_version", 3, raising=False)
    monkeypatch.setattr(
        Payment.ConfirmedOffline, "upcast_v2_v3", staticmethod(upcast_v2_v3), raising=False
    )
    with Ledger.open(sqlite_url) as ledger:
        history = ledger.history(oid)
        payment = ledger.payment(oid)

    confirmed = next(entry for entry in history if entry.event == "ConfirmedOffline")
    assert confirmed.data["channel"] == "sdk"
    assert payment.status == "stored"
