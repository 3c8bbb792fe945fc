"""Configuration from the environment, in one place (prefix OFFLINE_LEDGER_)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

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
