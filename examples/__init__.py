"""Examples of offline-ledger in use: data files, and the HTTP API called with curl (curl/)."""
