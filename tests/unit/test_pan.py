"""The card-number scanner (`ledger.pan`): every disguise found, real data left alone, and the
masking that messages and the rejects file use."""

from __future__ import annotations

import json
import random
import re
import tracemalloc
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger import pan
from tests.support.pan_disguises import (
    KNOWN_PANS,
    RAW_JSON_DISGUISES,
    TEXT_DISGUISES,
    luhn_check_digit,
    random_pan,
)

# Stripe's openapi/fixtures3.json (github.com/stripe/openapi, commit f6c2a48f), copied verbatim.
FIXTURES = Path(__file__).parents[1] / "support" / "data" / "stripe_fixtures3.json"
REPO_FIXTURES = Path(__file__).parents[1] / "support" / "stripe_fixtures.py"


# -- the Luhn check ----------------------------------------------------------------------------


@pytest.mark.parametrize("number", KNOWN_PANS)
def test_stripe_test_card_numbers_pass_the_luhn_check(number: str) -> None:
    assert pan.luhn_valid(number)


@pytest.mark.parametrize(
    ("number", "valid"),
    [
        ("0", True),
        ("18", True),  # 1 doubled is 2, + 8
        ("59", True),  # 5 doubled is 10 -> 1, + 9: a slip at "> 9" or "- 9" fails it
        ("91", True),  # 9 doubled is 18 -> 9, + 1
        ("42", True),  # 4 doubled is 8, + 2: only the second digit from the right is doubled
        ("24", False),
        ("5555555555554444", True),
        ("5555555555554445", False),
        ("4242424242424241", False),
        ("79927398713", True),  # the classic example
        ("79927398710", False),
    ],
)
def test_the_luhn_check_doubles_every_second_digit_from_the_right(number: str, valid: bool) -> None:
    assert pan.luhn_valid(number) is valid


@given(st.text(alphabet="0123456789", min_size=1, max_size=25))
def test_exactly_one_check_digit_makes_a_number_luhn_valid(body: str) -> None:
    valid = [d for d in "0123456789" if pan.luhn_valid(body + d)]
    assert valid == [luhn_check_digit(body)]


# -- what is refused ---------------------------------------------------------------------------


@pytest.mark.parametrize("length", range(13, 20))
@pytest.mark.parametrize("disguise", sorted(TEXT_DISGUISES))
def test_a_card_number_in_every_disguise_and_length_is_found(disguise: str, length: int) -> None:
    number = random_pan(random.Random(f"{disguise}{length}"), length)

    assert pan.holds_pan(TEXT_DISGUISES[disguise](number))


@pytest.mark.parametrize("disguise", sorted(RAW_JSON_DISGUISES))
def test_a_card_number_in_raw_json_is_found_also_as_bytes(disguise: str) -> None:
    number = random_pan(random.Random(disguise), 16)
    line = '{"metadata": {"note": ' + RAW_JSON_DISGUISES[disguise](number) + "}}"

    assert pan.holds_pan(line)
    assert pan.holds_pan(line.encode())


_CLEAN_LINE = (
    b'{"type": "payment.confirmed_offline", "occurred_at": "2026-11-22T08:00:35.312+01:00", '
    b'"offline_id": "1fd6c7cd-00cf-47f9-86f2-f9ee23e8bffe", '
    b'"stored_at": "2026-11-22T08:00:35.312+01:00"}'
)


@pytest.mark.parametrize("disguise", sorted(TEXT_DISGUISES))
def test_a_batch_suspects_the_line_holding_a_card_number_in_every_disguise(disguise: str) -> None:
    number = random_pan(random.Random(disguise), 16)
    text = TEXT_DISGUISES[disguise](number)
    lines = [
        _CLEAN_LINE,
        b'{"metadata": {"note": ' + json.dumps(text).encode() + b"}}",
        _CLEAN_LINE,
        b'{"metadata": {"note": ' + json.dumps(text, ensure_ascii=False).encode() + b"}}",
        _CLEAN_LINE,
    ]

    assert {1, 3} <= pan.suspects(lines)
    assert not pan.suspects([_CLEAN_LINE] * 3)


