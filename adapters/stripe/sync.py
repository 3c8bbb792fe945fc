"""Reading Stripe's PaymentIntents into the ledger (sync), and choosing the authorizations due
for capture.

Sync lists PaymentIntents page by page and gives each page to the Stripe service
(`ledger.stripe_service`), which records each as an observation and, where its
`metadata.offline_id` names a ledger payment, the facts its state implies (forwarded, captured,
declined, canceled); running it twice records nothing new. Captures are the service's too: this
module only picks which authorizations are due, from the read models.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from adapters.stripe.gateway import StripeGateway
from adapters.stripe.port import observed, stripe_service
from ledger import Ledger
from ledger.batches import iter_batches
from projections.payments import AuthorizedPayment
from projections.reconciliation import Thresholds

SYNC_PAGE = 100


@dataclass
class SyncSummary:
    payment_intents: int = 0
    observations_recorded: int = 0
    facts_recorded: int = 0
    facts_refused: int = 0  # Stripe disagrees with the ledger: the report shows it


def sync(
    ledger: Ledger,
    gateway: StripeGateway,
    since: datetime | None = None,
    progress: Callable[[int], None] | None = None,
) -> SyncSummary:
    """Hand each page of PaymentIntents to the Stripe service, which records them and the facts
    they imply (a fact the ledger refuses is counted: the report shows it)."""
    service = stripe_service(ledger, gateway)
    service.check_mode()
    summary = SyncSummary()
    for page in iter_batches(gateway.payment_intents(since), SYNC_PAGE):
        recorded = service.observe([observed(item) for item in page])
        summary.observations_recorded += recorded.observations_recorded
        summary.facts_recorded += len(recorded.facts)
        summary.facts_refused += len(recorded.refused)
        summary.payment_intents += len(page)
        if progress is not None:
            progress(len(page))
    return summary


def due(
    authorized: list[AuthorizedPayment],
    thresholds: Thresholds,
    now: datetime,
    within: timedelta | None,
) -> list[AuthorizedPayment]:
    """The authorizations to capture now: all of them, or those whose brand's window ends
    within `within`, the earliest deadline first."""

    def deadline(payment: AuthorizedPayment) -> datetime:
        return (
            thresholds.capture_deadline(
                payment.forwarded_at.replace(tzinfo=UTC), payment.card_brand
            )
            + thresholds.capture_warning
        )

    chosen = [p for p in authorized if within is None or deadline(p) <= now + within]
    return sorted(chosen, key=deadline)
