"""Mutated inputs against every edge where data enters the ledger, and what must never happen.

    python -m tests.support.fuzz --count 10000 --db sqlite:///fuzz.db
    python -m tests.support.fuzz --count 10000 --db 'postgresql://postgres@127.0.0.1:5432/test?schema=fuzz'

The edges, in turn (each gets a fifth of the inputs): `offline-ledger ingest` (the installed
command, files of up to 100 lines, one input a line), `Ledger.record` (the library, in this
process), `import-stripe-json` and `import-stripe-report` (the command's code in this process,
through click's runner: an uncaught exception there is the traceback a user would see), and
`POST /stripe/webhook` of `offline-ledger serve` over HTTP, each body signed with the
endpoint's secret so that it gets past the signature to the parser.

Each input is a valid seed (a wire record, a page of PaymentIntents, an itemized report, a
Stripe event) changed by one to three mutations: bits flipped, truncation, nesting thousands
deep, huge or odd numbers, odd Unicode (controls, bidi overrides, noncharacters, astral
characters, combining marks), a byte-order mark, lone surrogates (escaped and as raw bytes), a
value of another type, and a fresh card number planted in a value, a key or a number, in
every disguise of `tests.support.pan_disguises`. (Bits are never flipped in an input holding a
planted number: a flipped digit or a separator turned letter makes a number no longer a card
number.)

What must hold, and is checked for every input:
- no traceback (stdout, stderr, the server's log), no exit status outside 0/1/2, no HTTP 500;
- a refused input stores nothing: the contents of every table are the same before and after
  it (`ingest` runs a hundred lines at a time, and a record may store more than one event, so
  there the refused lines of each file are ingested again, alone: each must be refused again
  with the same code, and no table may change; `Ledger.record` runs the same checks and the
  same writes one record at a time, against the tables before and after each);
- no planted card number anywhere: every table of the database (and the SQLite file's bytes),
  the rejects files, every stdout and stderr, every message of the library's errors and the
  server's log; read by the independent checker `tests.support.pan_disguises.leaked` (the planted
  digits in order) and by `ledger.pan` (no card number at all in any table row or output line).

It prints, per edge, the inputs tried, refused and accepted, the numbers planted and leaked,
the failures, and the wall time; exit status 1 when anything failed. `tests/e2e/test_fuzz.py` runs
it at a smaller size.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import hmac
import http.client
import io
import json
import random
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from click.testing import CliRunner
from sqlalchemy.engine import make_url

from adapters.cli import main as cli
from adapters.trading_day import random_offline_id
from ledger import Ledger, LedgerError
from ledger.pan import holds_pan
from tests.support import records as r
from tests.support.big_files import REPORT_HEADER
from tests.support.cli import CLI, clean_environment
from tests.support.pan_disguises import RAW_JSON_DISGUISES, TEXT_DISGUISES, leaked, random_pan
from tests.support.serve import SECRET, event, payment_intent, running

EDGES = ("ingest", "Ledger.record", "import-stripe-json", "import-stripe-report", "webhook")
INGEST_BATCH = 100


@dataclass
class Tally:
    tried: int = 0
    refused: int = 0
    accepted: int = 0
    planted: int = 0


@dataclass
class Mutant:
    """One input: its bytes (or, for the library, the value), what made it, and the card
    number planted in it, if any."""

    data: bytes
    how: list[str]
    pan: str | None = None
    value: Any = None  # the library's input when it is not made of bytes


@dataclass
class Fuzz:
    url: str
    workdir: Path
    rng: random.Random
    tallies: dict[str, Tally] = field(default_factory=lambda: {e: Tally() for e in EDGES})
    pans: list[str] = field(default_factory=list)
    said: list[tuple[str, str]] = field(default_factory=list)  # (where, text): every output
    origin: dict[str, list[str]] = field(default_factory=dict)  # a planted number: its mutations
    failures: list[str] = field(default_factory=list)

    def fail(self, edge: str, mutant: Mutant, what: str) -> None:
        saved = self.workdir / f"failure-{len(self.failures)}.bin"
        saved.write_bytes(mutant.data)
        self.failures.append(f"{edge} [{', '.join(mutant.how)}] {what} (input: {saved})")


# -- mutations -----------------------------------------------------------------------------

FREE_TEXT = frozenset({"order", "note", "description", "idempotency_key", "message"})
HUGE_NUMBERS = ("1" + "0" * 400, "-1e999", "1e308", "18446744073709551616", "-0", "0.1", "1E2")
ODD_TEXT = (
    "\u202e\u2066",  # bidi overrides
    "\x00\x07\x1b[31m",  # NUL, bell, a terminal escape
    "\ufffe\uffff\ufdd0",  # noncharacters
    "\U0001f4b3\U0001d7d9",  # astral: an emoji, a mathematical digit
    "e\u0301\u0301\u0301",  # combining marks
    "\u2028\u2029",  # line and paragraph separators
    "\ufeff",  # a BOM inside a value
    "\uff21" * 300,  # long full-width text
    "\u0661\u0662\u0663",  # Arabic-Indic digits (too few for a card number)
)
OTHER_TYPES: tuple[Any, ...] = (None, True, [], {}, [1, "x"], {"k": None}, "", 0, -1, 2.5)


def _slots(value: Any) -> list[tuple[Any, Any]]:
    """Every (container, key or index) in a JSON value, iteratively."""
    found: list[tuple[Any, Any]] = []
    pending = [value]
    while pending:
        item = pending.pop()
        pairs = item.items() if isinstance(item, dict) else enumerate(item)
        for key, child in list(pairs):
            found.append((item, key))
            if isinstance(child, dict | list):
                pending.append(child)
    return found


def _nested(depth: int, leaf: Any, rng: random.Random) -> Any:
    value = leaf
    for _ in range(depth):
        value = [value] if rng.random() < 0.5 else {"a": value}
    return value


def _replace_slot(value: Any, rng: random.Random, make: Callable[[Any], Any]) -> None:
    """Change one value: half the time a free-text one (where notes, and card numbers, go),
    else a string half the time, else any."""
    slots = _slots(value)
    free = [(c, k) for c, k in slots if k in FREE_TEXT]
    strings = [(c, k) for c, k in slots if isinstance(c[k], str)]
    chosen = free if free and rng.random() < 0.5 else slots
    chosen = strings if strings and chosen is slots and rng.random() < 0.5 else chosen
    if chosen:
        container, key = rng.choice(chosen)
        container[key] = make(container[key])


def _appended(old: Any, text: str) -> str:
    """`text` after the old string, a space between if both sides are digits: digits glued to
    digits make one group, and a planted number would no longer be one (see GLUE)."""
    base = old if isinstance(old, str) else ""
    return base + (" " if base[-1:].isdigit() and text[:1].isdigit() else "") + text


def _rename_key(value: Any, rng: random.Random, name: str) -> bool:
    keyed = [(c, k) for c, k in _slots(value) if isinstance(c, dict)]
    if not keyed:
        return False
    container, key = rng.choice(keyed)
    container[name] = container.pop(key)
    return True


# What joins a planted number to the value it is appended to. Never nothing: digits glued to
# digits make one group (`A-17` + `4242...` is `174242...`, not a card number, by the scanner's
# rule that groups are taken whole), and so do digits glued to a hexadecimal id of 24 or more
# characters (`...897e` + `4242...` is one hexadecimal token); both are documented in
# `ledger.pan` as what it allows.
GLUE = (" ", "z", "_", "/", ": ", "\u00a0")

# A raw text placed where a JSON value stands, after serialization: "@@RAW@@" is the marker.
RAW = "@@RAW@@"


def structural(
    value: Any, rng: random.Random, fuzz: Fuzz, how: list[str]
) -> tuple[Any, str | None]:
    """One change to the decoded value; returns the value, and a raw text to put in place of
    the RAW marker after serialization (or None)."""
    choice = rng.choice(("deep", "huge", "odd", "odd", "type", "surrogate", "plant", "plant"))
    raw: str | None = None
    if choice == "deep":
        depth = rng.choice((33, 100, 1025, 5000))
        how.append(f"nested {depth} deep")
        _replace_slot(value, rng, lambda old: _nested(depth, old, rng))
    elif choice == "huge":
        raw = rng.choice(HUGE_NUMBERS)
        how.append(f"number {raw[:12]}")
        _replace_slot(value, rng, lambda old: RAW)
    elif choice == "odd":
        text = rng.choice(ODD_TEXT)
        how.append(f"odd unicode {text[:3]!a}")
        _replace_slot(value, rng, lambda old: _appended(old, text))
    elif choice == "type":
        other = rng.choice(OTHER_TYPES)
        how.append(f"type {json.dumps(other)}")
        _replace_slot(value, rng, lambda old: other)
    elif choice == "surrogate":
        raw = rng.choice(('"\\ud800"', '"x\\udfff"', '"\\udbff\\u0041"'))
        how.append("lone surrogate")
        _replace_slot(value, rng, lambda old: RAW)
    else:
        pan = random_pan(rng)
        fuzz.pans.append(pan)
        fuzz.origin[pan] = how
        if rng.random() < 0.25:
            name, disguise = rng.choice(sorted(RAW_JSON_DISGUISES.items()))
            raw = disguise(pan)
            how.append(f"card number, raw {name}")
            _replace_slot(value, rng, lambda old: RAW)
        else:
            name, shown = rng.choice(sorted(TEXT_DISGUISES.items()))
            text = shown(pan)
            where = rng.choice(("value", "key", "glued"))
            how.append(f"card number, {name}, in a {where}")
            if where == "key" and _rename_key(value, rng, text):
                pass
            elif where == "glued":  # after a letter or a separator (see GLUE)
                glue = rng.choice(GLUE)
                _replace_slot(
                    value, rng, lambda old: f"{old}{glue}{text}" if isinstance(old, str) else text
                )
            else:
                _replace_slot(value, rng, lambda old: text)
    return value, raw


def textual(data: bytes, rng: random.Random, how: list[str], flips: bool) -> bytes:
    choice = rng.choice(
        ("flip", "flip", "truncate", "bom", "raw surrogate") if flips else ("truncate", "bom")
    )
    if choice == "flip" and data:
        changed = bytearray(data)
        for _ in range(rng.randint(1, 3)):
            changed[rng.randrange(len(changed))] ^= 1 << rng.randrange(8)
        how.append("bits flipped")
        return bytes(changed)
    if choice == "truncate" and data:
        how.append("truncated")
        return data[: rng.randrange(1, len(data))]
    if choice == "raw surrogate" and data:
        at = rng.randrange(len(data))
        how.append("raw surrogate bytes")
        return data[:at] + b"\xed\xa0\x80" + data[at:]
    how.append("byte-order mark")
    return rng.choice((b"\xef\xbb\xbf", b"\xff\xfe")) + data


def mutate(seed: Any, fuzz: Fuzz) -> Mutant:
    """The seed (a JSON value) changed one to three times, serialized."""
    rng = fuzz.rng
    how: list[str] = []
    raws: list[str] = []
    pan: str | None = None
    value = json.loads(json.dumps(seed))
    for _ in range(1 if rng.random() < 0.75 else 2):
        planted_before = len(fuzz.pans)
        value, raw = structural(value, rng, fuzz, how)
        if len(fuzz.pans) > planted_before:
            pan = fuzz.pans[-1]
        if raw is not None:
            raws.append(raw)
            value = _tag(value, len(raws) - 1)
    text = json.dumps(value, ensure_ascii=rng.random() < 0.5)
    for index, raw in enumerate(raws):
        text = text.replace(json.dumps(f"{RAW}{index}"), raw, 1)
    data = text.encode("utf-8", errors="surrogatepass")
    if rng.random() < 0.3:
        data = textual(data, rng, how, flips=pan is None)
        return Mutant(data, how, pan)
    return Mutant(data, how, pan, value if not raws else None)


def _tag(value: Any, index: int) -> Any:
    """The RAW marker just placed, numbered (several raws may be in one input)."""
    for container, key in _slots(value):
        if container[key] == RAW:
            container[key] = f"{RAW}{index}"
    return value


# -- seeds ---------------------------------------------------------------------------------

BIG_LIMITS = {
    "per_payment_max": {"usd": 99_999_999, "eur": 99_999_999},
    "stored_amount_max": {"usd": 10**12, "eur": 10**12},
    "stored_count_max": 1_000_000,
}


# Payments made by the setup: random version 4 UUIDs, as a POS makes them (and always the same).
_POOL_RNG = random.Random(0)
POOL = [random_offline_id(_POOL_RNG) for _ in range(40)]


def setup_records() -> list[dict[str, Any]]:
    return [
        r.location(limits=BIG_LIMITS, device_limits={"stored_amount_max": {"usd": 10**12}}),
        r.device(),
        *(r.created(oid) for oid in POOL),
    ]


def wire_seed(rng: random.Random) -> dict[str, Any]:
    """A valid record: a new payment, or the next steps of one of the pool's (in any order,
    so some are refused as steps out of order, as a real reader's retries would be)."""
    new, known = str(uuid.uuid4()), rng.choice(POOL)
    return rng.choice(
        (
            lambda: r.created(new, metadata={"order": f"A-{rng.randint(1, 99)}", "note": "ok"}),
            lambda: r.created(new, idempotency_key=f"key-{uuid.uuid4().hex[:8]}"),
            lambda: r.created(new, amount=rng.randint(1, 99_999), currency="eur"),
            lambda: r.collected(known),
            lambda: r.confirmed(known),
            lambda: r.forward_failed(known),
            lambda: r.forwarded(known, "pi_" + uuid.uuid4().hex[:24]),
            lambda: r.location(f"tml_{uuid.uuid4().hex[:8]}"),
            lambda: r.device(f"tmr_{uuid.uuid4().hex[:8]}"),
        )
    )()


