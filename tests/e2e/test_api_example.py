"""examples/curl/sale.sh, the API as any language calls it, run against `offline-ledger serve`:
the sale it makes is in the ledger, stored, and on its reader's queue."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from ledger import Ledger
from tests.support import records as r
from tests.support.api_client import new_key
from tests.support.serve import running

SCRIPT = Path(__file__).parents[2] / "examples" / "curl" / "sale.sh"


def test_the_curl_example_makes_a_stored_sale(sqlite_url: str, tmp_path: Path) -> None:
    with Ledger.open(sqlite_url) as ledger:
        ledger.record(r.location("tml_1"))
    with running(sqlite_url, tmp_path) as server:
        environment = {
            **os.environ,
            "OFFLINE_LEDGER_API": f"http://127.0.0.1:{server.port}",
            "OFFLINE_LEDGER_API_KEY": new_key(sqlite_url, "pos", "tml_1"),
        }
        done = subprocess.run(
            ["bash", str(SCRIPT)], capture_output=True, text=True, env=environment, timeout=120
        )
    assert done.returncode == 0, done.stdout + done.stderr
    answers = [json.loads(line) for line in done.stdout.splitlines()]
    assert answers[1]["granted"] is True
    payment, queue = answers[-2], answers[-1]
    assert (payment["status"], payment["amount"]) == ("stored", 1250)
    assert [p["offline_id"] for p in queue] == [payment["offline_id"]]
    with Ledger.open(sqlite_url) as ledger:
        assert ledger.payment(payment["offline_id"]).status == "stored"
