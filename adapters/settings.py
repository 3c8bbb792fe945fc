"""Configuration from the environment, in one place (prefix OFFLINE_LEDGER_).

Each setting is a field of a pydantic model, read from the variable named by the model's
prefix and the field's name (any case), or by the field's alias; a `dict` field's variable
holds JSON. They are read here in a few lines rather than through a settings library that
takes longer to import than a short command takes to run; the two settings every command that
opens the ledger reads are read without pydantic at all (`adapters.ledger_settings`).
"""

from __future__ import annotations

import json
import os
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from adapters.http import http_limits
from adapters.ledger_settings import SettingsError, offline_caps
from ledger.money import STRIPE_OFFLINE_MAX_DEFAULT
from ledger.storage import DEFAULT_DATABASE_URL


class EnvironmentSettings(BaseModel):
    """A model whose values come from environment variables named `PREFIX` + field name."""

    model_config = ConfigDict(extra="ignore")
    prefix: typing.ClassVar[str] = ""

    @classmethod
    def from_environ(
        cls, environ: Mapping[str, str] | None = None, file: Path | None = None
    ) -> Self:
        """The settings in `environ` (default os.environ), else in `file` (`.env` lines of
        NAME=value), else the defaults; SettingsError naming the variable of a bad value."""
        from_file: Mapping[str, str | None] = {}
        if file is not None:
            from dotenv import dotenv_values

            from_file = dotenv_values(file)
        found = {
            name.lower(): value
            for name, value in [
                *from_file.items(),
                *(os.environ if environ is None else environ).items(),
            ]
            if value is not None
        }
        values: dict[str, object] = {}
        variables: dict[str, str] = {}
        for name, field in cls.model_fields.items():
            key = field.validation_alias if isinstance(field.validation_alias, str) else name
            variable = key if key != name else cls.prefix + name
            variables[key] = variable.upper()
            text = found.get(variable.lower())
            if text is None:
                continue
            if typing.get_origin(field.annotation) is dict:
                try:
                    values[key] = json.loads(text)
                except ValueError as error:
                    raise SettingsError(f"{variable.upper()} is not JSON: {error}") from None
            else:
                values[key] = text
        try:
            return cls.model_validate(values)
        except ValidationError as error:
            # Named by its variable, as the operator set it; pydantic's message never quotes
            # the value (a secret, or a card number pasted in the wrong place).
            first = error.errors()[0]
            cause = first.get("ctx", {}).get("error")
            if isinstance(cause, SettingsError):  # already names its variable
                raise cause from None
            if not first["loc"]:
                raise SettingsError(first["msg"]) from None
            refused = str(first["loc"][0])
            raise SettingsError(f"{variables.get(refused, refused)}: {first['msg']}") from None


class Settings(EnvironmentSettings):
    prefix: typing.ClassVar[str] = "OFFLINE_LEDGER_"

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

    # None: the report's own default (`projections.reconciliation.REPORT_WORK_MEM_MB`, 512),
    # not imported here, which would load SQLAlchemy for every command reading settings.
    report_work_mem_mb: int | None = Field(
        default=None,
        ge=4,
        le=2_097_151,
        description="The memory (MB) each sort or hash of a report's CSV may take in the "
        "PostgreSQL server (default 512); every report running at once may take this much",
    )

    @field_validator("stripe_offline_max", mode="before")
    @classmethod
    def _offline_caps(cls, value: object) -> dict[str, int]:
        return offline_caps(value)


class StripeSettings(EnvironmentSettings):
    """Stripe's credentials and address: from the environment (or a `.env`-style file named
    by OFFLINE_LEDGER_STRIPE_CONFIG), never from the command line, never printed."""

    prefix: typing.ClassVar[str] = "STRIPE_"

    api_key: SecretStr | None = Field(default=None, description="sk_test_... or sk_live_...")
    api_base: str | None = Field(default=None, description="e.g. http://127.0.0.1:8420")
    timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    max_network_retries: int = Field(default=2, ge=0, le=10)
