"""What `Ledger.status` and `Ledger.allow` return: a location's and its devices' stored
payments, headroom and allowances, as frozen dataclasses.

They are plain dataclasses, not pydantic models like the other views (`ledger.views`), because
`offline-ledger status` is the command people run most often and building even one pydantic
model costs its start more than reading the ledger does. The HTTP API serves them as they are
(pydantic reads a dataclass as it reads a model): the same JSON, the same document. `to_dict`
is their JSON form, for callers without pydantic.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ledger.limits import HeadroomRow, stored_headroom

# Imported, not only named for the type checker: pydantic reads the fields' types.
from ledger.location import BeyondPolicy, DeviceLimitsConfig, LimitsConfig

if TYPE_CHECKING:
    from ledger.location import Location


@dataclass(frozen=True)
class AllowanceState:
    """An offline allowance of one device, and what it stored under it."""

    device_id: str
    location_id: str
    granted_at: datetime
    valid_until: datetime
    amounts: dict[str, int]
    count: int
    used_amounts: dict[str, int]
    used_count: int

    @classmethod
    def latest(
        cls, location: Location, device_id: str, granted_at: datetime | None = None
    ) -> AllowanceState | None:
        """The device's latest allowance; with `granted_at`, the one granted then (the answer
        a retry of that request gets), or the latest once that one is forgotten."""
        granted = location.allowances.get(device_id)
        if not granted:
            return None
        that = [a for a in granted if a[0] == granted_at]
        granted_at, valid_until, amounts, count, used, used_count = (that or granted)[-1]
        return cls(
            device_id=device_id,
            location_id=location.location_id,
            granted_at=granted_at,
            valid_until=valid_until,
            amounts=dict(amounts),
            count=count,
            used_amounts=dict(used),
            used_count=used_count,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "location_id": self.location_id,
            "granted_at": _json_moment(self.granted_at),
            "valid_until": _json_moment(self.valid_until),
            "amounts": dict(self.amounts),
            "count": self.count,
            "used_amounts": dict(self.used_amounts),
            "used_count": self.used_count,
        }


# No class docstring on the two below: the HTTP API's document has never described them.
@dataclass(frozen=True)
class DeviceStatus:
    device_id: str
    location_id: str
    offline_payments_count: int
    offline_payment_amounts_by_currency: dict[str, int]
    headroom: list[HeadroomRow]
    allowance: AllowanceState | None  # the latest offline allowance, and what it used
    stored_beyond_policy: dict[str, BeyondPolicy]  # per breach code, the payments that broke it

    def to_dict(self) -> dict[str, Any]:
        return {
            "device_id": self.device_id,
            "location_id": self.location_id,
            "offline_payments_count": self.offline_payments_count,
            "offline_payment_amounts_by_currency": dict(self.offline_payment_amounts_by_currency),
            "headroom": [dict(row) for row in self.headroom],
            "allowance": None if self.allowance is None else self.allowance.to_dict(),
            "stored_beyond_policy": _beyond_dict(self.stored_beyond_policy),
        }


@dataclass(frozen=True)
class LocationStatus:
    location_id: str
    offline_enabled: bool
    sca_required: bool
    offline_payments_count: int
    offline_payment_amounts_by_currency: dict[str, int]
    limits: LimitsConfig
    device_limits: DeviceLimitsConfig
    headroom: list[HeadroomRow]
    stored_beyond_policy: dict[str, BeyondPolicy]
    devices: list[DeviceStatus]

    @classmethod
    def of(cls, location: Location, device_ids: list[str]) -> LocationStatus:
        config = location.config
        limits, device_limits = config["limits"], config["device_limits"]
        devices = sorted(
            set(device_ids) | set(location.device_stored_counts) | set(location.allowances)
        )
        return cls(
            location_id=location.location_id,
            offline_enabled=location.offline_enabled,
            sca_required=location.sca_required,
            offline_payments_count=location.stored_count,
            offline_payment_amounts_by_currency=dict(sorted(location.stored_amounts.items())),
            limits={
                "stored_amount_max": dict(limits["stored_amount_max"]),
                "stored_count_max": limits["stored_count_max"],
                "per_payment_max": dict(limits["per_payment_max"]),
            },
            device_limits={
                "stored_amount_max": dict(device_limits["stored_amount_max"]),
                "stored_count_max": device_limits["stored_count_max"],
            },
            headroom=[
                row.to_dict()
                for row in stored_headroom(
                    "location", location.limits, location.stored_amounts, location.stored_count
                )
            ],
            stored_beyond_policy=location.stored_beyond_policy(),
            devices=[_device_status(location, device_id) for device_id in devices],
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, as the HTTP API and `offline-ledger status --json` give it."""
        return {
            "location_id": self.location_id,
            "offline_enabled": self.offline_enabled,
            "sca_required": self.sca_required,
            "offline_payments_count": self.offline_payments_count,
            "offline_payment_amounts_by_currency": dict(self.offline_payment_amounts_by_currency),
            "limits": {
                "stored_amount_max": dict(self.limits["stored_amount_max"]),
                "stored_count_max": self.limits["stored_count_max"],
                "per_payment_max": dict(self.limits["per_payment_max"]),
            },
            "device_limits": {
                "stored_amount_max": dict(self.device_limits["stored_amount_max"]),
                "stored_count_max": self.device_limits["stored_count_max"],
            },
            "headroom": [dict(row) for row in self.headroom],
            "stored_beyond_policy": _beyond_dict(self.stored_beyond_policy),
            "devices": [device.to_dict() for device in self.devices],
        }


def _device_status(location: Location, device_id: str) -> DeviceStatus:
    amounts = location.device_stored_amounts.get(device_id, {})
    count = location.device_stored_counts.get(device_id, 0)
    return DeviceStatus(
        device_id=device_id,
        location_id=location.location_id,
        offline_payments_count=count,
        offline_payment_amounts_by_currency=dict(sorted(amounts.items())),
        headroom=[
            row.to_dict()
            for row in stored_headroom("device", location.device_limits, amounts, count)
        ],
        stored_beyond_policy=location.stored_beyond_policy(device_id),
        allowance=AllowanceState.latest(location, device_id),
    )


def _beyond_dict(by_code: dict[str, BeyondPolicy]) -> dict[str, Any]:
    return {
        code: {"count": row["count"], "amounts_by_currency": dict(row["amounts_by_currency"])}
        for code, row in by_code.items()
    }


def _json_moment(moment: datetime) -> str:
    """A moment as pydantic writes it in JSON: ISO 8601, UTC as `Z`."""
    text = moment.isoformat()
    return text[:-6] + "Z" if moment.utcoffset() == timedelta(0) else text
