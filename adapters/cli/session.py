"""What a command opens: the ledger, its read models, the Stripe gateway. Each is imported
when opened, so a command loads only the libraries it uses (the CLI's start is most of a
short command's time)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from adapters.cli.errors import configured, fail_with
from adapters.ledger_settings import LedgerSettings
from ledger.errors import LedgerError

if TYPE_CHECKING:
    from adapters.stripe.gateway import StripeGateway
    from ledger.application import Ledger
    from projections.read_models import ReadModels


@contextmanager
def opened(
    database_url: str | None, as_json: bool = False, *, writes: bool = False
) -> Iterator[Ledger]:
    """The ledger at `database_url` (else the configured one). Only a command that `writes`
    creates a database that is not there; the others stop with DATABASE_NOT_FOUND."""
    from ledger.application import Ledger

    settings = configured(LedgerSettings.from_environ, "configuration", as_json)
    try:
        ledger = Ledger.open(
            database_url or settings.database_url,
            stripe_offline_max=settings.stripe_offline_max,
            create=writes,
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
def open_read_models(ledger: Ledger, report_work_mem_mb: int | None = None) -> Iterator[ReadModels]:
    """The read models of `ledger`; a report made through them may take `report_work_mem_mb`
    of PostgreSQL's memory (default `projections.reconciliation.REPORT_WORK_MEM_MB`)."""
    from projections.read_models import ReadModels

    with ReadModels(ledger, report_work_mem_mb) as models:
        yield models


@contextmanager
def stripe_session(
    database_url: str | None, as_json: bool
) -> Iterator[tuple[Ledger, StripeGateway]]:
    """The ledger and the gateway; the API key comes from STRIPE_API_KEY (or the file named by
    OFFLINE_LEDGER_STRIPE_CONFIG), never from the command line."""
    from adapters.stripe.gateway import StripeGateway
    from adapters.stripe.gateway import load_settings as load_stripe_settings

    stripe_settings = configured(load_stripe_settings, "Stripe configuration", as_json)
    try:
        gateway = StripeGateway(stripe_settings)
    except LedgerError as error:
        fail_with(error, as_json)
    with opened(database_url, as_json, writes=True) as ledger:
        yield ledger, gateway
