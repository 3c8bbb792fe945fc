"""Settings come from the environment (any case), a `dict` setting as JSON, Stripe's also from
the `.env`-style file named for them, the environment first."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.ledger_settings import LedgerSettings
from adapters.settings import Settings, SettingsError, StripeSettings
from projections.reconciliation import REPORT_WORK_MEM_MB


def test_settings_are_read_from_the_environment_in_any_case() -> None:
    settings = Settings.from_environ(
        {
            "OFFLINE_LEDGER_DATABASE_URL": "sqlite:///x.db",
            "offline_ledger_stripe_offline_max": '{"usd": 5000}',
            "STRIPE_WEBHOOK_SECRET": "whsec_1",
            "OFFLINE_LEDGER_HTTP_CONNECTIONS": "7",
            "UNRELATED": "1",
        }
    )
    assert settings.database_url == "sqlite:///x.db"
    assert settings.stripe_offline_max == {"usd": 5000}
    assert settings.stripe_webhook_secret is not None
    assert settings.stripe_webhook_secret.get_secret_value() == "whsec_1"
    assert settings.http_connections == 7
    assert Settings.from_environ({}).database_url == "sqlite:///offline-ledger.db"


def test_a_bad_value_is_refused_without_echoing_it() -> None:
    with pytest.raises(SettingsError) as not_json:
        Settings.from_environ({"OFFLINE_LEDGER_STRIPE_OFFLINE_MAX": "sk_live_secret"})
    assert "OFFLINE_LEDGER_STRIPE_OFFLINE_MAX" in str(not_json.value)
    assert "sk_live_secret" not in str(not_json.value)
    with pytest.raises(SettingsError, match=r"^OFFLINE_LEDGER_HTTP_CONNECTIONS: Input should be"):
        Settings.from_environ({"OFFLINE_LEDGER_HTTP_CONNECTIONS": "0"})


def test_stripe_settings_read_the_file_under_the_environment(tmp_path: Path) -> None:
    file = tmp_path / "stripe.env"
    file.write_text("STRIPE_API_KEY=sk_test_file\nSTRIPE_TIMEOUT_SECONDS=5\n# a comment\n")
    settings = StripeSettings.from_environ({"STRIPE_TIMEOUT_SECONDS": "9"}, file=file)
    assert settings.api_key is not None
    assert settings.api_key.get_secret_value() == "sk_test_file"
    assert settings.timeout_seconds == 9


@pytest.mark.parametrize("caps", ['{"USD": 5000}', '{"dollars": 5000}', '{"usd": -1}'])
def test_an_offline_cap_the_ledger_would_never_apply_is_refused(caps: str) -> None:
    environ = {"OFFLINE_LEDGER_STRIPE_OFFLINE_MAX": caps}
    with pytest.raises(SettingsError, match="OFFLINE_LEDGER_STRIPE_OFFLINE_MAX"):
        LedgerSettings.from_environ(environ)
    with pytest.raises(SettingsError, match=r"^OFFLINE_LEDGER_STRIPE_OFFLINE_MAX: "):
        Settings.from_environ(environ)


def test_the_report_memory_is_whole_megabytes_within_postgresql_bounds() -> None:
    assert Settings.from_environ({}).report_work_mem_mb is None  # the report's own, 512
    assert REPORT_WORK_MEM_MB == 512
    given = Settings.from_environ({"OFFLINE_LEDGER_REPORT_WORK_MEM_MB": "64"})
    assert given.report_work_mem_mb == 64
    for bad in ("2", "0.5", "512MB", "3000000"):
        with pytest.raises(SettingsError, match=r"^OFFLINE_LEDGER_REPORT_WORK_MEM_MB: ") as refused:
            Settings.from_environ({"OFFLINE_LEDGER_REPORT_WORK_MEM_MB": bad})
        assert bad not in str(refused.value)
