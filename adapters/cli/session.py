"""What a command opens: the ledger, its read models, the Stripe gateway."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from adapters.cli.errors import configured, fail_with
from adapters.settings import Settings
from adapters.stripe.gateway import StripeGateway
from adapters.stripe.gateway import load_settings as load_stripe_settings
from ledger import Ledger, LedgerError
from projections.read_models import ReadModels


@contextmanager
def opened(database_url: str | None, as_json: bool = False) -> Iterator[Ledger]:
    settings = configured(Settings, "configuration", as_json)
    try:
        ledger = Ledger.open(
            database_url or settings.database_url, stripe_offline_max=settings.stripe_offline_max
        )
    except LedgerError as error:
        fail_with(error, as_json)
    try:
        yield ledger
    except LedgerError as error:
        fail_with(error, as_json)
    finally:
        ledger.close()


@contextmanager
def open_read_models(ledger: Ledger) -> Iterator[ReadModels]:
    with ReadModels(ledger) as models:
        yield models


@contextmanager
def stripe_session(
    database_url: str | None, as_json: bool
) -> Iterator[tuple[Ledger, StripeGateway]]:
    """The ledger and the gateway; the API key comes from STRIPE_API_KEY (or the file named by
    OFFLINE_LEDGER_STRIPE_CONFIG), never from the command line."""
    stripe_settings = configured(load_stripe_settings, "Stripe configuration", as_json)
    try:
        gateway = StripeGateway(stripe_settings)
    except LedgerError as error:
        fail_with(error, as_json)
    with opened(database_url, as_json) as ledger:
        yield ledger, gateway
