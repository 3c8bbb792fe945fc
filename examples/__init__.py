"""Examples of offline-ledger in use (data files, and the POS backend in pos_backend/)."""