@given(
    st.lists(
        st.binary(max_size=40)
        | st.text(alphabet='0123456789 -.:+Tx"\\u\n\u0663', max_size=60).map(str.encode),
        max_size=6,
    )
)
def test_a_batch_suspects_every_line_holding_a_card_number(lines: list[bytes]) -> None:
    """Whatever the lines (digits at one's end and the next's start, newlines, escapes)."""
    assert {n for n, line in enumerate(lines) if pan.holds_pan(line)} <= pan.suspects(lines)


def test_a_batch_of_long_lines_is_searched_in_runs_of_bounded_size() -> None:
    """The engine answers a text it clears with a `str` of it, four bytes a character once
    one character needs them: the batch is joined in runs, not whole; and a card number in
    any run, at a run's edge too, is still found."""
    filler = b'{"metadata": {"note": "' + b"a" * 60_000 + b'"}}'
    lines = [filler] * 200  # 12 MB
    lines[7] = filler.replace(b"aaaa", "\N{GRINNING FACE}".encode(), 1)
    tracemalloc.start()
    try:
        cleared = pan.suspects(lines)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    number = random_pan(random.Random(7), 16).encode()
    holding = {0, 16, 17, 199}  # the first and last lines, and either side of a run's edge
    for n in holding:
        lines[n] = filler.replace(b"aaaa", number, 1)

    assert not cleared
    assert peak < 8 * 2**20  # joined whole: 72 MB (the join, then its str of 48)
    assert pan.suspects(lines) == holding
    assert [len(run) for _, run, _ in pan._runs(lines, None)] == [17] * 11 + [13]


@pytest.mark.parametrize("number", KNOWN_PANS)
def test_stripe_test_card_numbers_are_found(number: str) -> None:
    assert pan.holds_pan(number)
    assert pan.holds_pan(f"card{number}")


def test_a_card_number_entirely_in_unicode_escapes_is_found() -> None:
    escaped = "".join(f"\\u{ord(d):04X}" for d in "5555555555554444")  # upper-case hex too

    assert pan.holds_pan(escaped)
    assert pan.normalized(escaped) == "5555555555554444"


def test_an_escaped_surrogate_pair_is_the_character_it_encodes() -> None:
    bold = json.dumps("".join(chr(0x1D7CE + int(d)) for d in "5555555555554444"))

    assert "\\ud835\\udfd3" in bold
    assert pan.normalized(bold) == '"5555555555554444"'
    assert pan.holds_pan(bold)


def test_surrogate_escapes_separate_like_punctuation() -> None:
    assert pan.normalized("4242\\ud83d4242") == "4242 4242"
    assert pan.holds_pan("4242\\ud800 4242\\udfff4242 4242")


def test_bytes_that_are_not_utf8_are_searched_all_the_same() -> None:
    assert pan.holds_pan(b"\xff\xfe4242424242424242\xff")
    assert pan.holds_pan(b"\xef\xbb\xbf4242424242424242")  # a BOM


@pytest.mark.parametrize("length", [13, 19])
def test_the_length_bounds_are_13_and_19_digits(length: int) -> None:
    number = random_pan(random.Random(length), length)

    assert pan.holds_pan(number)
    assert pan.holds_pan(" ".join(number))


def test_12_and_20_digits_are_not_card_numbers() -> None:
    twelve = "4" + "0" * 10
    twelve += luhn_check_digit(twelve)
    twenty = "4" + "0" * 18
    twenty += luhn_check_digit(twenty)

    assert pan.luhn_valid(twelve) and len(twelve) == 12
    assert not pan.holds_pan(twelve)
    assert pan.luhn_valid(twenty) and len(twenty) == 20
    assert not pan.holds_pan(twenty)  # a 20-digit run is one token
    assert not pan.holds_pan(twenty[:4] + " " + twenty[4:])  # 20 joined digits too
    assert pan.holds_pan(twenty[:1] + " " + twenty[1:][:-1] + luhn_check_digit(twenty[1:][:-1]))


def test_a_card_number_after_a_long_digit_group_is_found_on_its_own() -> None:
    number = random_pan(random.Random(7), 16)

    assert pan.holds_pan("1" * 25 + " " + number)
    assert pan.holds_pan("12 " + number)  # the window starts at any group
    assert pan.holds_pan(number + " 12")  # and ends at any group


