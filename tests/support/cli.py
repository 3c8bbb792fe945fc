"""The installed `offline-ledger` command run in a subprocess, as an operator runs it, and a
small day of records to run it on.

Every run starts from a clean environment (no OFFLINE_LEDGER_* settings but those given) and
checks that nothing printed a traceback: no input may produce one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support import records as r

CLI = Path(sys.executable).parent / "offline-ledger"
UNREACHABLE = "postgresql://postgres@127.0.0.1:1/x"  # nothing listens on port 1
AT = "2026-11-22T09:00:00+00:00"  # decisions are evaluated at this time
PAN = "4242 4242 4242 4242"  # Luhn-valid: a full card number

P1 = "00000000-0000-4000-8000-000000000001"  # stored on tmr_1, 12.50
P2 = "00000000-0000-4000-8000-000000000002"  # forwarded (succeeded): captured
P3 = "00000000-0000-4000-8000-000000000003"  # declined after being stored
P4 = "00000000-0000-4000-8000-000000000004"  # stored on tmr_2, 25.00
UNKNOWN = "00000000-0000-4000-8000-000000000099"


def day() -> list[dict[str, Any]]:
    """A small day at one location whose stored total may not pass 100.00 USD."""
    location = r.location(
        limits={
            "per_payment_max": {"usd": 50_000},
            "stored_amount_max": {"usd": 10_000},
            "stored_count_max": 10,
        }
    )
    return [
        location,
        r.device("tmr_1"),
        r.device("tmr_2"),
        *r.stored_payment(P1, amount=1_250),
        *r.stored_payment(P2, device_id="tmr_2", amount=3_000),
        r.forwarded(P2, "pi_2", "succeeded"),
        *r.stored_payment(P3, amount=4_000),
        r.declined(P3, payment_intent_id="pi_3"),
        *r.stored_payment(P4, device_id="tmr_2", amount=2_500),
    ]


def run(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the installed command with a clean environment (no OFFLINE_LEDGER_* settings but
    those given); no run may print a traceback."""
    environment = clean_environment()
    environment.update({"COLUMNS": "200", **(env or {})})
    done = subprocess.run(
        [str(CLI), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=environment,
        cwd=cwd,
        timeout=300,
        check=False,
    )
    assert "Traceback" not in done.stdout + done.stderr, done.stdout + done.stderr
    return done


def run_json(*args: str, status: int = 0, **kwargs: Any) -> Any:
    done = run(*args, "--json", **kwargs)
    assert done.returncode == status, done.stdout + done.stderr
    return json.loads(done.stdout)


def clean_environment() -> dict[str, str]:
    """This process's environment without any OFFLINE_LEDGER_* setting."""
    return {k: v for k, v in os.environ.items() if not k.startswith("OFFLINE_LEDGER_")}
