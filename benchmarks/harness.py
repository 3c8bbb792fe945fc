"""What the benchmarks share: the console, the machine facts, the header, the run around a
benchmark's own `run`, and the results file in benchmarks/out/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict
from datetime import datetime
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg
from rich.console import Console

from benchmarks.stores import KINDS, POSTGRES, Databases

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

POSTGRES_URL_ENV = "OFFLINE_LEDGER_BENCH_POSTGRES_URL"
POSTGRES_URL_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"
OUT_DIR = Path(__file__).resolve().parent / "out"
REPO_DIR = Path(__file__).resolve().parent.parent

console = Console()

O = TypeVar("O", bound="DataclassInstance")  # noqa: E741 (a benchmark's Options)


def add_store_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--stores", default="sqlite,postgres", help="comma-separated: sqlite, postgres"
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(POSTGRES_URL_ENV) or POSTGRES_URL_DEFAULT,
        help=f"PostgreSQL server (env {POSTGRES_URL_ENV}); each measurement "
        "uses its own schema, dropped at the end",
    )


def parsed_stores(parser: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[str, ...]:
    stores = tuple(s.strip() for s in args.stores.split(",") if s.strip())
    unknown = [s for s in stores if s not in KINDS]
    if unknown or not stores:
        parser.error(f"--stores: unknown store {unknown}; use {', '.join(KINDS)}")
    return stores


def machine(stores: Sequence[str], postgres_url: str) -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu_model": _cpu_model(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "eventsourcing": version("eventsourcing"),
        "psycopg": version("psycopg"),
        "git_commit": git("rev-parse", "--short", "HEAD"),
        "git_dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        "load_average": os.getloadavg(),
    }
    if POSTGRES in stores:
        info["postgres"] = _postgres_settings(postgres_url)
    return info


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git(*args: str) -> str:
    try:
        done = subprocess.run(
            ["git", *args], cwd=REPO_DIR, capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return done.stdout.strip()


def _postgres_settings(url: str) -> dict[str, str]:
    settings: dict[str, str] = {}
    with psycopg.connect(url, connect_timeout=10) as conn:
        for name in ("server_version", "synchronous_commit", "fsync", "shared_buffers"):
            row = conn.execute(f"SHOW {name}").fetchone()
            settings[name] = str(row[0]) if row else "unknown"
    return settings


def print_header(
    name: str,
    info: dict[str, Any],
    command: str,
    workdir: Path,
    versions: Sequence[str] = (),
    notes: Sequence[str] = (),
) -> None:
    """`versions`: more entries of `info` named on the machine line; `notes`: lines after it."""
    console.rule(f"offline-ledger {name} benchmark")
    console.print(f"command: {command}", highlight=False, soft_wrap=True)
    console.print(f"cwd: {Path.cwd()}", highlight=False)
    more = "".join(f"{key} {info[key]}; " for key in versions)
    console.print(
        f"machine: {info['cpu_count']} cores ({info['cpus_usable']} usable), "
        f"{info['cpu_model']}, {info['memory_gib']} GiB; {info['platform']}; "
        f"Python {info['python']}; SQLite {info['sqlite']}; eventsourcing "
        f"{info['eventsourcing']}; {more}git {info['git_commit']}"
        f"{' (dirty)' if info['git_dirty'] else ''}",
        highlight=False,
    )
    if "postgres" in info:
        pg = info["postgres"]
        console.print(
            f"PostgreSQL {pg['server_version']}: synchronous_commit="
            f"{pg['synchronous_commit']}, fsync={pg['fsync']}, "
            f"shared_buffers={pg['shared_buffers']}",
            highlight=False,
        )
    if "workdir_filesystem" in info:
        console.print(f"ledgers under {workdir} ({info['workdir_filesystem']})", highlight=False)
    load = ", ".join(f"{x:.2f}" for x in info["load_average"])
    console.print(
        f"load average at start: {load} (other work on the machine makes figures noisy)",
        highlight=False,
    )
    for note in notes:
        console.print(note, highlight=False)


def print_load(
    before: Sequence[float], after: Sequence[float], label: str = "load average:"
) -> None:
    console.print(
        f"{label} {', '.join(f'{x:.2f}' for x in before)} before, "
        f"{', '.join(f'{x:.2f}' for x in after)} after",
        highlight=False,
    )


def print_profiles(profiles: Iterable[tuple[str, str, str]], lines_shown: int) -> None:
    """Each (store, what, cProfile text): a title, then the text."""
    for store, what, profile in profiles:
        console.print()
        console.print(
            f"cProfile of the {store} {what}, top {lines_shown} by "
            "tottime, then by cumulative time:",
            highlight=False,
        )
        print(profile, flush=True)


def write_results(results: dict[str, Any], prefix: str) -> Path:
    OUT_DIR.mkdir(exist_ok=True)
    path = OUT_DIR / f"{prefix}-{datetime.now():%Y%m%dT%H%M%S}.json"
    path.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    return path


def main(
    name: str,
    argv: list[str],
    options: O,
    run: Callable[[O, Path, Databases], dict[str, Any]],
    *,
    stores: Sequence[str] = (),
    postgres_url: str = "",
    more_facts: Callable[[Path], dict[str, Any]] | None = None,
    versions: Sequence[str] = (),
    notes: Sequence[str] = (),
    results_prefix: str | None = None,
) -> None:
    """The run of `python -m benchmarks.<name> <argv>`: machine facts, header, `run` in a
    temporary folder with fresh databases (all dropped after), then the results in
    benchmarks/out/<results_prefix, by default results-<name>>-<time>.json.

    `more_facts(workdir)` adds to the machine facts; `versions` and `notes`: see print_header.
    """
    if not console.is_terminal:
        console.width = max(console.width, 160)
    command = shlex.join([sys.executable, "-m", f"benchmarks.{name}", *argv])
    with tempfile.TemporaryDirectory(prefix="offline-ledger-bench-") as tmp:
        workdir = Path(tmp)
        try:
            info = machine(stores, postgres_url)
        except psycopg.OperationalError as error:
            console.print(f"[red]cannot reach PostgreSQL at {postgres_url}[/]: {error}")
            sys.exit(2)
        if more_facts is not None:
            info.update(more_facts(workdir))
        print_header(name, info, command, workdir, versions, notes)
        started = datetime.now()
        databases = Databases(workdir, postgres_url)
        try:
            results = run(options, workdir, databases)
        finally:
            databases.drop_all()
    results = {
        "command": command,
        "cwd": str(Path.cwd()),
        "started": started.isoformat(),
        "finished": datetime.now().isoformat(),
        "machine": info,
        # The ledger may change under a long run in a shared checkout: compare.
        "git_commit_at_end": git("rev-parse", "--short", "HEAD"),
        "options": asdict(options),
        **results,
    }
    if results["git_commit_at_end"] != info["git_commit"]:
        console.print(
            f"[yellow]warning:[/] the checkout moved from {info['git_commit']} to "
            f"{results['git_commit_at_end']} during the run",
            highlight=False,
        )
    path = write_results(results, results_prefix or f"results-{name}")
    console.print(f"\nresults written to {path}", highlight=False)
