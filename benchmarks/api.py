"""The HTTP API against the library it serves, on PostgreSQL.

    python -m benchmarks.api [--records N] [--batch N] [--concurrency 1,8,32] [--workers 1,2]
                             [--postgres-url URL]

For each worker count, `offline-ledger serve --workers W` on loopback over a fresh schema;
at each concurrency, N `payment.created` records, one `POST /v1/records` each, from that many
client threads (one kept-alive connection each): records/s and the p50/p99 latency of one
request. Then `POST /v1/records/batch` in batches. In the same run, on a fresh schema of the
same server, the library called directly: `Ledger.record` one at a time (p50/p99) and
`Ledger.record_many` in the same batches. The targets: a single record's p50 at most 2x the
library's, the batch endpoint at least 0.7x `record_many`'s records/s.

Beside each latency, the CPU time per record: of the server's processes (from /proc) for the
API, of the calling thread for the library. On a machine that other work keeps busy the
latencies swell with waiting for a core, the CPU times much less: their ratio is what says
what the API costs there.

Nothing here asserts a speed; the load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from adapters.http.api_keys import KeyStore, Role
from benchmarks.harness import POSTGRES_URL_DEFAULT, POSTGRES_URL_ENV, REPO_DIR
from ledger import Ledger

CLI = REPO_DIR / ".venv" / "bin" / "offline-ledger"
LOCATION, DEVICES = "tml_bench", [f"tmr_{n}" for n in range(8)]
NOW = datetime.now(UTC).replace(microsecond=0).isoformat()


@dataclass(frozen=True)
class Figures:
    what: str
    records: int
    seconds: float
    latencies: list[float]  # seconds per request (empty for batches)
    cpu_seconds: float | None = None  # the server's (or the library's thread's) CPU time

    @property
    def per_second(self) -> float:
        return self.records / self.seconds

    def percentile(self, p: int) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] * 1000

    @property
    def cpu_per_record(self) -> float | None:
        """Milliseconds of CPU per record: unlike the latency, barely moved by the load of
        other processes on the machine."""
        return None if self.cpu_seconds is None else self.cpu_seconds / self.records * 1000

    def line(self) -> str:
        latency = (
            f"p50 {self.percentile(50):7.2f} ms  p99 {self.percentile(99):7.2f} ms"
            if self.latencies
            else ""
        )
        cpu = "" if self.cpu_per_record is None else f"  CPU {self.cpu_per_record:5.2f} ms/record"
        return f"{self.what:<42} {self.per_second:9.0f} records/s  {latency}{cpu}"


def created() -> dict[str, Any]:
    device = DEVICES[uuid.uuid4().int % len(DEVICES)]
    return {
        "type": "payment.created",
        "occurred_at": NOW,
        "offline_id": str(uuid.uuid4()),
        "device_id": device,
        "location_id": LOCATION,
        "amount": 1250,
        "currency": "usd",
    }


def setup() -> list[dict[str, Any]]:
    configure = {
        "type": "location.configured",
        "occurred_at": NOW,
        "location_id": LOCATION,
        "offline_enabled": True,
        "limits": {"stored_amount_max": {"usd": 10**12}},
    }
    readers = [
        {
            "type": "device.connected_online",
            "occurred_at": NOW,
            "device_id": device,
            "location_id": LOCATION,
        }
        for device in DEVICES
    ]
    return [configure, *readers]


@contextmanager
def schema(base: str) -> Iterator[str]:
    name = f"bench_api_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
    try:
        yield f"{base}{'&' if '?' in base else '?'}schema={name}"
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{name}" CASCADE')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def served(url: str, workers: int) -> Iterator[tuple[int, str, int]]:
    """`serve --workers` on `url` (stopped at the end), its port, an admin key and its
    process id."""
    with Ledger.open(url) as ledger:
        ledger.record_many(setup())
        store = KeyStore(ledger.config)
        token = store.create("benchmark", Role.ADMIN, ())[1]
        store.close()
    port = free_port()
    environment = {
        **os.environ,
        "STRIPE_WEBHOOK_SECRET": "whsec_benchmark",
        "OFFLINE_LEDGER_API_RATE_PER_SECOND": "100000",
        "OFFLINE_LEDGER_API_RATE_BURST": "100000",
    }
    command = [str(CLI), "serve", "--db", url, "--port", str(port), "--workers", str(workers)]
    process = subprocess.Popen(
        command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        while True:
            try:
                if Client(port, token).call("GET", "/ready")[0] == 200:
                    break
            except OSError:
                time.sleep(0.2)
        yield port, token, process.pid
    finally:
        process.terminate()
        process.wait(timeout=60)


def cpu_seconds(pid: int) -> float | None:
    """User and system CPU time of a process and of its children (the workers of `serve
    --workers`), from /proc; None where there is no /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    total, found = 0, False
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        if stat.parent.name == str(pid) or fields[1] == str(pid):  # itself or a child
            total += int(fields[11]) + int(fields[12])  # utime, stime
            found = True
    return total / ticks if found else None


class Client:
    """One kept-alive connection, as a POS backend's HTTP client holds one."""

    def __init__(self, port: int, token: str) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        data = None if body is None else json.dumps(body).encode()
        self.connection.request(method, path, body=data, headers=self.headers)
        response = self.connection.getresponse()
        return response.status, response.read()


