"""The command line starts at once: `--help` loads click and nothing of the ledger's
libraries, and a command loads only what it uses (a read of the ledger loads neither Stripe's
client, nor Alembic, nor the report's renderers, nor SQLAlchemy: the event store reads
through its own drivers, and settings are read without a settings library). What that costs
in seconds is measured in benchmarks/cli_start.py, not here."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import click
import pytest

from adapters.cli.group import COMMANDS, main

HEAVY = ("sqlalchemy", "pydantic", "eventsourcing", "stripe", "alembic", "jinja2", "rich")


def modules_loaded(*args: str, columns: str | None = None) -> set[str]:
    """The top-level packages loaded by running `offline-ledger ARGS` in a fresh interpreter
    (with COLUMNS set to `columns`, if given)."""
    return {name.split(".")[0] for name in every_module_loaded(*args, columns=columns)}


def every_module_loaded(*args: str, columns: str | None = None) -> set[str]:
    """Every module loaded by running `offline-ledger ARGS` in a fresh interpreter."""
    script = (
        "import json, sys\n"
        "from adapters.cli import main\n"
        "try:\n"
        f"    main({list(args)!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(json.dumps(sorted(sys.modules)), file=sys.stderr)\n"
    )
    env = {**os.environ, **({} if columns is None else {"COLUMNS": columns})}
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
        env=env,
    )
    return set(json.loads(done.stderr.strip().splitlines()[-1]))


def test_help_loads_none_of_the_ledgers_libraries() -> None:
    loaded = modules_loaded("--help")
    assert "click" in loaded
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


@pytest.mark.parametrize(
    "command", [("status",), ("history", "00000000-0000-4000-8000-000000000001")]
)
def test_a_read_loads_neither_stripe_nor_alembic_nor_sqlalchemy_nor_the_renderers(
    loaded_sqlite: str, command: tuple[str, ...]
) -> None:
    loaded = modules_loaded(*command, "--db", loaded_sqlite)
    assert "eventsourcing" in loaded  # it did read the ledger
    unused = {"stripe", "alembic", "jinja2", "requests", "projections", "sqlalchemy"}
    assert not loaded & (unused | {"pydantic_settings", "dotenv"}), loaded & unused


@pytest.mark.parametrize(
    "command", [("status",), ("history", "00000000-0000-4000-8000-000000000001")]
)
def test_an_answer_in_json_loads_no_console(loaded_sqlite: str, command: tuple[str, ...]) -> None:
    """rich draws tables and colours for people; JSON (an answer, or an error: the history
    of an unknown payment) is printed without it."""
    loaded = modules_loaded(*command, "--json", "--db", loaded_sqlite)
    assert "eventsourcing" in loaded  # it did read the ledger
    assert "rich" not in loaded


def test_status_loads_neither_pydantic_nor_rich(loaded_sqlite: str) -> None:
    """`status`, the command people run most often, builds no pydantic model (its views are
    dataclasses, its two settings read without pydantic) and, when its table fits the width,
    draws it without rich (`adapters.cli.text_table`)."""
    loaded = modules_loaded("status", "--db", loaded_sqlite, columns="200")
    assert "eventsourcing" in loaded  # it did read the ledger
    assert not loaded & {"pydantic", "pydantic_core", "rich"}, loaded


def test_status_loads_no_aggregate_but_locations_and_devices(loaded_sqlite: str) -> None:
    """`status` reads locations and devices: neither the other aggregates' event classes, nor
    the wire records' models and their handlers, nor the cipher (the ledger is not encrypted)
    are built, nor rich's progress display loaded; the other streams' topics resolve when met
    (`ledger.topics`)."""
    loaded = every_module_loaded("status", "--db", loaded_sqlite)
    assert {"ledger.location", "ledger.device"} <= loaded  # it did read them
    unused = {
        "ledger.payment",
        "ledger.reservation",
        "ledger.seal",
        "ledger.stripe_object",
        "ledger.idempotency",
        "ledger.cipher",
        "ledger.wire",
        "ledger.handlers",
        "ledger.reserving",
        "ledger.observations",
        "cryptography",
        "rich.progress",
    }
    assert not loaded & unused, loaded & unused


def test_every_listed_command_is_defined_by_the_module_named_for_it() -> None:
    context = click.Context(main)
    for name, (module, summary) in COMMANDS.items():
        command = main.get_command(context, name)
        assert command is not None and command.callback is not None, name
        assert command.callback.__module__ == module, name
        assert summary.endswith(".") and len(summary) < 60, name