def payment_intent_seed(rng: random.Random) -> dict[str, Any]:
    status = rng.choice(("succeeded", "requires_capture", "canceled"))
    pi = "pi_" + uuid.uuid4().hex[:24]
    return payment_intent(str(uuid.uuid4()), status, pi, description=f"sale {rng.randint(1, 9)}")


def page_seed(rng: random.Random) -> dict[str, Any]:
    return {"object": "list", "data": [payment_intent_seed(rng) for _ in range(rng.randint(1, 3))]}


def report_seed(rng: random.Random) -> list[list[str]]:
    rows = [REPORT_HEADER.split(",")]
    for _ in range(rng.randint(1, 3)):
        n = uuid.uuid4().hex[:12]
        gross = rng.randint(100, 90_000)
        rows.append(
            [
                f"txn_{n}",
                "2026-11-22 10:15:00",
                "usd",
                f"{gross / 100:.2f}",
                "-0.66",
                f"{(gross - 66) / 100:.2f}",
                "charge",
                f"ch_{n}",
                f"pi_{n}",
                f"ch_{n}",
                str(uuid.uuid4()),
            ]
        )
    return rows


def event_seed(rng: random.Random) -> dict[str, Any]:
    if rng.random() < 0.2:
        charge = {
            "id": "ch_" + uuid.uuid4().hex[:24],
            "object": "charge",
            "amount_refunded": rng.randint(1, 1250),
            "currency": "usd",
            "payment_intent": "pi_" + uuid.uuid4().hex[:24],
            "metadata": {"offline_id": str(uuid.uuid4())},
        }
        return event("charge.refunded", charge)
    seen = payment_intent_seed(rng)
    kind = {"succeeded": "succeeded", "requires_capture": "amount_capturable_updated"}
    return event("payment_intent." + kind.get(seen["status"], "canceled"), seen)


