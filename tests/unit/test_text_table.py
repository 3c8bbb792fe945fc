"""The plain table `status` prints is rich's table, character for character, wherever it
draws one; where rich would print it otherwise (a cell to wrap, markup, another script), it
draws none and the command uses rich."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console
from rich.table import Table

from adapters.cli.text_table import Column, console_width, draw

TITLE = "Offline status: stored payments and headroom"


def by_rich(columns: list[Column], rows: list[list[str]], width: int) -> str:
    table = Table(title=TITLE, title_justify="left")
    for column in columns:
        table.add_column(
            column.header,
            justify="right" if column.right else "left",
            min_width=column.min_width or None,
        )
    for row in rows:
        table.add_row(*row)
    out = io.StringIO()
    Console(file=out, width=width, emoji=False).print(table)
    return out.getvalue()


WORD = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="["))
CELL = st.lists(st.lists(WORD, min_size=1, max_size=3).map(" ".join), min_size=1, max_size=3)


@settings(max_examples=100, deadline=None)
@given(
    cells=st.lists(st.lists(CELL.map("\n".join), min_size=3, max_size=3), max_size=5),
    min_width=st.integers(0, 30),
    width=st.integers(30, 140),
)
def test_a_table_it_draws_is_the_one_rich_draws(
    cells: list[list[str]], min_width: int, width: int
) -> None:
    columns = [Column("location / device", min_width=min_width), Column("n", right=True)]
    columns.append(Column("headroom"))
    drawn = draw(TITLE, columns, cells, width)
    if drawn is not None:
        assert drawn + "\n" == by_rich(columns, cells, width)


def test_a_table_that_fits_is_drawn() -> None:
    columns = [Column("location / device", min_width=8), Column("stored", right=True)]
    rows = [
        ["tml_1", "12"],
        ["  tmr_1", "3\n4"],
        ["tml_nyc_broadway_flagship (offline disabled)", "0"],
    ]
    drawn = draw(TITLE, columns, rows, 80)
    assert drawn is not None and drawn + "\n" == by_rich(columns, rows, 80)


@pytest.mark.parametrize(
    ("cell", "width"),
    [
        ("a cell far too long for the width the console has", 40),  # rich would wrap it
        ("shop [bold]1[/]", 80),  # rich reads markup
        ("café", 80),  # wide or combining characters: rich measures cells, not characters
        ("tab\there", 80),
    ],
)
def test_what_rich_would_print_otherwise_is_left_to_rich(cell: str, width: int) -> None:
    assert (
        draw(TITLE, [Column("location / device"), Column("stored")], [[cell, "1"]], width) is None
    )


def test_an_output_not_in_utf8_is_left_to_rich(monkeypatch: pytest.MonkeyPatch) -> None:
    """rich draws the box in ASCII there; the plain table's box would not even encode."""
    monkeypatch.setenv("COLUMNS", "120")
    monkeypatch.delenv("TERM", raising=False)
    monkeypatch.setattr("sys.stdout", io.TextIOWrapper(io.BytesIO(), encoding="utf-8"))
    assert console_width() == 120
    monkeypatch.setattr("sys.stdout", io.TextIOWrapper(io.BytesIO(), encoding="ascii"))
    assert console_width() is None
