"""Benchmarks of offline-ledger: `python -m benchmarks.ingest --help`.

`generate` builds a realistic trading day of wire records (deterministic for a seed); `ingest`
measures the ledger's ingest against a raw batched insert and naive library use, on SQLite and
PostgreSQL, in one run on one machine. The benchmark measures and prints; it asserts nothing
about speed.
"""