# -- what the database holds ---------------------------------------------------------------


def _postgres(url: str) -> tuple[str, str]:
    parsed = make_url(url)
    schema = str(parsed.query.get("schema", "public"))
    base = parsed.set(drivername="postgresql", query={}).render_as_string(hide_password=False)
    return base, schema


def table_rows(url: str) -> Iterator[tuple[str, list[tuple[Any, ...]]]]:
    """Every table of the ledger's database (or schema) with its rows."""
    parsed = make_url(url)
    if parsed.drivername.startswith("sqlite"):
        with contextlib.closing(sqlite3.connect(str(parsed.database))) as conn:
            names = conn.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()
            for (name,) in names:
                yield name, conn.execute(f'SELECT * FROM "{name}"').fetchall()
        return
    base, schema = _postgres(url)
    with psycopg.connect(base, autocommit=True) as conn:
        names = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
        ).fetchall()
        for (name,) in names:
            yield name, conn.execute(f'SELECT * FROM "{schema}"."{name}"').fetchall()


def contents(url: str) -> dict[str, str]:
    """A digest of every table's rows (in any order)."""
    return {
        name: hashlib.sha256("\n".join(sorted(map(repr, rows))).encode()).hexdigest()
        for name, rows in table_rows(url)
    }


def database_texts(url: str) -> tuple[list[str], list[str]]:
    """Every cell of every table as one text (`table: value`; cells apart, so that the digits
    of neighbouring columns never join into one number); and the SQLite files' bytes (freed
    pages too)."""
    texts, files = [], []
    for name, rows in table_rows(url):
        for row in rows:
            texts += [
                f"{name}: "
                + (
                    bytes(v).decode("utf-8", "replace")
                    if isinstance(v, bytes | memoryview)
                    else str(v)
                )
                for v in row
            ]
    parsed = make_url(url)
    if parsed.drivername.startswith("sqlite"):
        path = Path(str(parsed.database))
        for file in (path, path.with_name(path.name + "-wal")):
            if file.exists():
                files.append(file.read_bytes().decode("utf-8", "replace"))
    return texts, files


