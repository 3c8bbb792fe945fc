"""offline-ledger: the event-sourced record of Stripe Terminal offline payments.

POS backends use `Ledger` (see `ledger.application`); records are the pydantic models of
`ledger.wire` or plain dicts of the same shape; refusals are `LedgerError`s with a stable code.

The names below are loaded on first use, so that importing one light module of the package
(`ledger.errors`, `ledger.moments`) does not load the whole domain and its libraries: the
command line starts without them.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ledger.application import Ledger, Result
    from ledger.errors import Code, LedgerError
    from ledger.limits import Decision

__all__ = ["Code", "Decision", "Ledger", "LedgerError", "Result"]

_HOMES = {
    "Code": "ledger.errors",
    "Decision": "ledger.limits",
    "Ledger": "ledger.application",
    "LedgerError": "ledger.errors",
    "Result": "ledger.application",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'ledger' has no attribute {name!r}")
    return getattr(import_module(home), name)
