"""A table drawn in plain text exactly as rich draws it without colours (a heavy head, one
space of padding each side of a cell), for `status`: rich's console costs that short command
more to import than the command takes to read the ledger.

It draws only what it can draw as rich would, character for character: printable ASCII text
without rich's markup or trailing spaces, every column as wide as its widest line, the whole
within the console's width. Anything else (a cell rich would wrap, an id in another script)
gets None, and the caller draws it with rich. On a terminal the plain table has no bold
header and no colours.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    header: str
    right: bool = False  # right-justified (numbers), else left
    min_width: int = 0


def console_width() -> int | None:
    """The width rich's console takes: COLUMNS, else that of the first of standard input,
    output and error that is a terminal, else 80. None where rich decides otherwise (Windows,
    a dumb terminal, an output not in UTF-8, where rich draws the box in ASCII): rich draws
    there."""
    if (
        sys.platform == "win32"
        or os.environ.get("TERM", "").lower() in ("dumb", "unknown")
        or not (getattr(sys.stdout, "encoding", None) or "").lower().startswith("utf")
    ):
        return None
    columns = os.environ.get("COLUMNS")
    if columns is not None and columns.isdigit():
        return int(columns) or None
    for descriptor in (0, 1, 2):
        try:
            width = os.get_terminal_size(descriptor).columns
        except (AttributeError, ValueError, OSError):  # not a terminal
            continue
        return width or 80
    return 80


def plain(text: str) -> bool:
    """Whether rich prints `text` as it is: printable ASCII, nothing rich reads as markup, no
    trailing space (which rich drops in places)."""
    return text.isascii() and text.isprintable() and "[" not in text and not text.endswith(" ")


def fits(lines: Sequence[str], width: int) -> bool:
    """Whether rich prints these lines as they are, none wrapped."""
    return all(plain(line) and len(line) <= width for line in lines)


def draw(
    title: str, columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int
) -> str | None:
    """The table, its title left-justified above it, as rich prints it at `width`; None when
    rich would print it otherwise."""
    cells = [[cell.split("\n") for cell in row] for row in rows]
    widths = [
        max(
            column.min_width,
            len(column.header),
            *(len(line) for row in cells for line in row[index]),
        )
        for index, column in enumerate(columns)
    ]
    table_width = sum(widths) + 3 * len(widths) + 1
    texts = [title, *(c.header for c in columns), *(line for r in cells for c in r for line in c)]
    if table_width > width or len(title) > table_width or not all(map(plain, texts)):
        return None

    def rule(left: str, line: str, between: str, right: str) -> str:
        return left + between.join(line * (w + 2) for w in widths) + right

    def row(values: Sequence[str], edge: str) -> str:
        padded = (
            value.rjust(w) if column.right else value.ljust(w)
            for value, w, column in zip(values, widths, columns, strict=True)
        )
        return edge + edge.join(f" {value} " for value in padded) + edge

    lines = [title.ljust(table_width), rule("┏", "━", "┳", "┓")]
    lines += [row([c.header for c in columns], "┃"), rule("┡", "━", "╇", "┩")]
    for cell_lines in cells:
        height = max(map(len, cell_lines))
        for at in range(height):
            lines.append(row([c[at] if at < len(c) else "" for c in cell_lines], "│"))
    lines.append(rule("└", "─", "┴", "┘"))
    return "\n".join(lines)