# -- the edges -----------------------------------------------------------------------------


def _cli_env() -> dict[str, str]:
    return clean_environment() | {"COLUMNS": "200"}


def fuzz_ingest(fuzz: Fuzz, count: int) -> None:
    tally = fuzz.tallies["ingest"]
    for start in range(0, count, INGEST_BATCH):
        mutants = [
            mutate(wire_seed(fuzz.rng), fuzz) for _ in range(min(INGEST_BATCH, count - start))
        ]
        # One input a line: a line break made by a mutation would make two.
        lines = [m.data.replace(b"\n", b" ").replace(b"\r", b" ") for m in mutants]
        summary = _ingest(fuzz, lines, mutants, f"batch-{start}")
        if summary is None:
            continue
        refused = {entry["line"]: entry["code"] for entry in summary["rejected"]}
        tally.tried += len(lines)
        tally.refused += len(refused)
        tally.accepted += len(lines) - len(refused)
        tally.planted += sum(m.pan is not None for m in mutants)
        if not refused:
            continue
        # The refused lines again, alone: refused again with the same codes, nothing stored.
        order = sorted(refused)
        was = contents(fuzz.url)
        again = _ingest(
            fuzz, [lines[n - 1] for n in order], [mutants[n - 1] for n in order], f"again-{start}"
        )
        if again is None:
            continue
        codes = {order[e["line"] - 1]: e["code"] for e in again["rejected"]}
        for line in order:
            if codes.get(line) != refused[line]:
                fuzz.fail(
                    "ingest",
                    mutants[line - 1],
                    f"refused with {refused[line]}, then {codes.get(line)}",
                )
        if contents(fuzz.url) != was:
            fuzz.fail(
                "ingest", mutants[order[0] - 1], f"batch {start}: refused lines changed a table"
            )