def test_groups_are_joined_across_any_run_of_separators() -> None:
    number = random_pan(random.Random(8), 16)

    assert pan.holds_pan(number[:8] + " \t\u00a0-._/" + number[8:])
    assert pan.holds_pan(number[:8] + "\\t" + number[8:])  # a JSON escape
    assert not pan.holds_pan(number[:8] + "a" + number[8:])  # a letter separates


def test_superscript_digits_count_as_digits() -> None:
    superscripts = {"0": "⁰", "1": "¹", "2": "²", "3": "³", "4": "⁴", "5": "⁵"}
    superscripts |= {"6": "⁶", "7": "⁷", "8": "⁸", "9": "⁹"}
    number = "5555555555554444"

    assert pan.holds_pan("".join(superscripts[d] for d in number))


def test_an_ascii_only_text_with_digits_elsewhere_is_searched_after_unicode() -> None:
    assert pan.normalized("abc") == "abc"
    assert pan.normalized("\uff14\uff12") == "42"
    assert pan.normalized("é4") == "é4"


# -- what is left alone ------------------------------------------------------------------------


def _fixture_objects() -> list[object]:
    resources = json.loads(FIXTURES.read_text())["resources"]
    return list(resources.values())


def test_every_object_of_stripes_official_fixtures_is_no_card_number() -> None:
    """Stripe's openapi/fixtures3.json (github.com/stripe/openapi): ids, timestamps, amounts."""
    objects = _fixture_objects()

    assert len(objects) > 100
    assert [o for o in objects if pan.find_pan(o) is not None] == []
    assert [o for o in objects if pan.holds_pan(json.dumps(o))] == []


@pytest.mark.parametrize(
    "text",
    [
        "pi_3MtwBwLkdIwHu7ix28a3tqPa",
        "ch_3MmlLrLkdIwHu7ix0snN0B15",
        "evt_1NG8Du2eZvKYlo2CUI79vXWy",
        "txn_1MiN3gLkdIwHu7ixxapQrznl",
        "acct_1032D82eZvKYlo2C",
        "12345678-1234-1234-1234-123456789012",  # a UUID of digits
        "2026-11-22T08:00:00.424242+00:00",
        "2026-11-22 10:15:00",
        "2099-12-31T23:59:60Z",
        "1999-01-01t00:00Z",
        "txn_1,2026-11-22 10:15:00,12.50,0.66,11.84",
        "4242424242424241",  # fails the Luhn check
        "4242 4242 4242 4241",
        "424242424242",  # 12 digits
        "42424242424242424242",  # 20 digits
        "1763737200",  # Unix seconds
        "tel +1 (415) 555-0100",
        "",
    ],
)
def test_real_data_is_not_a_card_number(text: str) -> None:
    assert not pan.holds_pan(text)


def test_hex_ids_and_digests_are_whole_tokens() -> None:
    rng = random.Random(12)
    for _ in range(2_000):
        ids = [f"{rng.getrandbits(bits):0{bits // 4}x}" for bits in (96, 128, 160, 256)]
        assert not any(pan.holds_pan(f"evt_{text}") for text in ids), ids
        assert not any(pan.holds_pan(text.upper()) for text in ids), ids
    assert pan.holds_pan("abcdef4242424242424242")  # 22 hex characters: scanned
    assert pan.holds_pan("Abcdef424242424242424242")  # mixed case: scanned
    assert not pan.holds_pan("abcdef424242424242424242")  # 24: one token


def test_random_uuids_and_timestamps_are_never_card_numbers() -> None:
    rng = random.Random(11)
    for _ in range(2_000):
        ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(3)]
        line = json.dumps({"offline_id": ids[0], "ids": ids, "at": "2026-11-22T08:15:00+01:00"})
        assert not pan.holds_pan(line), line


