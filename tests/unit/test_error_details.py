"""An error's details are echoed beside its message (in JSON output and problem documents):
any text in them is masked as the message is, never a card number repeated."""

from __future__ import annotations

from ledger.errors import Code, LedgerError

CARD = "4242424242424242"


def test_a_card_number_in_the_details_is_masked_as_in_the_message() -> None:
    error = LedgerError(
        Code.INVALID_VALUE,
        f"refused {CARD}",
        details={"cause": f"value {CARD}", "rows": [{"note": CARD, "max": 500}], "used": 3},
    )
    text = str(error.to_dict())
    assert CARD not in text
    assert error.details["cause"] == "value ************4242"
    assert error.details["rows"] == [{"note": "************4242", "max": 500}]
    assert error.details["used"] == 3


def test_details_without_a_card_number_are_kept_as_given() -> None:
    details = {"key_id": "a1b2c3d4e5f60718", "limit": "stored_amount_max", "max": 10_000}
    assert LedgerError(Code.INVALID_VALUE, "m", details=details).details == details
