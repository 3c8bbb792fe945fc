"""Streaming JSON Lines ingest: constant memory, one result per line, rejects kept aside.

Lines are read lazily and applied in batches (`Ledger.record_stream`), so a file of any size
needs only one batch in memory, and a line is read at most `LINE_BYTES_MAX` bytes at a time
(a longer one is refused as RECORD_TOO_LARGE, the rest of it skipped). A rejected line is
reported with its number, code and message and, with a rejects file, written there with its
error and a masked copy of the line (every run of 6 or more digits masked but its last 4),
except when it held a card number: that line is never copied anywhere, not even masked.

A database that fails mid-file (outage, timeout) stops the ingest: the summary says which
error stopped it and the last line durably applied (`last_applied_line`: every line up to it
is recorded or was refused; none after it is). Records are idempotent, so running the same
file again takes over where it stopped.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from ledger import Ledger, LedgerError
from ledger.batches import BATCH_SIZE_DEFAULT, iter_batches
from ledger.bounds import LINE_BYTES_MAX
from ledger.collector import survivors_set_aside
from ledger.errors import Breach, Code, StorageError
from ledger.pan import mask
from ledger.wire import parse_lines

REJECTED_KEPT_MAX = 10_000  # rejections listed in the summary; the count is always exact


@dataclass
class IngestSummary:
    lines: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected_count: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)
    # Facts recorded although they broke an offline rule: {line, code, message} per breach.
    flagged_count: int = 0
    flagged: list[dict[str, Any]] = field(default_factory=list)
    last_applied_line: int = 0  # the last line of the last batch committed
    stopped: LedgerError | None = None  # what ended the ingest before the end of the file

    def to_dict(self) -> dict[str, Any]:
        return {
            "lines": self.lines,
            "last_applied_line": self.last_applied_line,
            "stopped": None if self.stopped is None else self.stopped.to_dict(),
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected_count": self.rejected_count,
            "rejected": self.rejected,
            "rejected_truncated": self.rejected_count > len(self.rejected),
            "flagged_count": self.flagged_count,
            "flagged": self.flagged,
            "flagged_truncated": self.flagged_count > len(self.flagged),
        }


def numbered_lines(stream: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    """(line number, text) for every non-blank line; line numbers count blank lines too.

    A line longer than LINE_BYTES_MAX is cut there (the cut text is refused as too large by
    `parse_line`) and the rest of it is skipped without being held in memory."""
    number = 0
    while raw := stream.readline(LINE_BYTES_MAX + 1):
        number += 1
        if len(raw) > LINE_BYTES_MAX and not raw.endswith(b"\n"):
            while (rest := stream.readline(LINE_BYTES_MAX)) and not rest.endswith(b"\n"):
                pass
        text = raw.strip()
        if text:
            yield number, text


def ingest(
    ledger: Ledger,
    lines: Iterable[tuple[int, bytes]],
    *,
    batch_size: int = BATCH_SIZE_DEFAULT,
    rejects: IO[str] | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> IngestSummary:
    """The lines applied in batches (`Ledger.record_stream`: the next batch parsed and decided
    while one is written), each batch's outcome counted once it is committed."""
    summary = IngestSummary()

    def committed(batch: list[tuple[int, bytes]], results: list[Any]) -> None:
        _tell(summary, rejects, batch, results)
        summary.last_applied_line = batch[-1][0]
        # What the batches so far left alive (the ledger's growing state) is moved out of the
        # collector's sight, so that its full passes do not walk it again at every batch.
        set_aside()
        if on_batch is not None:
            on_batch(sum([len(text) for _, text in batch]) + len(batch))

    # The batches' parsed records and results live until they are told: the cycle collector,
    # woken every 700 new objects, would walk them (and the aggregates held between batches)
    # a dozen times per batch for nothing, a tenth of the ingest's time (`record_stream`
    # holds it off while it runs).
    batches = (
        (batch, parse_lines([text for _, text in batch]))
        for batch in iter_batches(lines, batch_size)
    )
    with survivors_set_aside() as set_aside:
        try:
            ledger.record_stream(batches, committed)
        except StorageError as error:
            summary.stopped = error
    return summary


def _tell(
    summary: IngestSummary,
    rejects: IO[str] | None,
    batch: list[tuple[int, bytes]],
    results: list[Any],
) -> None:
    """Count each line's outcome in `summary`, with its breaches and refusal."""
    # The counts kept in locals and added once a batch: the summary's attributes updated for
    # every line were about a sixth of the loop's time.
    accepted = duplicates = 0
    for (number, text), result in zip(batch, results, strict=True):
        if isinstance(result, LedgerError):
            _reject(summary, rejects, number, text, result)
        elif result.recorded:
            accepted += 1
            if result.breaches:
                _flag(summary, number, result.breaches)
        else:
            duplicates += 1
    summary.lines += len(batch)
    summary.accepted += accepted
    summary.duplicates += duplicates


def _flag(summary: IngestSummary, number: int, breaches: tuple[Breach, ...]) -> None:
    for breach in breaches:
        summary.flagged_count += 1
        if len(summary.flagged) < REJECTED_KEPT_MAX:
            summary.flagged.append(
                {"line": number, "code": breach["code"], "message": breach["message"]}
            )


def _reject(
    summary: IngestSummary, rejects: IO[str] | None, number: int, text: bytes, error: LedgerError
) -> None:
    error.at_line(number)
    summary.rejected_count += 1
    if len(summary.rejected) < REJECTED_KEPT_MAX:
        summary.rejected.append(error.to_dict())
    if rejects is not None:
        entry = error.to_dict()
        if error.code is Code.CARD_NUMBER_DETECTED:
            entry["record"] = None  # never copy a card number to disk
        else:
            entry["record"] = mask(text.decode("utf-8", errors="replace"))
        rejects.write(json.dumps(entry) + "\n")