@pytest.mark.parametrize(
    "text",
    [
        "1899-12-31 10:00:00 4242",  # not a year of the barrier: its digits join
        "2026-13-01 424242",  # no month 13
        "2200-01-01 424242",
        "2026-11-32 424242",  # no day 32
    ],
)
def test_only_plausible_dates_are_whole_tokens(text: str) -> None:
    digits = "".join(c for c in text if c.isdigit())
    crafted = text[:-1] + luhn_check_digit(digits[:-1])

    assert 13 <= len(digits) <= 19
    assert pan.holds_pan(crafted)


def test_a_uuid_is_a_whole_token_only_with_nothing_alphanumeric_around_it() -> None:
    shaped = "42424242-4242-4242-4242-424242424242"  # 42424242 4242 4242 is a card number

    assert not pan.holds_pan(shaped)
    assert not pan.holds_pan(f"pi_{shaped}.")
    assert pan.holds_pan(f"x{shaped}")
    assert pan.holds_pan(f"{shaped}x")


# -- find_pan: where in a value ----------------------------------------------------------------


def test_find_pan_names_the_field_and_never_repeats_a_key_that_is_a_number() -> None:
    number = "5555555555554444"

    assert pan.find_pan({"a": {"b": [1, f"x{number}"]}}) == "a.b[1]"
    assert pan.find_pan({"a": {number: 1}}) == "a.<card number>"
    assert pan.find_pan({"a": int(number)}) == "a"
    assert pan.find_pan({"a": float(number)}) == "a"
    assert pan.find_pan({"a": Decimal(number)}) == "a"
    assert pan.find_pan(("ok", number)) == "[1]"
    assert pan.find_pan({"a": ["5555 5555", "5555 4444"]}) == "(record)"
    assert pan.find_pan({"a": ["5555 5555", "5555 4444"]}, "data") == "data"
    assert pan.find_pan({"a": True, "b": None, "c": "2026-11-22"}) is None
    assert pan.find_pan({1: 2}) is None


def test_find_pan_walks_any_depth_without_recursion() -> None:
    deep: object = "4242424242424242"
    for _ in range(5_000):
        deep = [deep]

    assert pan.find_pan(deep) is not None


# -- masking -----------------------------------------------------------------------------------


def test_mask_keeps_the_last_four_digits_of_runs_of_six_or_more() -> None:
    assert pan.mask("12345") == "12345"
    assert pan.mask("123456") == "**3456"
    assert pan.mask("a4242424242424242b") == "a************4242b"
    assert pan.mask("\uff11\uff12\uff13\uff14\uff15\uff16\uff17") == "***4567"
    assert pan.mask("\\u0031\\u0032\\u0033\\u0034\\u0035\\u0036") == "**3456"
    assert pan.mask("2026-11-22T08:15:00+00:00") == "2026-11-22T08:15:00+00:00"


def test_mask_keeps_uuids_whole() -> None:
    offline_id = "00000000-0000-4000-8000-000000000001"

    assert pan.mask(f"payment {offline_id}: 1234567") == f"payment {offline_id}: ***4567"


def test_quoted_masks_truncates_and_never_shows_a_card_number() -> None:
    assert pan.quoted("abc") == "'abc'"
    assert pan.quoted(Decimal("12.5")) == "12.5"
    assert pan.quoted(12345678) == "****5678"
    assert pan.quoted({"a": 1}) == "a JSON object"
    assert pan.quoted([1]) == "a JSON array"
    assert pan.quoted("x" * 58) == "'" + "x" * 58 + "'"
    assert pan.quoted("x" * 59) == "'" + "x" * 56 + "..."
    shown = pan.quoted("4242 4242 4242 4242")
    assert "4242 4242" not in shown and "card number" in shown


def test_redacted_masks_every_joined_group_of_a_card_number_only() -> None:
    assert pan.redacted("amount 12345678 is too much") == "amount 12345678 is too much"
    assert pan.redacted("got 4242 4242 4242 4242 and 12") == "got **** **** **** 4242 and 12"
    full_width = "".join(chr(0xFF10 + int(d)) for d in "4242424242424242")
    assert pan.redacted(f"\uff11\uff12\uff13\uff14 card {full_width}") == (
        "1234 card ************4242"
    )
    assert pan.redacted("id 12345-4242424242424242") == "id *****-************4242"


# -- the fast path against the plain definition ------------------------------------------------

