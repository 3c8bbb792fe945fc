"""What a record did, comparable across runs and processes.

Kept apart from `tests.support.generators` (which pulls in hypothesis) so that the PostgreSQL
concurrency tests' spawned workers, which import their test module, stay light.
"""

from __future__ import annotations

from ledger import LedgerError
from ledger.application import Result


def outcome_of(result: Result | LedgerError) -> str:
    """'recorded', 'repeat' or the error code: what a record did, comparable across runs."""
    if isinstance(result, LedgerError):
        return str(result.code)
    return "recorded" if result.recorded else "repeat"