def _ingest(
    fuzz: Fuzz, lines: list[bytes], mutants: list[Mutant], name: str
) -> dict[str, Any] | None:
    source = fuzz.workdir / f"{name}.jsonl"
    source.write_bytes(b"\n".join(lines) + b"\n")
    rejects = fuzz.workdir / f"{name}.rejects"
    done = subprocess.run(
        [str(CLI), "ingest", str(source), "--db", fuzz.url, "--rejects", str(rejects), "--json"],
        capture_output=True,
        env=_cli_env(),
        timeout=600,
        check=False,
    )
    stdout, stderr = done.stdout.decode("utf-8", "replace"), done.stderr.decode("utf-8", "replace")
    written = rejects.read_text("utf-8", "replace") if rejects.exists() else ""
    fuzz.said += [(f"{name} stdout", stdout), (f"{name} stderr", stderr), (rejects.name, written)]
    if "Traceback" in stdout + stderr or done.returncode not in (0, 1):
        fuzz.fail("ingest", mutants[0], f"{name}: exit status {done.returncode}: {stderr[-2000:]}")
        return None
    summary: dict[str, Any] = json.loads(stdout)
    if summary["rejected_truncated"]:
        fuzz.fail("ingest", mutants[0], f"{name}: the summary lists only some rejections")
        return None
    return summary


