"""The OpenAPI links of the API's document: which answer names what the client reads or does
next (a recorded payment, then its state and history; a reservation, then its release; an
allowance, then the device's). A client generator can follow them, and the contract tests walk
them (schemathesis' stateful run) with the ids a live server gave.
"""

from __future__ import annotations

from typing import Any

Operation = tuple[str, str]  # (method, path)

_PAYMENT = ("get", "/v1/payments/{offline_id}")
_HISTORY = ("get", "/v1/payments/{offline_id}/history")
_LOCATION = ("get", "/v1/locations/{location_id}")
_STORED = ("get", "/v1/locations/{location_id}/stored-payments")
_REFUSALS = ("get", "/v1/locations/{location_id}/refusals")
_DEVICE = ("get", "/v1/locations/{location_id}/devices/{device_id}")
_ALLOWANCE = ("get", "/v1/locations/{location_id}/devices/{device_id}/allowance")
_RELEASE = ("post", "/v1/reservations/{offline_id}/release")


def _sent(*names: str) -> dict[str, str]:
    return {name: f"$request.body#/{name}" for name in names}


def _answered(*names: str) -> dict[str, str]:
    return {name: f"$response.body#/{name}" for name in names}


# From an operation's 200 answer: link name -> (the operation it leads to, its parameters).
LINKS: dict[Operation, dict[str, tuple[Operation, dict[str, str]]]] = {
    ("post", "/v1/records"): {
        "Payment": (_PAYMENT, _sent("offline_id")),
        "PaymentHistory": (_HISTORY, _sent("offline_id")),
        "Location": (_LOCATION, _sent("location_id")),
        "StoredPayments": (_STORED, _sent("location_id")),
    },
    ("post", "/v1/decisions"): {
        "Location": (_LOCATION, _sent("location_id")),
        "Device": (_DEVICE, _sent("location_id", "device_id")),
    },
    ("post", "/v1/reservations"): {
        "Release": (_RELEASE, _answered("offline_id")),
        "Refusals": (_REFUSALS, _answered("location_id")),
    },
    ("post", "/v1/reservations/{offline_id}/release"): {
        "Location": (_LOCATION, _answered("location_id")),
    },
    ("post", "/v1/allowances"): {
        "Allowance": (_ALLOWANCE, _answered("location_id", "device_id")),
        "Device": (_DEVICE, _answered("location_id", "device_id")),
    },
}


def add_links(document: dict[str, Any]) -> None:
    """Each link of LINKS on its operation's 200 answer, naming its target by operationId."""
    paths = document["paths"]
    for (method, path), links in LINKS.items():
        answer = paths[path][method]["responses"]["200"]
        answer["links"] = {
            name: {
                "operationId": paths[target_path][target_method]["operationId"],
                "parameters": parameters,
            }
            for name, ((target_method, target_path), parameters) in links.items()
        }
