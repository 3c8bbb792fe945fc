"""`serve`: the webhook receiver."""

from __future__ import annotations

import click

from adapters.cli.errors import configured, fail_with
from adapters.cli.group import main
from adapters.cli.options import db_option
from adapters.cli.session import opened
from adapters.settings import Settings
from ledger import LedgerError
from ledger.errors import Code


@main.command()
@db_option
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on (0.0.0.0 for every interface, e.g. behind a proxy).",
)
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
def serve(database_url: str | None, host: str, port: int) -> None:
    """Receive Stripe's webhooks at POST /stripe/webhook (GET /health for probes).

    The endpoint's signing secret (whsec_...) is read from the STRIPE_WEBHOOK_SECRET
    environment variable, never from the command line. Each event is verified, then applied
    once; Ctrl-C or SIGTERM stops the server after the requests in flight.
    """
    import logging

    import uvicorn

    from adapters.http.bounded_http import bounded_protocol
    from adapters.http.http_limits import HttpLimits
    from adapters.http.webhooks import create_app

    settings = configured(Settings, "configuration", False)
    secret = settings.stripe_webhook_secret
    if secret is None or not secret.get_secret_value().strip():
        fail_with(
            LedgerError(
                Code.STRIPE_NOT_CONFIGURED,
                "STRIPE_WEBHOOK_SECRET is not set: export the webhook endpoint's signing "
                "secret (whsec_..., shown in Stripe's Dashboard under Developers > Webhooks)",
            ),
            False,
        )
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(name)s: %(message)s")
    limits = HttpLimits(
        header_seconds=settings.http_header_seconds,
        body_seconds=settings.http_body_seconds,
        connections=settings.http_connections,
    )
    with opened(database_url, writes=True) as ledger:
        app = create_app(
            ledger,
            secret.get_secret_value(),
            database_wait_seconds=settings.webhook_database_wait_seconds,
            limits=limits,
        )
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_level="info",
            server_header=False,
            http=bounded_protocol(limits),
        )