def fuzz_library(fuzz: Fuzz, count: int) -> None:
    tally = fuzz.tallies["Ledger.record"]
    with Ledger.open(fuzz.url) as ledger:
        was = contents(fuzz.url)
        for _ in range(count):
            mutant = mutate(wire_seed(fuzz.rng), fuzz)
            value = mutant.value
            if value is None:  # bytes only: what a caller's json.loads would give, or the text
                try:
                    value = json.loads(mutant.data)
                except (ValueError, RecursionError):
                    value = mutant.data.decode("utf-8", "surrogateescape")
            tally.tried += 1
            tally.planted += mutant.pan is not None
            try:
                ledger.record(value)
            except LedgerError as error:
                tally.refused += 1
                said = f"{error!s}\n{error!r}\n{json.dumps(error.to_dict())}"
                fuzz.said.append((f"Ledger.record error {tally.tried}", said))
                now = contents(fuzz.url)
                if now != was:
                    fuzz.fail(
                        "Ledger.record", mutant, f"refused ({error.code}) but a table changed"
                    )
                was = now
            except Exception as error:  # what a library caller would get: a crash
                fuzz.fail("Ledger.record", mutant, f"raised {type(error).__name__}")
                was = contents(fuzz.url)
            else:
                tally.accepted += 1
                was = contents(fuzz.url)


def fuzz_import(fuzz: Fuzz, count: int, edge: str) -> None:
    tally = fuzz.tallies[edge]
    runner = CliRunner()
    was = contents(fuzz.url)
    for index in range(count):
        if edge == "import-stripe-json":
            mutant = mutate(page_seed(fuzz.rng), fuzz)
            path = fuzz.workdir / f"payment_intents-{index}.json"
        else:
            mutant = _report_mutant(fuzz)
            path = fuzz.workdir / f"report-{index}.csv"
        path.write_bytes(mutant.data)
        done = runner.invoke(cli, [edge, str(path), "--db", fuzz.url, "--json"])
        fuzz.said += [(f"{path.name} stdout", done.stdout), (f"{path.name} stderr", done.stderr)]
        tally.tried += 1
        tally.planted += mutant.pan is not None
        crashed = done.exception is not None and not isinstance(done.exception, SystemExit)
        if crashed or done.exit_code not in (0, 1, 2) or "Traceback" in done.output:
            fuzz.fail(
                edge, mutant, f"exit status {done.exit_code}, {type(done.exception).__name__}"
            )
        now = contents(fuzz.url)
        if done.exit_code == 0:
            tally.accepted += 1
        else:
            tally.refused += 1
            if now != was:
                fuzz.fail(edge, mutant, f"exit status {done.exit_code} but a table changed")
        was = now


def _report_mutant(fuzz: Fuzz) -> Mutant:
    """A report with one cell changed (as `structural` changes a value), or its bytes."""
    rng = fuzz.rng
    rows = report_seed(rng)
    cells = rows[1:]
    how: list[str] = []
    value, raw = structural(cells, rng, fuzz, how)
    pan = fuzz.pans[-1] if how and how[-1].startswith("card number") else None

    def cell(item: Any) -> str:
        if item == RAW:
            return raw or ""
        return item if isinstance(item, str) else json.dumps(item)

    text = io.StringIO()
    body = [[cell(c) for c in row] if isinstance(row, list) else [cell(row)] for row in value]
    csv.writer(text).writerows([rows[0], *body])
    data = text.getvalue().encode("utf-8", errors="surrogatepass")
    if rng.random() < 0.4:
        data = textual(data, rng, how, flips=pan is None)
    return Mutant(data, how, pan)


def fuzz_webhook(fuzz: Fuzz, count: int) -> None:
    tally = fuzz.tallies["webhook"]
    with running(fuzz.url, fuzz.workdir) as server:
        was = contents(fuzz.url)
        for _ in range(count):
            mutant = mutate(event_seed(fuzz.rng), fuzz)
            stamp = int(time.time())
            signature = hmac.new(
                SECRET.encode(), f"{stamp}.".encode() + mutant.data, hashlib.sha256
            )
            status, answer = post(server.port, mutant.data, f"t={stamp},v1={signature.hexdigest()}")
            fuzz.said.append((f"webhook answer {tally.tried}", answer))
            tally.tried += 1
            tally.planted += mutant.pan is not None
            now = contents(fuzz.url)
            if status == 200:
                tally.accepted += 1
            elif status in (400, 413):
                tally.refused += 1
                if now != was:
                    fuzz.fail("webhook", mutant, f"answered {status} but a table changed")
            else:
                fuzz.fail("webhook", mutant, f"answered {status}: {answer}")
            was = now
        fuzz.said.append(("serve.log", server.log.read_text("utf-8", "replace")))
    log = server.log.read_text("utf-8", "replace")
    if "Traceback" in log:
        fuzz.fail("webhook", Mutant(log.encode(), ["the server's log"]), "a traceback in the log")