_PLAIN_THIRTEEN = re.compile(rf"[0-9](?:{pan._SEPARATOR}*[0-9]){{{pan.PAN_DIGITS_MIN - 1}}}")
_PLAIN_BARRIERS = re.compile(f"{pan._BARRIERS.pattern}|{pan._DATE_TIME}")


def plain_holds_pan(text: str) -> bool:
    """The scanner as its docstring defines it, without the shortcuts: one backtracking regex
    for 13 joined digits, every barrier in one pass."""
    text = pan.normalized(text)
    if _PLAIN_THIRTEEN.search(text) is None:
        return False
    text = _without_barriers(text)
    return any(
        pan._chain_holds_pan(chain.group())
        for chain in pan._CHAIN.finditer(text)
        if len(chain.group()) >= pan.PAN_DIGITS_MIN
    )


def _without_barriers(text: str) -> str:
    return _PLAIN_BARRIERS.sub(lambda match: "x" * len(match.group()), text)


def plain_joins_thirteen(text: str) -> bool:
    """Whether 13 digits stand joined by separators once the barriers are out: where the Luhn
    check is made. The pre-filter must answer True wherever this does, whatever the digits."""
    return _PLAIN_THIRTEEN.search(_without_barriers(pan.normalized(text))) is not None


_PIECES = st.sampled_from(
    [
        *"0123456789",
        "4242",
        "4111 1111 1111 1111",
        " ",
        "-",
        ".",
        ":",
        "_",
        "\\n",
        "\\u0034",
        "\u00a0",
        "\uff14",  # a full-width 4
        "T",
        "x",
        "f",
        '", "',
        '"',
        "é",
        "\\t",
        "\\",
        "2026-11-22T07:09:33.422-06:00",
        "2026-11-22 07:09:60,123456789Z",
        "2099-01-31t23:59:00+0100",
        "1999-12-31T00:00:00Z",
        "2026-13-01T08:02:39.451+01:00",
        "2026-11-22",
        '"2026-11-22',
        "08:02:39.451+01:00",  # a time whose 13 digits make a card number
        "637e5e89-62fb-442b-b664-87efc104ec5f",
        "95e9e3e7-b479-4555-8276-027687ebedff",  # 13 digits once the dashes go
        "42424242-4242-4242-0000-00000000000",  # a UUID but for its last digit
        "A",
        "0123456789abcdef0123456789abcdef",
        "12345678901234567890",
    ]
)


@given(st.lists(_PIECES, max_size=30).map("".join))
def test_the_fast_path_answers_as_the_plain_definition(text: str) -> None:
    assert pan.holds_pan(text) == plain_holds_pan(text)
    assert pan.holds_pan(text.encode()) == plain_holds_pan(text)
    if plain_joins_thirteen(text):
        assert pan._may_join_thirteen(text.encode())


# A quoted date-time whose separators may be escaped letters, other separators, or be missing.
_DATE_TIME_PIECES = st.tuples(
    st.sampled_from(['"', "", '["', "x", '\\"']),
    st.sampled_from(["2026-11-22", "2026-13-22", "1999-12-31", "2026-11-22\\t"]),
    st.sampled_from(["T", "t", " ", "\\t", "\\n", "\\r", "\\b", "\\f", "/", ""]),
    st.sampled_from(["08:02:39", "08:02", "24:02:39", "08\\t02:39", "08:02:39\\n"]),
    st.sampled_from(["", ".451", ",451", "\\t451", "\\f451", ".451\\n"]),
    st.sampled_from(["", "+01:00", "Z", "\\b01:00", "-0100", "+01\\r00"]),
    st.sampled_from(['"', "", '", 4242', '" 4242424242424', '\\"', '"]', '"x']),
).map("".join)


@given(_DATE_TIME_PIECES)
def test_the_pre_filter_joins_digits_wherever_the_scan_does_around_date_times(text: str) -> None:
    assert pan._may_join_thirteen(text.encode()) or not plain_joins_thirteen(text)
    assert pan.holds_pan(text) == plain_holds_pan(text)


