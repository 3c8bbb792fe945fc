"""What the gateway sends Stripe, seen by a recording peer over real HTTP: the pinned API
version, `created[gte]` and `expand[]` on listings, lookups without Search listed once per run;
keys checked before any call; the ledger bound to a mode only by what Stripe showed."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from adapters.settings import StripeSettings
from adapters.stripe.gateway import API_VERSION, StripeGateway
from adapters.stripe.sync import sync
from ledger import Ledger, LedgerError
from projections.read_models import ReadModels
from projections.report import Category
from projections.tables import stripe_links
from tests.support.recording_stripe import RecordingStripe, Request, error, recording_stripe

FIXTURES = json.loads(
    (Path(__file__).parents[1] / "support" / "data" / "stripe_fixtures3.json").read_text()
)["resources"]
SINCE = datetime(2026, 11, 22, tzinfo=UTC)


def payment_intent(number: int, offline_id: str, created: int) -> dict[str, Any]:
    """Stripe's own fixture PaymentIntent, with our id, metadata and time."""
    item = copy.deepcopy(FIXTURES["payment_intent"])
    item.update(
        id=f"pi_3Qgw{number:016d}",
        created=created,
        metadata={"offline_id": offline_id},
        status="succeeded",
        amount=1250,
        amount_received=1250,
        last_payment_error=None,
    )
    return dict(item)


