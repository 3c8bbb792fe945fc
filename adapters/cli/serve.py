"""`serve`: the HTTP API and Stripe's webhook receiver; `openapi`: the API's document."""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import ExitStack
from typing import Any

import click

from adapters.cli.errors import EXIT_USAGE, configured, fail, fail_with
from adapters.cli.group import main
from adapters.cli.options import db_option
from adapters.cli.session import opened
from adapters.settings import Settings
from ledger import LedgerError
from ledger.errors import Code

JSON_LINES = "adapters.http.logs.JsonLines"
WORKER_START_SECONDS = 60


@main.command()
@db_option
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on (0.0.0.0 for every interface, e.g. behind a proxy).",
)
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Server processes sharing the port (PostgreSQL only: SQLite serves one process).",
)
def serve(database_url: str | None, host: str, port: int, workers: int) -> None:
    """Serve the HTTP API under /v1 (API keys: `offline-ledger keys`), Stripe's webhooks at
    POST /stripe/webhook, GET /health and /ready for probes, and the OpenAPI document at
    /openapi.json.

    The webhook endpoint's signing secret (whsec_...) is read from the STRIPE_WEBHOOK_SECRET
    environment variable, never from the command line. Each event is verified, then applied
    once; Ctrl-C or SIGTERM stops the server after the requests in flight.
    """
    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    from adapters.http.metrics import MULTIPROCESS_DIR

    settings = configured(Settings.from_environ, "configuration", False)
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
    # Opened here once: the schema is created or checked, and a bad URL, an unreachable
    # database or a wrong cipher key stop the command before any server process starts.
    with opened(database_url, writes=True) as ledger:
        kind = ledger.config.kind
    if kind != "postgresql" and workers > 1:
        fail(
            f"--workers {workers}: a {kind} database serves one process; run several "
            "workers against PostgreSQL",
            EXIT_USAGE,
            False,
            Code.INVALID_VALUE,
        )
    # Each worker process reads its configuration from the environment.
    os.environ["OFFLINE_LEDGER_DATABASE_URL"] = database_url or settings.database_url
    cleanup = ExitStack()
    if workers > 1:  # each worker's counts in one folder, summed by whichever is scraped
        folder = cleanup.enter_context(tempfile.TemporaryDirectory(prefix="offline-ledger-"))
        os.environ[MULTIPROCESS_DIR] = folder
    # One JSON object per line (`adapters.http.logs`), uvicorn's own lines included.
    log_config: dict[str, Any] = json.loads(json.dumps(LOGGING_CONFIG))
    log_config["formatters"]["default"] = {"()": JSON_LINES}
    log_config["formatters"]["ledger"] = {"()": JSON_LINES}
    log_config["handlers"]["ledger"] = {
        "class": "logging.StreamHandler",
        "formatter": "ledger",
        "stream": "ext://sys.stderr",
    }
    log_config["loggers"]["offline_ledger"] = {"handlers": ["ledger"], "level": "INFO"}
    with cleanup:
        uvicorn.run(
            "adapters.http.app:from_environment",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="info",
            log_config=log_config,
            access_log=False,  # the app logs each request itself, card numbers masked
            server_header=False,
            http="adapters.http.app:ServedProtocol",
            # A worker that does not answer the supervisor's ping in time is killed as hung;
            # on a loaded machine its start (imports, opening the ledger) takes more than 5 s.
            timeout_worker_healthcheck=WORKER_START_SECONDS,
        )


@main.command()
def openapi() -> None:
    """Print the HTTP API's OpenAPI document (committed as docs/openapi.json)."""
    from adapters.http.app import api_app

    print(json.dumps(api_app().openapi(), indent=2, sort_keys=True))
