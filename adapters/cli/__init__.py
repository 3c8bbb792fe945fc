"""The `offline-ledger` command. Each command parses its input, makes one library call and
formats the answer; errors map to exit statuses here and only here:
0 success, 1 refused input (rejected records, unknown payment...), 2 usage, configuration or
connection errors.
"""

# Importing a command module registers its commands on `main`.
from adapters.cli import (  # noqa: F401
    audit,
    demo,
    keys,
    ledger_commands,
    migrate,
    report,
    serve,
    stripe,
)
from adapters.cli.group import main

__all__ = ["main"]
