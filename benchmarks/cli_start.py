"""How long the command line takes to answer the shortest questions.

    python -m benchmarks.cli_start [--runs N] [--payments N]

Times, as real subprocesses: `python -c pass` (the interpreter's own start, the floor),
`offline-ledger --help` and `offline-ledger status` on a small SQLite ledger, and, to show
where `status` spends its time, a `python -c` that only imports what `status` imports. Prints
the best and the median of N runs of each, their ratio to `python -c pass`, and the best CPU
time (user + system) of each: on a machine loaded by other work the wall-clock figures grow
several times, the CPU times far less. Nothing here asserts a speed; the load average is
printed with the figures.

Each command runs once, untimed, before its timed runs, with bytecode caching on whatever
PYTHONDONTWRITEBYTECODE says: as on an installed ledger (pip compiles a wheel's modules when it
installs them), the modules' bytecode is read, not their source compiled again at every start.
An editable install run with PYTHONDONTWRITEBYTECODE=1 never caches the ledger's own modules:
`status` is timed that way too, from a copy of the ledger's packages without bytecode put
first on PYTHONPATH (the libraries' and the standard library's bytecode still read).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from adapters.trading_day.day import Day, day_records
from ledger import Ledger

CLI = Path(sys.executable).parent / "offline-ledger"
STATUS_IMPORTS = "import adapters.cli.ledger_commands, adapters.ledger_settings, ledger.application"
PACKAGES = ("ledger", "adapters", "projections", "migrations")  # the ledger's own modules


def sources_without_bytecode(into: Path) -> dict[str, str]:
    """A copy of the ledger's packages in `into`, without bytecode, and the environment that
    imports them from there and never writes their bytecode."""
    root = Path(__file__).resolve().parent.parent
    for package in PACKAGES:
        shutil.copytree(
            root / package, into / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    return {**os.environ, "PYTHONPATH": str(into), "PYTHONDONTWRITEBYTECODE": "1"}


def timed(
    command: list[str], runs: int, cwd: Path, env: dict[str, str] | None = None
) -> list[tuple[float, float]]:
    """(wall-clock, CPU) seconds of each run of `command` (its output thrown away), after
    one untimed run that leaves the bytecode of what it imported cached (unless `env` says
    otherwise)."""
    if env is None:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run(command, cwd=cwd, capture_output=True, check=True, env=env)
    seconds = []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run(command, cwd=cwd, capture_output=True, check=True, env=env)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
        seconds.append((wall, cpu))
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--payments", type=int, default=100, help="in the small ledger's day")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ol-cli-start-") as folder:
        workdir = Path(folder)
        url = f"sqlite:///{workdir / 'small.db'}"
        with Ledger.open(url) as ledger:
            ledger.record_many(list(day_records(Day(payments=args.payments)))[:4_000])
        status = [str(CLI), "status", "--db", url]
        uncached = sources_without_bytecode(workdir / "sources")
        cases: dict[str, tuple[list[str], dict[str, str] | None]] = {
            "python -c pass": ([sys.executable, "-c", "pass"], None),
            "offline-ledger --help": ([str(CLI), "--help"], None),
            "offline-ledger status (small SQLite ledger)": (status, None),
            "  its own modules compiled at start": (status, uncached),
            "  of which: importing what status imports": (
                [sys.executable, "-c", STATUS_IMPORTS],
                None,
            ),
            "offline-ledger status --json": ([*status, "--json"], None),
        }
        before = os.getloadavg()
        results = {
            name: timed(command, args.runs, workdir, env) for name, (command, env) in cases.items()
        }
        after = os.getloadavg()
    floor = min(wall for wall, _ in results["python -c pass"])
    print(
        f"{args.runs} runs each; best and median wall-clock seconds, x = best / python's best; "
        "best CPU seconds"
    )
    for name, seconds in results.items():
        walls = [wall for wall, _ in seconds]
        best, median = min(walls), statistics.median(walls)
        cpu = min(cpu for _, cpu in seconds)
        print(
            f"  {name:<46} {best:6.3f} s  {median:6.3f} s  {best / floor:5.1f} x  {cpu:6.3f} s CPU"
        )
    print(
        "load average: "
        + ", ".join(f"{x:.2f}" for x in before)
        + " before, "
        + ", ".join(f"{x:.2f}" for x in after)
        + " after"
    )


if __name__ == "__main__":
    main()
