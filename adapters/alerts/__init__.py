"""Alerts on money at risk: conditions evaluated from the read models (`conditions`), raised
once each while they hold (`outbox`), delivered to a signed outgoing webhook (`webhook`), run
by `offline-ledger watch` (`watch`) from a small TOML file (`config`)."""