def _card_time(hours: str = "08") -> str:
    """A moment's time whose 13 digits (milliseconds and an offset) make a card number."""
    time = f"{hours}:02:39.451+01:0"
    return time + luhn_check_digit("".join(c for c in time if c.isdigit()))


_CARD_TIME = _card_time()
_CARD_UUID = "42424242-4242-4242-0000-000000000000"  # its first three groups: a card number
# What makes a card number of a fraction and an offset read after an escaped letter.
_FRACTION_CHECK = luhn_check_digit("451010042424")


@pytest.mark.parametrize(
    ("text", "holds"),
    [
        (f'"2026-11-22T{_CARD_TIME}"', False),  # a date-time: one token
        (f'"2026-13-22T{_CARD_TIME}"', True),  # no month 13: no date-time
        (f'"2026-11-32T{_CARD_TIME}"', True),
        (f'"2026-11-22T{_card_time("24")}"', True),
        (f'"2026-11-22T{_CARD_TIME}0"', False),  # a date-time without its offset
        (f'"2026-11-22T{_CARD_TIME}" 4242424242424242', True),
        (f'"4242 4242 4242 4242", "2026-11-22T{_CARD_TIME}"', True),
        (f'"1999-11-22t{_CARD_TIME}"', False),
        (f'"2026-11-22 {_CARD_TIME}"\\t"2026-11-22T{_CARD_TIME}"', False),
        # an escaped letter is a separator, but none of a date-time: a date, then a time
        (f'"2026-11-22\\t{_CARD_TIME}"', True),
        (f'"2026-11-22\\n{_CARD_TIME}", "x"', True),
        (f'["2026-11-22T08:02:39\\t451+01:00", 42424{_FRACTION_CHECK}]', True),
        (f'x2026-11-22T{_CARD_TIME}"', True),  # no date-time glued to a letter
        (f'"{_CARD_UUID}"', False),  # a UUID: one token
        (f'"{_CARD_UUID.upper()}"', False),
        (f'"{_CARD_UUID}", "2026-11-22T{_CARD_TIME}"', False),
        (f'"2026-11-22T{_CARD_TIME}"{_CARD_UUID}"', False),
        (f'"x{_CARD_UUID}"', True),  # no UUID glued to a letter
        (f'"{_CARD_UUID}0"', True),  # nor to a digit
        (f'"{_CARD_UUID[:-1]}"', True),  # 11 digits in its last group: no UUID
        (f'"\\n{_CARD_UUID}"', True),  # after an escaped letter, which is a letter there
        (f'"{_CARD_UUID}", 4242424242424242', True),
    ],
)
def test_the_pre_filter_takes_out_only_the_quoted_date_times_and_uuids_the_scan_does(
    text: str, holds: bool
) -> None:
    assert pan.holds_pan(text) is holds
    assert pan.holds_pan(text.encode()) is holds
    assert plain_holds_pan(text) is holds


# The batch pre-filter's own pieces: quoted date-times and UUIDs whole, a digit or a field
# short, glued to a letter or a digit, and what a record's line holds around them.
_BATCH_PIECES = _PIECES | st.sampled_from(
    [
        f'"2026-11-22T{_CARD_TIME}"',
        f'"2026-13-22T{_CARD_TIME}"',
        f'"2026-11-22T{_card_time("24")}"',
        f'"2026-11-22t{_CARD_TIME[:-3]}00"',
        f'"2026-11-22 {_CARD_TIME}"',
        f'"1999-11-22T{_CARD_TIME}"',
        f'"{_CARD_UUID}"',
        f'"{_CARD_UUID.upper()}"',
        f'"{_CARD_UUID[:-1]}"',
        f"x{_CARD_UUID}",
        _CARD_UUID,
        '{"amount": ',
        "}\n",
        "\n",
        "\r",
        "\x00",
        "\x7f",
        "[",
        "]",
        "`",
        "@",
        "\u0663",
        "\u00e9",
    ]
)


