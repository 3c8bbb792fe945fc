"""`offline-ledger sync-stripe`, `capture` and `forward`, the installed command in
subprocesses against localstripe on 127.0.0.1: keys come from the environment only and are
never printed."""

from __future__ import annotations

from typing import TYPE_CHECKING

import stripe

from ledger import Ledger
from tests.support import records as r
from tests.support.cli import run, run_json
from tests.support.forwarding import KEY, stored

if TYPE_CHECKING:  # loaded by pytest_plugins, which also rewrites its asserts
    from tests.support.stripe_fixtures import FaultProxy

pytest_plugins = ["tests.support.stripe_fixtures"]


def stripe_env(url: str, key: str = KEY) -> dict[str, str]:
    return {"STRIPE_API_KEY": key, "STRIPE_API_BASE": url, "STRIPE_TIMEOUT_SECONDS": "5"}


def prepared(url: str, count: int, capture_method: str) -> list[str]:
    with Ledger.open(url) as ledger:
        ledger.record(r.location())
        ledger.record(r.device())
        return stored(ledger, count, capture_method=capture_method)


def test_forward_then_capture_every_authorization_due(
    sqlite_url: str,
    fault_proxy: FaultProxy,
) -> None:
    ids = prepared(sqlite_url, 3, "manual")
    env = stripe_env(fault_proxy.url)
    assert run_json("forward", "--db", sqlite_url, env=env) == {"payments": 3, "forwarded": 3}
    assert run_json("forward", "--db", sqlite_url, env=env) == {"payments": 0}
    captured = run_json("capture", "--all-due", "--db", sqlite_url, env=env)
    assert len(captured["captured"]) == 3 and captured["failed"] == []
    with Ledger.open(sqlite_url) as ledger:
        assert {ledger.payment(i).status for i in ids} == {"captured"}
    again = run("capture", ids[0], "--db", sqlite_url, env=env)
    assert again.returncode == 1 and "STEP_OUT_OF_ORDER" in again.stderr


def test_sync_twice_records_nothing_the_second_time(
    sqlite_url: str,
    fault_proxy: FaultProxy,
) -> None:
    ids = prepared(sqlite_url, 2, "automatic")
    client = stripe.StripeClient(KEY, base_addresses={"api": fault_proxy.upstream})
    for offline_id in ids:
        client.v1.payment_intents.create(
            params={
                "amount": 1000,
                "currency": "usd",
                "payment_method": "pm_card_visa",
                "confirm": True,
                "metadata": {"offline_id": offline_id},
            }
        )
    env = stripe_env(fault_proxy.url)
    first = run_json("sync-stripe", "--db", sqlite_url, env=env)
    assert (first["payment_intents"], first["observations_recorded"]) == (2, 2)
    second = run_json("sync-stripe", "--db", sqlite_url, env=env)
    assert (second["observations_recorded"], second["facts_recorded"]) == (0, 0)


def test_without_a_key_the_stripe_commands_exit_2_naming_the_variable(sqlite_url: str) -> None:
    for command in (["forward"], ["sync-stripe"], ["capture", "--all-due"]):
        done = run(*command, "--db", sqlite_url, env={"STRIPE_API_KEY": ""})
        assert done.returncode == 2, done.stderr
        assert "STRIPE_API_KEY" in done.stderr


def test_the_key_never_appears_in_output_or_errors(
    sqlite_url: str,
    fault_proxy: FaultProxy,
) -> None:
    secret = "sk_test_" + "s3cr3t" * 6
    fault_proxy.rules(
        [
            {
                "action": "status",
                "status": 401,
                "body": {
                    "error": {
                        "type": "invalid_request_error",
                        "message": "Invalid API Key provided",
                    }
                },
            }
        ]
    )
    prepared(sqlite_url, 1, "automatic")
    for command in (["forward"], ["sync-stripe"]):
        done = run(*command, "--db", sqlite_url, env=stripe_env(fault_proxy.url, secret))
        assert done.returncode in (1, 2), done.stderr
        assert secret not in done.stdout + done.stderr
        assert "s3cr3t" not in done.stdout + done.stderr
    assert "--api-key" not in run("forward", "--help").stdout