def timed(
    what: str,
    count: int,
    concurrency: int,
    make: Callable[[], Callable[[], None]],
    cpu: Callable[[], float | None],
) -> Figures:
    """`count` calls from `concurrency` threads, each with its own `make()` (a client), and
    the CPU time `cpu` counts meanwhile."""
    latencies: list[float] = []
    lock = threading.Lock()
    per_thread = [count // concurrency + (i < count % concurrency) for i in range(concurrency)]

    def worker(calls: int) -> None:
        call = make()
        mine = []
        for _ in range(calls):
            started = time.perf_counter()
            call()
            mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)

    started, cpu_started = time.perf_counter(), cpu()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(worker, per_thread))
    seconds, cpu_ended = time.perf_counter() - started, cpu()
    used = None if cpu_started is None or cpu_ended is None else cpu_ended - cpu_started
    return Figures(what, count, seconds, latencies, used)


def over_http(
    port: int, token: str, pid: int, options: argparse.Namespace, workers: int
) -> list[Figures]:
    figures = []
    for concurrency in options.concurrency:

        def make() -> Callable[[], None]:
            client = Client(port, token)

            def one() -> None:
                status, answer = client.call("POST", "/v1/records", created())
                assert status == 200, answer

            return one

        what = f"API, {workers} worker(s), concurrency {concurrency}"
        figures.append(timed(what, options.records, concurrency, make, lambda: cpu_seconds(pid)))
        print(figures[-1].line(), flush=True)
    client = Client(port, token)

    def send(records: list[dict[str, Any]]) -> None:
        status, answer = client.call("POST", "/v1/records/batch", {"records": records})
        assert status == 200 and json.loads(answer)["recorded"] == len(records), answer

    figures.append(batched(f"API batch of {options.batch}, {workers} worker(s)", options, send))
    return figures


def batched(
    what: str, options: argparse.Namespace, send: Callable[[list[dict[str, Any]]], object]
) -> Figures:
    """`options.batches` batches of `options.batch` new records, each given to `send`."""
    started = time.perf_counter()
    for _ in range(options.batches):
        send([created() for _ in range(options.batch)])
    done = Figures(what, options.batch * options.batches, time.perf_counter() - started, [])
    print(done.line(), flush=True)
    return done


def library(url: str, options: argparse.Namespace) -> list[Figures]:
    with Ledger.open(url) as ledger:
        ledger.record_many(setup())

        def make() -> Callable[[], None]:
            def one() -> None:
                assert ledger.record(created()).recorded

            return one

        # The one thread calling the library: its CPU time is the process' meanwhile.
        what = "library Ledger.record, one thread"
        figures = [timed(what, options.records, 1, make, time.process_time)]
        print(figures[-1].line(), flush=True)
        figures.append(
            batched(f"library record_many, batches of {options.batch}", options, ledger.record_many)
        )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.api", description=__doc__)
    parser.add_argument("--records", type=int, default=400, help="single records per level")
    parser.add_argument("--batch", type=int, default=500, help="records per batch")
    parser.add_argument("--batches", type=int, default=4, help="batches per measurement")
    parser.add_argument(
        "--concurrency",
        type=lambda text: [int(x) for x in text.split(",")],
        default=[1, 8, 32],
    )
    parser.add_argument(
        "--workers", type=lambda text: [int(x) for x in text.split(",")], default=[1, 2]
    )
    parser.add_argument(
        "--postgres-url", default=os.environ.get(POSTGRES_URL_ENV) or POSTGRES_URL_DEFAULT
    )
    options = parser.parse_args()
    before = os.getloadavg()
    print(f"load average at start: {', '.join(f'{x:.2f}' for x in before)}", flush=True)
    with schema(options.postgres_url) as url:
        base = library(url, options)
    results = list(base)
    for workers in options.workers:
        with schema(options.postgres_url) as url, served(url, workers) as (port, token, pid):
            results += over_http(port, token, pid, options, workers)
    single, many = base
    print()
    for figure in results[len(base) :]:
        if figure.latencies:
            ratio = figure.percentile(50) / single.percentile(50)
            print(f"{figure.what:<42} p50 = {ratio:4.2f} x the library's (target <= 2)", end="")
            if figure.cpu_per_record is not None and single.cpu_per_record is not None:
                print(f", CPU per record {figure.cpu_per_record / single.cpu_per_record:4.2f} x")
            else:
                print()
        else:
            ratio = figure.per_second / many.per_second
            print(f"{figure.what:<42} = {ratio:4.2f} x record_many (target >= 0.7)")
    after = os.getloadavg()
    print(
        f"load average: {', '.join(f'{x:.2f}' for x in before)} before, "
        f"{', '.join(f'{x:.2f}' for x in after)} after"
    )
    out = Path(REPO_DIR / "benchmarks" / "out")
    out.mkdir(exist_ok=True)
    (out / f"results-api-{datetime.now():%Y%m%dT%H%M%S}.json").write_text(
        json.dumps(
            [
                {
                    "what": f.what,
                    "records_per_second": f.per_second,
                    "p50_ms": f.percentile(50) if f.latencies else None,
                    "p99_ms": f.percentile(99) if f.latencies else None,
                    "cpu_ms_per_record": f.cpu_per_record,
                }
                for f in results
            ]
            + [{"load_average_before": before, "load_average_after": after}],
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
