"""The trading-day generator: the one source of simulated days for the demo, the tests and the
benchmarks, all drawn from a seeded random generator (so a seed always gives the same day).

- this module: the records every day is made of: ids as readers and Stripe make them, readers
  named after their location, the wire records of a reader and a payment's steps, and a day
  written as JSON Lines, the file format `offline-ledger ingest` reads;
- `stores`: a store as the generator sees it (place, hours, readers, cards, baskets, limits),
  and the chain of stores the benchmarks' days take place in;
- `draws`: when a sale happens (rush hours), its basket, the card presented, and how a day's
  sales are shared among stores;
- `day`: a whole day of records in time order, streamed (the benchmarks' and the tests' days).

The demo draws its sales from `draws` and scripts its outages on top (`adapters.demo`).
"""

from __future__ import annotations

import itertools
import json
import random
import string
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

Record = dict[str, Any]

ID_ALPHABET = string.ascii_letters + string.digits


def random_offline_id(rng: random.Random) -> str:
    """A payment's offline_id as a reader makes it: a random UUID (version 4), from `rng`."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def numbered_offline_id(number: int) -> str:
    """A readable, valid UUID (version 4 layout) for payment `number`."""
    return f"00000000-0000-4000-8000-{number:012d}"


def random_id(rng: random.Random, prefix: str, length: int = 24) -> str:
    """A Stripe-style object id (`pi_...`, `ch_...`): `prefix` and `length` letters or digits."""
    return prefix + "".join(rng.choices(ID_ALPHABET, k=length))


def reader_ids(location_id: str, count: int, first: int = 1) -> list[str]:
    """The readers of a location, numbered from `first`: tml_x -> tmr_x_1, tmr_x_2, ..."""
    name = location_id.removeprefix("tml_")
    return [f"tmr_{name}_{n}" for n in range(first, first + count)]


def device_connected(
    occurred_at: str, device_id: str, location_id: str, reader_type: str, software_updated_at: str
) -> Record:
    """A reader seen online (`device.connected_online`), its fields in the wire order."""
    return {
        "type": "device.connected_online",
        "occurred_at": occurred_at,
        "device_id": device_id,
        "location_id": location_id,
        "reader_type": reader_type,
        "software_updated_at": software_updated_at,
    }


def payment_step(record_type: str, occurred_at: str, offline_id: str, **fields: Any) -> Record:
    """One step of a payment's walk (`payment.created`, `payment.forwarded`, ...): the record's
    type, when, which payment, then the step's own fields in the order given."""
    return {"type": record_type, "occurred_at": occurred_at, "offline_id": offline_id, **fields}


def write_jsonl(path: Path, records: Iterable[Record | str], max_lines: int | None = None) -> int:
    """Write records (dicts, or raw lines as str) as JSON Lines, at most `max_lines`; return
    how many lines were written."""
    written = 0
    with path.open("w", encoding="utf-8") as out:
        for record in itertools.islice(records, max_lines):
            out.write(record if isinstance(record, str) else json.dumps(record))
            out.write("\n")
            written += 1
    return written
