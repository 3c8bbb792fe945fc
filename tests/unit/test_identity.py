"""Stream ids are uuid5 of their names, whichever way they are looked up."""

from uuid import NAMESPACE_URL, uuid5

import pytest

from ledger import identity

NAMESPACE = uuid5(NAMESPACE_URL, "urn:offline-ledger")


def test_location_and_device_ids_are_uuid5_of_their_names() -> None:
    assert identity.location_id("tml_1") == uuid5(NAMESPACE, "location/tml_1")
    assert identity.device_id("tmr_1") == uuid5(NAMESPACE, "device/tmr_1")
    # Asked again (now remembered by the name), the same ids.
    assert identity.location_id("tml_1") == uuid5(NAMESPACE, "location/tml_1")
    assert identity.device_id("tmr_1") == uuid5(NAMESPACE, "device/tmr_1")


def test_the_remembered_ids_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(identity, "_NAMED_IDS_MAX", 3)
    names = [f"tml_bounded_{n}" for n in range(10)]
    for name in names:
        assert identity.location_id(name) == uuid5(NAMESPACE, f"location/{name}")
        assert identity.device_id(name) == uuid5(NAMESPACE, f"device/{name}")
    assert len(identity._LOCATION_IDS) <= 3
    assert len(identity._DEVICE_IDS) <= 3
