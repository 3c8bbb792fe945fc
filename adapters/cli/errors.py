"""The one table from errors to exit statuses, and the one way a command stops on an error:
0 success; 1 refused input (rejected records, an unknown payment, a refused file, a bad
argument value); 2 usage, configuration or connection errors. No user input produces a
traceback."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, NoReturn, TypeVar

from adapters.cli.output import print_json, stderr
from adapters.ledger_settings import SettingsError
from ledger.errors import Code, LedgerError, StorageError
from ledger.pan import redacted

if TYPE_CHECKING:
    from adapters.stripe.problems import StripeFileError

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2

# Errors that no input can fix: the operator's configuration is missing or wrong, or a
# service cannot be reached.
_CONFIGURATION_CODES = frozenset(
    {
        Code.STRIPE_NOT_CONFIGURED,
        Code.CONFIG_FILE_NOT_FOUND,
        Code.STRIPE_UNREACHABLE,
        Code.INVALID_SEAL_KEY,
        Code.INVALID_ALERT_CONFIG,
    }
)

T = TypeVar("T")


def exit_status(error: LedgerError) -> int:
    """2 for the database (unreachable, not found, not migrated, a wrong cipher key:
    `StorageError`), for missing configuration and for Stripe out of reach; 1 for every
    other refusal."""
    if isinstance(error, StorageError) or error.code in _CONFIGURATION_CODES:
        return EXIT_USAGE
    return EXIT_REFUSED


def fail_with(error: LedgerError, as_json: bool) -> NoReturn:
    """Say the error (its code, and for a refused file every problem found) and exit with its
    status from `exit_status`."""
    from adapters.stripe.problems import StripeFileError  # here: only a failing command pays

    status = exit_status(error)
    if isinstance(error, StripeFileError):
        _say_file_refused(error, as_json)
        sys.exit(status)
    if as_json:
        print(json.dumps({"error": error.to_dict()}))
    else:
        _say(str(error))
    sys.exit(status)


def fail(message: str, status: int, as_json: bool, code: Code) -> NoReturn:
    """Stop with an error the command finds itself (a usage error, something that did not
    exist), with its code like every other error. The message is masked: it may quote a file
    name or a key read from a file, and one could hold a card number."""
    message = redacted(message)
    if as_json:
        print(json.dumps({"error": {"code": str(code), "message": message}}))
    else:
        _say(f"{code}: {message}")
    sys.exit(status)


def _say(text: str) -> None:
    from rich.markup import escape

    stderr.print(f"[bold red]error:[/] {escape(text)}", highlight=False, soft_wrap=True)


def configured(load: Callable[[], T], what: str, as_json: bool) -> T:
    """Settings read from the environment (or a file it names): a bad value (or a missing
    file) is a configuration error, exit status 2, naming the setting and never echoing its
    value."""
    try:
        return load()
    except LedgerError as error:
        fail_with(error, as_json)
    except SettingsError as error:  # a variable's value refused, named
        fail(f"{what} error: {error}; {_FIX_SETTING}", EXIT_USAGE, as_json, Code.INVALID_SETTING)


_FIX_SETTING = "fix that environment variable (or the line of the config file) or unset it"


def _say_file_refused(error: StripeFileError, as_json: bool) -> None:
    if as_json:
        print_json(
            {
                "error": error.to_dict(),
                "problem_count": error.problem_count,
                "problems": [problem.to_dict() for problem in error.problems],
            }
        )
        return
    _say(f"{error.code}: {error.message}")
    for problem in error.problems:
        stderr.print(
            f"  {problem.code}: {problem.message}", highlight=False, markup=False, soft_wrap=True
        )
