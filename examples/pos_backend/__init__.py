"""An example POS backend on the offline-ledger library (see README.md here)."""
