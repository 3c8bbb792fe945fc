"""offline-ledger: the event-sourced record of Stripe Terminal offline payments.

POS backends use `Ledger` (see `ledger.application`); records are the pydantic models of
`ledger.wire` or plain dicts of the same shape; refusals are `LedgerError`s with a stable code.
"""

from ledger.application import Ledger, Result
from ledger.errors import Code, LedgerError
from ledger.limits import Decision

__all__ = ["Code", "Decision", "Ledger", "LedgerError", "Result"]
