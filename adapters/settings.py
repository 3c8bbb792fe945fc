"""Configuration from the environment, in one place (prefix OFFLINE_LEDGER_)."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from adapters.http import http_limits
from ledger.money import STRIPE_OFFLINE_MAX_DEFAULT
from ledger.storage import DEFAULT_DATABASE_URL


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OFFLINE_LEDGER_", extra="ignore")

    database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        description="sqlite:///path.db (default ./offline-ledger.db) or postgresql://...",
    )
    stripe_offline_max: dict[str, int] = Field(
        default_factory=lambda: dict(STRIPE_OFFLINE_MAX_DEFAULT),
        description='Stripe\'s per-payment offline cap per currency, JSON: {"usd": 1000000}',
    )
    # Stripe's own name for it, without the prefix; only ever read from the environment.
    stripe_webhook_secret: SecretStr | None = Field(
        default=None,
        validation_alias="STRIPE_WEBHOOK_SECRET",
        description="The webhook endpoint's signing secret (whsec_...), for `serve`",
    )
    alert_secret: SecretStr | None = Field(
        default=None,
        description="The secret shared with the alerts' webhook receiver, for `watch`",
    )
    webhook_database_wait_seconds: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="How long `serve` waits for the database before answering 503",
    )
    http_header_seconds: float = Field(
        default=http_limits.HEADER_SECONDS,
        gt=0,
        le=600,
        description="How long `serve` waits for a request's headers before answering 408",
    )
    http_body_seconds: float = Field(
        default=http_limits.BODY_SECONDS,
        gt=0,
        le=600,
        description="How long `serve` waits for a request's body before answering 408",
    )
    http_connections: int = Field(
        default=http_limits.CONNECTIONS,
        ge=1,
        le=10_000,
        description="How many connections `serve` holds at once; the next is answered 503",
    )
    api_rate_per_second: float = Field(
        default=100.0,
        gt=0,
        le=100_000,
        description="Requests per second one API key may make to one `serve` process",
    )
    api_rate_burst: int = Field(
        default=200,
        ge=1,
        le=1_000_000,
        description="Requests one API key may make at once before its rate applies",
    )


class StripeSettings(BaseSettings):
    """Stripe's credentials and address: from the environment (or a `.env`-style file named
    by OFFLINE_LEDGER_STRIPE_CONFIG), never from the command line, never printed."""

    model_config = SettingsConfigDict(env_prefix="STRIPE_", extra="ignore")

    api_key: SecretStr | None = Field(default=None, description="sk_test_... or sk_live_...")
    api_base: str | None = Field(default=None, description="e.g. http://127.0.0.1:8420")
    timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    max_network_retries: int = Field(default=2, ge=0, le=10)
