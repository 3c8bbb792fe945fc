"""Renderers of the reconciliation report, one module per format."""

from __future__ import annotations

from collections.abc import Callable
from typing import TextIO

from projections.formats.csv import render_csv, write_csv
from projections.formats.html import render_html
from projections.formats.json import render_json, write_json
from projections.formats.table import render_table
from projections.report import Report

FORMATS = ("table", "csv", "json", "html")

_RENDERERS: dict[str, Callable[[Report], str]] = {
    "table": render_table,
    "csv": render_csv,
    "json": render_json,
    "html": render_html,
}
assert tuple(_RENDERERS) == FORMATS
_WRITERS: dict[str, Callable[[Report, TextIO], None]] = {
    "csv": write_csv,
    "json": write_json,
}


def render(report: Report, fmt: str) -> str:
    """The report in the format `fmt`, one of `FORMATS`."""
    renderer = _RENDERERS.get(fmt)
    if renderer is None:
        raise ValueError(f"unknown report format {fmt!r}: use one of {', '.join(FORMATS)}")
    return renderer(report)


def write(report: Report, fmt: str, out: TextIO) -> None:
    """Write the report to `out`; CSV and JSON stream row by row."""
    if fmt in _WRITERS:
        _WRITERS[fmt](report, out)
        return
    text = render(report, fmt)
    out.write(text if text.endswith("\n") else text + "\n")