def post(port: int, body: bytes, signature: str) -> tuple[int, str]:
    """The status and the text of the answer, whatever it is (a 500 is no JSON)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        connection.request(
            "POST",
            "/stripe/webhook",
            body,
            {"Content-Type": "application/json", "Stripe-Signature": signature},
        )
        answer = connection.getresponse()
        return answer.status, answer.read().decode("utf-8", "replace")
    finally:
        connection.close()


# -- the run -------------------------------------------------------------------------------


@dataclass
class Report:
    tallies: dict[str, Tally]
    planted: int
    leaked: list[str]
    found_by_scanner: list[str]
    failures: list[str]
    seconds: float

    def lines(self) -> list[str]:
        out = [f"{'edge':22} {'tried':>7} {'refused':>8} {'accepted':>9} {'planted':>8}"]
        total = Tally()
        for edge, t in [*self.tallies.items(), ("all", total)]:
            out.append(f"{edge:22} {t.tried:7} {t.refused:8} {t.accepted:9} {t.planted:8}")
            for name in ("tried", "refused", "accepted", "planted"):
                setattr(total, name, getattr(total, name) + getattr(t, name))
        out.append(
            f"card numbers planted {self.planted}, leaked {len(self.leaked)}, "
            f"card numbers found by ledger.pan in tables or outputs {len(self.found_by_scanner)}"
        )
        out.append(f"failures {len(self.failures)}; wall time {self.seconds:.0f} s")
        out += [f"  FAILURE {failure}" for failure in self.failures[:50]]
        out += [f"  LEAKED {leak}" for leak in self.leaked[:20]]
        out += [f"  FOUND {found[:300]!a}" for found in self.found_by_scanner[:20]]
        return out


def run(count: int, url: str, workdir: Path, seed: int = 0) -> Report:
    """Fuzz every edge with `count` inputs in all, on the ledger at `url` (set up here)."""
    started = time.monotonic()
    # Seeds nested 5,000 deep are built, written and read back here with the json module.
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 20_000))
    fuzz = Fuzz(url, workdir, random.Random(seed))
    with Ledger.open(url) as ledger:
        for record in setup_records():
            ledger.record(record)
    share, extra = divmod(count, len(EDGES))
    sizes = {edge: share + (index < extra) for index, edge in enumerate(EDGES)}
    fuzz_ingest(fuzz, sizes["ingest"])
    fuzz_library(fuzz, sizes["Ledger.record"])
    fuzz_import(fuzz, sizes["import-stripe-json"], "import-stripe-json")
    fuzz_import(fuzz, sizes["import-stripe-report"], "import-stripe-report")
    fuzz_webhook(fuzz, sizes["webhook"])
    rows, files = database_texts(url)
    everywhere = [*(("database", cell) for cell in rows), *(("database file", f) for f in files)]
    everywhere += fuzz.said
    leaks = [
        f"{pan} (planted by {', '.join(fuzz.origin[pan])}) in "
        + ", ".join(where for where, text in everywhere if leaked([pan], text))
        for pan in leaked(fuzz.pans, *(text for _, text in everywhere))
    ]
    found = [f"database: {cell}" for cell in rows if holds_pan(cell.split(": ", 1)[1])]
    found += [
        f"{where}: {line}"
        for where, said in fuzz.said
        for line in said.splitlines()
        if holds_pan(line)
    ]
    return Report(
        fuzz.tallies, len(fuzz.pans), leaks, found, fuzz.failures, time.monotonic() - started
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--db", required=True, help="sqlite:///path.db or postgresql://...")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=None, help="inputs and outputs kept here")
    args = parser.parse_args()
    workdir = args.workdir or Path(f"fuzz-{int(time.time())}")
    workdir.mkdir(parents=True, exist_ok=True)
    report = run(args.count, args.db, workdir, args.seed)
    print("\n".join(report.lines()))
    sys.exit(1 if report.failures or report.leaked or report.found_by_scanner else 0)


if __name__ == "__main__":
    main()
