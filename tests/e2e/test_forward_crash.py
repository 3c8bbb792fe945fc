"""`offline-ledger forward` killed with SIGKILL at random moments of its work (each time after
it has sent Stripe something new, so the machine's load does not matter) and restarted until it
finishes, against localstripe (which ignores Idempotency-Key) behind a proxy that also loses
answers: afterwards the server holds exactly one PaymentIntent per offline_id, with the right
amount and metadata, and the ledger shows each payment forwarded once."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from typing import TYPE_CHECKING

from ledger import Ledger
from tests.support import records as r
from tests.support.cli import CLI
from tests.support.forwarding import KEY, assert_exactly_one_each, stored

if TYPE_CHECKING:  # loaded by pytest_plugins, which also rewrites its asserts
    from tests.support.stripe_fixtures import FaultProxy

pytest_plugins = ["tests.support.stripe_fixtures"]

PAYMENTS = 150
KILLS = 6  # runs killed before one is let finish
RUNS_MAX = 40
REQUESTS_BEFORE_KILL_MAX = 12  # of the hundreds a run sends: every kill lands mid-run
WAIT_SECONDS = 300  # only reached if something hangs


def interrupted(
    run: subprocess.Popen[str], proxy: FaultProxy, before: int, rng: random.Random
) -> bool:
    """Wait until this run has sent Stripe a random number of new requests (1 to
    REQUESTS_BEFORE_KILL_MAX: it is mid-work, whatever the machine's load), then SIGKILL it.
    False if it ended first."""
    target = before + rng.randint(1, REQUESTS_BEFORE_KILL_MAX)
    deadline = time.monotonic() + WAIT_SECONDS
    while run.poll() is None and len(proxy.log()) < target:
        assert time.monotonic() < deadline, "the forward sent nothing to Stripe"
        time.sleep(0.02)
    if run.poll() is not None:
        return False
    run.send_signal(signal.SIGKILL)
    run.communicate(timeout=WAIT_SECONDS)
    return True


def settled(proxy: FaultProxy) -> None:
    """Wait until every request the proxy passed on has its answer from the server: a killed
    client's last request still reaches Stripe, and must be counted."""
    deadline = time.monotonic() + WAIT_SECONDS
    while any(
        entry["upstream_status"] is None and entry["action"] not in ("status", "drop_before")
        for entry in proxy.log()
    ):
        assert time.monotonic() < deadline, "a request never got the server's answer"
        time.sleep(0.02)


def test_forwarding_killed_at_random_moments_ends_with_one_payment_intent_each(
    sqlite_url: str,
    fault_proxy: FaultProxy,
) -> None:
    with Ledger.open(sqlite_url) as ledger:
        ledger.record(
            r.location(
                limits={"per_payment_max": {"usd": 50_000}, "stored_count_max": 10_000},
                device_limits={},
            )
        )
        ledger.record(r.device())
        ids = stored(ledger, PAYMENTS)
    fault_proxy.rules(
        [
            {
                "method": "POST",
                "path": "^/v1/payment_intents$",
                "action": "drop_after",
                "probability": 0.05,
                "seed": 11,
            }
        ]
    )
    environment = {
        k: v for k, v in os.environ.items() if not k.startswith(("OFFLINE_LEDGER_", "STRIPE_"))
    }
    environment |= {
        "STRIPE_API_KEY": KEY,
        "STRIPE_API_BASE": fault_proxy.url,
        "STRIPE_TIMEOUT_SECONDS": "2",
    }
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    killed = 0
    for _ in range(RUNS_MAX):
        before = len(fault_proxy.log())
        run = subprocess.Popen(
            [str(CLI), "forward", "--db", sqlite_url, "--json", "--concurrency", "4"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment,
        )
        try:
            if killed < KILLS and interrupted(run, fault_proxy, before, rng):
                killed += 1
                continue
            out, err = run.communicate(timeout=WAIT_SECONDS)
        finally:
            if run.poll() is None:
                run.kill()
                run.communicate()
        assert "Traceback" not in err, err
        summary = json.loads(out)
        if run.returncode == 0 and summary["payments"] == 0:
            break  # nothing left stored: done
    else:
        raise AssertionError(f"seed {seed}: forwarding never finished in {RUNS_MAX} runs")
    assert killed >= 1, f"seed {seed}: no run was interrupted"
    settled(fault_proxy)
    with Ledger.open(sqlite_url) as ledger:
        assert_exactly_one_each(ledger, ids, fault_proxy.upstream)
        assert all(ledger.payment(i).status == "captured" for i in ids), f"seed {seed}"
