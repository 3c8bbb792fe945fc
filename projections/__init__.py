"""Read models built from the event log (SQL tables kept exactly once); one module a read model."""
