"""The two settings every command that opens the ledger reads: where the database is, and
Stripe's per-payment offline cap. Read without pydantic: a short command (`status`) would
otherwise spend more of its time building the settings' model than reading the ledger. The
other settings (`adapters.settings`) are read by the commands that use them, which then
refuse a bad value of those too.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from ledger.money import STRIPE_OFFLINE_MAX_DEFAULT, cap_problem
from ledger.storage import DEFAULT_DATABASE_URL

PREFIX = "OFFLINE_LEDGER_"


class SettingsError(ValueError):
    """A variable that does not hold what it should (its value is never quoted)."""


@dataclass(frozen=True)
class LedgerSettings:
    database_url: str = DEFAULT_DATABASE_URL
    stripe_offline_max: dict[str, int] = field(
        default_factory=lambda: dict(STRIPE_OFFLINE_MAX_DEFAULT)
    )

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> LedgerSettings:
        """The settings in `environ` (default os.environ; names in any case), else the
        defaults."""
        wanted = {PREFIX + "DATABASE_URL", PREFIX + "STRIPE_OFFLINE_MAX"}
        found = {
            name.upper(): value
            for name, value in (os.environ if environ is None else environ).items()
            if name.upper() in wanted
        }
        database_url = found.get(PREFIX + "DATABASE_URL")
        cap = found.get(PREFIX + "STRIPE_OFFLINE_MAX")
        return cls(
            database_url=DEFAULT_DATABASE_URL if database_url is None else database_url,
            stripe_offline_max=(dict(STRIPE_OFFLINE_MAX_DEFAULT) if cap is None else _amounts(cap)),
        )


def _amounts(text: str) -> dict[str, int]:
    """`{"usd": 1000000}`: minor units per currency."""
    variable = PREFIX + "STRIPE_OFFLINE_MAX"
    try:
        value = json.loads(text)
    except ValueError as error:
        raise SettingsError(f"{variable} is not JSON: {error}") from None
    return offline_caps(value)


def offline_caps(value: object) -> dict[str, int]:
    """`value` if it is minor units per currency, else SettingsError naming the variable."""
    problem = cap_problem(value)
    if problem is not None:
        raise SettingsError(f"{PREFIX}STRIPE_OFFLINE_MAX: {problem}")
    assert isinstance(value, dict)  # narrowed by cap_problem
    return value
