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
PYTHONDONTWRITEBYTECODE says: as on an installed ledger, the modules' bytecode is read, not
their source compiled again at every start (a quarter of a short command's instructions).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from adapters.trading_day.day import Day, day_records
from ledger import Ledger

CLI = Path(sys.executable).parent / "offline-ledger"
STATUS_IMPORTS = "import adapters.cli.ledger_commands, adapters.settings, ledger.application"


def timed(command: list[str], runs: int, cwd: Path) -> list[tuple[float, float]]:
    """(wall-clock, CPU) seconds of each run of `command` (its output thrown away), after
    one untimed run that leaves the bytecode of what it imported cached."""
    env = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}
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
        cases = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "offline-ledger --help": [str(CLI), "--help"],
            "offline-ledger status (small SQLite ledger)": [str(CLI), "status", "--db", url],
            "  of which: importing what status imports": [sys.executable, "-c", STATUS_IMPORTS],
        }
        before = os.getloadavg()
        results = {name: timed(command, args.runs, workdir) for name, command in cases.items()}
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
