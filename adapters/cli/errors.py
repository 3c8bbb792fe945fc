"""How errors reach exit statuses: 0 success, 1 refused input, 2 usage, configuration or
connection errors."""

from __future__ import annotations

import json
import sys
from typing import NoReturn

from adapters.cli.output import stderr
from ledger import LedgerError
from ledger.errors import StorageError

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2


def fail_with(error: LedgerError, as_json: bool) -> NoReturn:
    status = EXIT_USAGE if isinstance(error, StorageError) else EXIT_REFUSED
    if as_json:
        print(json.dumps({"error": error.to_dict()}))
        sys.exit(status)
    fail(str(error), status, as_json)


def fail(message: str, status: int, as_json: bool) -> NoReturn:
    if as_json:
        print(json.dumps({"error": {"message": message}}))
    else:
        stderr.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    sys.exit(status)
