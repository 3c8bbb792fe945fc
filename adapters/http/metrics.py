"""`GET /metrics` in Prometheus' text format (the `prometheus-client` library).

Counted by each server process as it answers: requests by route, method and status, their
latency, and the records the API took by outcome (recorded, repeat, refused) and code. With
several worker processes (`serve --workers N` sets PROMETHEUS_MULTIPROC_DIR) every process
writes its counts to that folder and a scrape reaching any of them sums them all. Read from the
database at each scrape, so the same from every process: the amount and count stored offline
per location and currency, the projection lag (events no read model has applied yet) and
whether a long catch-up's fold is still unfinished.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from projections.read_models import ReadModels

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST

REQUESTS = Counter(
    "offline_ledger_http_requests",
    "HTTP requests answered, by route, method and status.",
    ["route", "method", "status"],
)
LATENCY = Histogram(
    "offline_ledger_http_request_seconds", "Time to answer a request, by route.", ["route"]
)
RECORDS = Counter(
    "offline_ledger_records",
    "Records the API took, by outcome (recorded, repeat, refused) and refusal code.",
    ["outcome", "code"],
)


class LedgerCollector(Collector):
    """What the ledger holds, read at each scrape."""

    def __init__(self, read_models: ReadModels) -> None:
        self.read_models = read_models

    def collect(self) -> Iterator[Metric]:
        lag = GaugeMetricFamily(
            "offline_ledger_projection_lag_events",
            "Events in the log that some read model has not applied yet.",
        )
        lag.add_metric([], self.read_models.lag())
        settling = GaugeMetricFamily(
            "offline_ledger_projection_settling",
            "1 while a long catch-up's fold is unfinished: the lag is 0, reads wait for it.",
        )
        settling.add_metric([], int(self.read_models.settling()))
        amount = GaugeMetricFamily(
            "offline_ledger_stored_amount_minor",
            "Amount stored offline on readers, in minor units, per location and currency.",
            labels=["location_id", "currency"],
        )
        count = GaugeMetricFamily(
            "offline_ledger_stored_payments",
            "Payments stored offline on readers, per location and currency.",
            labels=["location_id", "currency"],
        )
        totals: dict[tuple[str, str], tuple[int, int]] = {}
        for row in self.read_models.stored_totals():
            held = totals.get((row.location_id, row.currency), (0, 0))
            totals[(row.location_id, row.currency)] = (held[0] + row.amount, held[1] + row.count)
        for (location_id, currency), (minor, payments) in sorted(totals.items()):
            amount.add_metric([location_id, currency], minor)
            count.add_metric([location_id, currency], payments)
        yield from (lag, settling, amount, count)


def exposition(read_models: ReadModels) -> bytes:
    """Every metric: this process' (or every worker's) counts, then the ledger's gauges."""
    if os.environ.get(MULTIPROCESS_DIR):
        counted = CollectorRegistry()
        multiprocess.MultiProcessCollector(counted)  # type: ignore[no-untyped-call]
    else:
        counted = REGISTRY
    ledger = CollectorRegistry()
    ledger.register(LedgerCollector(read_models))
    return generate_latest(counted) + generate_latest(ledger)