class Listing:
    """PaymentIntents to list, filtered by `created[gte]` as Stripe does; no Search."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items

    def __call__(self, request: Request) -> tuple[int, Any]:
        method, path, params = request.method, request.path, request.params
        if path == "/v1/payment_intents/search":
            return error(404, "invalid_request_error", "Unrecognized request URL")
        if (method, path) == ("GET", "/v1/payment_intents"):
            since = int(params.get("created[gte]", "0"))
            data = [i for i in self.items if i["created"] >= since]
            return 200, {"object": "list", "url": path, "has_more": False, "data": data}
        return error(404, "invalid_request_error", "Unrecognized request URL")


@pytest.fixture
def peer() -> Iterator[tuple[RecordingStripe, Listing]]:
    listing = Listing([payment_intent(1, "oid-1", int(SINCE.timestamp()) + 60)])
    with recording_stripe(listing) as recorded:
        yield recorded, listing


def gateway(url: str, key: str = "sk_test_" + "a" * 24) -> StripeGateway:
    return StripeGateway(
        StripeSettings(api_key=SecretStr(key), api_base=url, max_network_retries=0)
    )


def test_every_request_carries_the_pinned_api_version(
    peer: tuple[RecordingStripe, Listing],
) -> None:
    recorded, _ = peer
    list(gateway(recorded.url).payment_intents())
    assert recorded.requests
    assert {r.headers.get("Stripe-Version") for r in recorded.requests} == {API_VERSION}


def test_a_listing_since_a_moment_asks_stripe_to_filter_and_expands_the_latest_charge(
    peer: tuple[RecordingStripe, Listing],
) -> None:
    recorded, _ = peer
    assert [i["id"] for i in gateway(recorded.url).payment_intents(SINCE)] == [
        "pi_3Qgw0000000000000001"
    ]
    (request,) = recorded.made("GET", "/v1/payment_intents")
    assert request.params["created[gte]"] == str(int(SINCE.timestamp()))
    assert request.params["expand[0]"] == "data.latest_charge"


def test_lookups_without_search_list_once_per_run_then_only_what_is_new(
    peer: tuple[RecordingStripe, Listing],
) -> None:
    recorded, listing = peer
    stripe = gateway(recorded.url)
    assert [i["id"] for i in stripe.find_by_offline_id("oid-1", SINCE)] == [
        "pi_3Qgw0000000000000001"
    ]
    assert stripe.find_by_offline_id("oid-2", SINCE) == []
    # Created since (by this run, say): the next lookup lists only from the newest seen.
    newest = int(SINCE.timestamp()) + 120
    listing.items.append(payment_intent(2, "oid-2", newest))
    assert [i["id"] for i in stripe.find_by_offline_id("oid-2", SINCE)] == [
        "pi_3Qgw0000000000000002"
    ]
    windows = [r.params["created[gte]"] for r in recorded.made("GET", "/v1/payment_intents")]
    assert windows == [
        str(int(SINCE.timestamp())),
        str(int(SINCE.timestamp()) + 60),
        str(int(SINCE.timestamp()) + 60),
    ]
    assert len(recorded.made("GET", "/v1/payment_intents/search")) == 1  # tried once


@pytest.mark.parametrize(
    ("key", "livemode"),
    [("sk_test_" + "a" * 24, False), ("rk_live_" + "b" * 24, True), ("sk_live_" + "c" * 99, True)],
)
def test_a_key_says_its_mode(key: str, livemode: bool) -> None:
    assert gateway("http://127.0.0.1:9", key).mode.livemode is livemode


@pytest.mark.parametrize("key", ["pk_test_" + "a" * 24, "sk_tset_" + "a" * 24, "sk_test_", "x"])
def test_an_unknown_or_malformed_key_is_refused_before_any_call(key: str) -> None:
    with recording_stripe(Listing([])) as recorded:
        with pytest.raises(LedgerError) as refused:
            gateway(recorded.url, key)
        assert recorded.requests == []
    assert refused.value.code == "STRIPE_NOT_CONFIGURED"
    assert len(key) < 9 or key not in refused.value.message  # the key is never echoed


def test_a_key_that_reached_nothing_binds_no_mode(sqlite_url: str) -> None:
    with Ledger.open(sqlite_url) as ledger:
        unreachable = gateway("http://127.0.0.1:9", "sk_live_" + "d" * 24)
        with pytest.raises(LedgerError) as failed:
            sync(ledger, unreachable)
        assert failed.value.code == "STRIPE_UNREACHABLE"
        assert ledger.stripe_mode() is None
        # Test mode is still open to this ledger; what Stripe shows binds it.
        with recording_stripe(Listing([payment_intent(1, "oid-1", 1_795_000_000)])) as recorded:
            sync(ledger, gateway(recorded.url))
        assert ledger.stripe_mode() is False
        with pytest.raises(LedgerError) as mismatch:
            sync(ledger, unreachable)
        assert mismatch.value.code == "STRIPE_MODE_MISMATCH"


def test_sync_reads_the_corpus_of_every_api_version_alike(sqlite_url: str) -> None:
    """PaymentIntents as two API versions render them (a `charges` list before 2022-11-15,
    `latest_charge` since), served over HTTP: the offline-collected orphan of the older shape
    is seen, and charges and balance transactions are tied to their PaymentIntents."""
    corpus = Path(__file__).parents[1] / "support" / "stripe_corpus"
    items = [
        item
        for name in (
            "payment_intents_charges_list_2020-08-27.json",
            "payment_intents_latest_charge.json",
        )
        for item in json.loads((corpus / name).read_text())["data"]
    ]
    with Ledger.open(sqlite_url) as ledger, ReadModels(ledger) as read_models:
        with recording_stripe(Listing(items)) as recorded:
            summary = sync(ledger, gateway(recorded.url))
            assert sync(ledger, gateway(recorded.url)).observations_recorded == 0  # twice: nothing
        assert summary.payment_intents == len(items)
        orphans = [
            row
            for row in read_models.report(SINCE).rows
            if row.category is Category.ORPHAN_IN_STRIPE and row.offline_id is None
        ]
        assert [row.payment_intent_ids for row in orphans] == [("pi_3QcrpsP8000000001",)]
        with read_models.engine.connect() as conn:
            links: dict[str, str] = {
                r.object_id: r.target_id for r in conn.execute(select(stripe_links))
            }
        assert links["ch_3QcrpsP800000000a"] == "pi_3QcrpsP8000000001"  # the failed attempt
        assert links["txn_3QcrpsP9chg0000001"] == "pi_3QcrpsP9000000001"
