"""The `offline-ledger` command. Each command parses its input, makes one library call and
formats the answer; errors map to exit statuses here and only here:
0 success, 1 refused input (rejected records, unknown payment...), 2 usage, configuration or
connection errors. Command modules are imported when their command runs
(`adapters.cli.group.COMMANDS`).
"""

from adapters.cli.group import main

__all__ = ["main"]
