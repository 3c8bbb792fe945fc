"""A value the wire types read twice (a currency, a moment: a fast reading inside
pydantic-core, then the exact one that words the refusal) is refused once, in the exact
reading's words and at its own place, wherever the error is shown: never the fast reading's
list of every currency, never the name of a reading."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from adapters.stripe.events import observations
from ledger import LedgerError

AS_OF = datetime(2026, 11, 22, tzinfo=UTC)


def test_a_webhook_object_in_an_unknown_currency_is_refused_in_the_exact_words() -> None:
    refund = {"object": "refund", "id": "re_1", "amount": 500, "currency": "xyz"}
    with pytest.raises(LedgerError) as refused:
        observations("refund.created", refund, AS_OF)
    assert refused.value.field == "data.object.currency"
    assert "'xyz' is not an ISO 4217 currency code" in str(refused.value)
    assert "'aed'" not in str(refused.value)