@given(st.lists(st.lists(_BATCH_PIECES, max_size=20).map("".join), min_size=1, max_size=4))
def test_a_batch_suspects_every_line_where_13_digits_stand_joined(texts: list[str]) -> None:
    """Stronger than a card number found: wherever the scan would make its Luhn check, whatever
    the digits, the line is a suspect, alone and in a batch, as text and as bytes not UTF-8."""
    lines = [text.encode("utf-8", "surrogatepass") for text in texts]
    joined = {n for n, text in enumerate(texts) if plain_joins_thirteen(text)}
    assert joined <= pan.suspects(lines)
    assert pan.suspects(lines, b"\n".join(lines)) == pan.suspects(lines)  # joined by the caller
    for n in joined:
        assert pan.suspects([lines[n]]) == {0}
    assert {0} <= pan.suspects([b"\xff" + lines[0]]) or not plain_joins_thirteen(texts[0])


@pytest.mark.parametrize(
    ("text", "suspect"),
    [
        (f'"2026-11-22T{_CARD_TIME}"', False),  # a quoted date-time: taken out
        (f'"2026-13-22T{_CARD_TIME}"', True),  # no month 13
        (f'"2026-11-22T{_CARD_TIME}0"', True),  # not quoted whole: left in
        (f'"{_CARD_UUID}"', False),
        (f'"{_CARD_UUID[:-1]}"', True),
        (f'x"{_CARD_UUID}"x', False),  # letters outside the quotes: still a quoted UUID
        ("424242424242", False),  # 12 digits
        ("4242424242424", True),  # 13
        ("4242 4242-4242\n4", True),  # joined across separators and a newline
        ("424242424242x4", False),  # a letter splits
        ("424242424242\u0663", True),  # past ASCII: maybe a digit
        ("424242424242\u00e9", True),  # even a letter
        ('"x\\"', True),  # a backslash: escapes are the scan's to read
    ],
)
def test_the_batch_pre_filter_takes_out_only_what_the_scan_does(text: str, suspect: bool) -> None:
    lines = [_CLEAN_LINE, text.encode(), _CLEAN_LINE]
    assert pan.suspects(lines) == ({1} if suspect else set())
    assert pan.suspects([text.encode()]) == ({0} if suspect else set())


# -- find_pan: the JSON text read once against every key and value read alone -----------------


def plain_find_pan(value: object) -> bool:
    """find_pan's definition: some key or scalar alone, or the value's JSON text, holds one."""
    return any(pan.holds_pan(text) for _, text in pan._walk(value, "")) or pan.holds_pan(
        pan._as_text(value)
    )


_TEXTS = st.lists(_PIECES, max_size=12).map("".join)
_SCALARS = (
    _TEXTS
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.integers()
    | st.floats(allow_nan=False)
    | st.sampled_from([True, False, None, 4242424242424242.0, 1e-05, 4.242424242424243e16])
)
_VALUES = st.recursive(
    _SCALARS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(_TEXTS | st.integers(), children, max_size=4)
    ),
    max_leaves=12,
)


@given(_VALUES)
def test_find_pan_reading_json_text_once_answers_as_reading_each_value(value: object) -> None:
    assert (pan.find_pan(value) is not None) == plain_find_pan(value)


def test_a_card_number_in_any_one_value_of_a_stripe_object_is_found_where_it_is() -> None:
    number = "4242424242424242"
    answer = {"id": "pi_1", "latest_charge": {"id": "ch_1", "receipt_number": None}}

    assert pan.find_pan(answer) is None
    for planted, where in (
        ({**answer, "description": f"card {number}"}, "description"),
        ({**answer, "metadata": {"note": "4242\\u00344242 4242 4242"}}, "metadata.note"),
        ({**answer, "metadata": {number: "x"}}, "metadata.<card number>"),
        ({**answer, "amount": int(number)}, "amount"),
        ({**answer, "amount": float(number)}, "amount"),
        ({**answer, "parts": ["4242 4242", "4242 4242"]}, "(record)"),
    ):
        assert pan.find_pan(planted) == where


def test_a_backslash_of_a_values_own_is_read_as_it_reads_alone() -> None:
    # Alone, the escape makes the date run into a digit (no date-time); in JSON text the
    # doubled backslash would stand between them.
    value = "0000000002026-11-22\\u0034"

    assert pan.holds_pan(value)
    assert pan.find_pan(value) == "(record)"
    assert pan.find_pan({"a": [value]}) == "a[0]"
