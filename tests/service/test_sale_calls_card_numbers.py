"""The library's sale calls (`decide`, `reserve`, `allow`) take their ids as plain arguments,
not as a record: a card number passed as a device or location id is refused as one,
CARD_NUMBER_DETECTED, before anything is judged, stored or echoed back."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from ledger import Code, Ledger, LedgerError
from tests.support import records as r
from tests.support.pan_disguises import leaked

AT = r.T0 + timedelta(minutes=1)
PAN = "4242424242424242"

Call = Callable[[Ledger, str, str], Any]

CALLS: dict[str, Call] = {
    "decide": lambda ledger, device, location: ledger.decide(
        amount=100, currency="usd", device_id=device, location_id=location, at=AT
    ),
    "reserve": lambda ledger, device, location: ledger.reserve(
        str(uuid.uuid4()), 100, "usd", device, location, at=AT
    ),
    "allow": lambda ledger, device, location: ledger.allow(
        device, location, {"usd": 100}, 1, AT + timedelta(hours=1), at=AT
    ),
    "allow nothing": lambda ledger, device, location: ledger.allow(
        device, location, {}, 0, AT + timedelta(hours=1), at=AT
    ),
}


@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
@pytest.mark.parametrize("where", ["device_id", "location_id"])
def test_a_card_number_as_an_id_is_refused_and_nothing_is_stored(
    memory_ledger: Ledger, call: Call, where: str
) -> None:
    memory_ledger.record(r.location())
    memory_ledger.record(r.device())
    before = memory_ledger.last_position()
    ids = {"device_id": "tmr_1", "location_id": "tml_1", where: PAN}

    with pytest.raises(LedgerError) as refused:
        call(memory_ledger, ids["device_id"], ids["location_id"])

    assert refused.value.code is Code.CARD_NUMBER_DETECTED
    assert not leaked([PAN], str(refused.value), repr(refused.value.to_dict()))
    assert memory_ledger.last_position() == before


@pytest.mark.parametrize("where", ["reason", "current", "retired"])
def test_a_card_number_in_a_key_rotation_is_refused_and_nothing_is_stored(
    memory_ledger: Ledger, where: str
) -> None:
    """A rotation's key ids and reason are stored as given: the library call checks them as
    the command line does."""
    given: dict[str, Any] = {"current": "k2", "retired": ["k1"], "reason": "scheduled"}
    given[where] = [PAN] if where == "retired" else f"card {PAN}"
    before = memory_ledger.last_position()

    with pytest.raises(LedgerError) as refused:
        memory_ledger.record_cipher_rotation(**given)

    assert refused.value.code is Code.CARD_NUMBER_DETECTED
    assert not leaked([PAN], str(refused.value), repr(refused.value.to_dict()))
    assert memory_ledger.last_position() == before
