"""Forwarding benchmark: the forwarder against a plain loop of the same Stripe calls.

    python -m benchmarks.forwarding [--payments N] [--concurrency 1,4,8] [--rounds 2] [--profile]

One run starts one localstripe (tests/support/stripe_peer.py, on 127.0.0.1, stopped at the end
whatever happens) and, for each concurrency level, measures in payments/s:
  - baseline: a thread pool of that size calling `StripeGateway.create_and_confirm` for N
    payments: the same HTTP calls with the same parameters as the forwarder (amount, usd,
    pm_card_visa, automatic capture, confirm, metadata with the offline_id, the forwarder's
    Idempotency-Key for a fresh offline_id);
  - forwarder: `Forwarder(ledger, gateway).forward_all(ids, concurrency=c)` on a fresh SQLite
    ledger (in the run's temporary folder) holding N stored payments, recorded before the clock
    starts; every outcome must be "forwarded".
localstripe is emptied (`DELETE /_config/data`) before each measurement, as its cost grows with
the objects it holds. Rounds alternate the order (baseline then forwarder, then forwarder then
baseline, ...); the medians over rounds are compared: target forwarder/baseline >= 0.85.
Each measurement has its own gateway (own HTTP connections); one untimed warm-up of each path
comes first.

`--profile` then forwards a sample one payment at a time in this thread, first with each
ledger and gateway call timed (where the time of one payment goes, and how many ledger
transactions it takes), then under cProfile (top 15 by cumulative time).

Nothing here asserts a speed: it measures, prints, and writes
benchmarks/out/results-forwarding-*.json. Figures are noisy on a shared machine; the load
average and the CPU time of this process and of localstripe are recorded with them, and for
the forwarder the CPU time of the thread that calls `forward_all`: the ledger's own work (the
HTTP calls run in the pool, as in the baseline), which the load hardly moves.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import statistics
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from rich.table import Table

from adapters.settings import StripeSettings
from adapters.stripe.forwarding import CONCURRENCY_MAX, Forwarder, Outcome, idempotency_key
from adapters.stripe.gateway import StripeFailure, StripeGateway
from benchmarks import harness
from benchmarks.harness import console
from benchmarks.ingest import PROFILE_LINES_SHOWN, _n, phase
from benchmarks.stores import SQLITE, Database, Databases, count_stored
from ledger import Ledger, LedgerError
from tests.support import records as r
from tests.support.stripe_fixtures import ServerProcess, http_json, running_server

TARGET_RATIO = 0.85
API_KEY = "sk_test_offline_ledger_bench"  # localstripe accepts any test key
PAYMENT_METHOD = "pm_card_visa"  # reusable on localstripe: every confirm succeeds
CURRENCY = "usd"
CAPTURE_METHOD = "automatic"
TIMEOUT_SECONDS = 30.0
WARMUP_PAYMENTS = 20
SETUP_CHUNK = 200  # stored payments recorded per transaction before the clock starts
PROFILE_PAYMENTS_DEFAULT = 200
BASELINE, FORWARDER = "baseline", "forwarder"
LEDGER_STEPS = ("payment", "request_forward", "record", "observe")
GATEWAY_STEPS = ("create_and_confirm",)
WRITES = ("request_forward", "record", "observe")  # one transaction each
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
LEDGER_SIDE = r"/ledger/|eventsourcing|sqlite3"  # pstats restriction: the ledger's own calls


@dataclass(frozen=True)
class Options:
    payments: int
    concurrency: tuple[int, ...]
    rounds: int
    timeout_seconds: float
    profile: bool
    profile_payments: int


# -- results ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measurement:
    kind: str  # baseline or forwarder
    concurrency: int
    round: int  # 1, 2, ...
    position: int  # 1: measured first in its round, 2: second
    payments: int
    seconds: float
    payments_per_second: float
    outcomes: dict[str, int]  # PaymentIntent status (baseline) or forwarder outcome
    outcomes_ok: bool
    on_server: int  # PaymentIntents on localstripe afterwards
    client_cpu_ms_per_payment: float  # this process, every thread
    server_cpu_ms_per_payment: float  # localstripe
    setup_seconds: float = 0.0  # forwarder: recording the stored payments, untimed
    events_appended: int = 0  # forwarder: events stored by the forwarding
    # forwarder: CPU of the thread calling forward_all (the ledger's work; the HTTP calls run
    # in the pool as in the baseline), a figure the machine's load hardly moves
    calling_thread_cpu_ms_per_payment: float = 0.0


@dataclass(frozen=True)
class LevelFigures:
    concurrency: int
    measurements: list[Measurement]
    baseline_per_second: float  # median over rounds
    forwarder_per_second: float
    ratio: float  # forwarder / baseline, medians
    ratios_by_round: list[float]
    all_ok: bool
    load_average_before: tuple[float, float, float]
    load_average_after: tuple[float, float, float]
    target: float = TARGET_RATIO

    @property
    def target_met(self) -> bool:
        return self.ratio >= self.target


@dataclass(frozen=True)
class StepFigures:
    step: str
    calls_per_payment: float
    ms_per_payment: float
    share: float  # of the forwarder's wall time


@dataclass(frozen=True)
class ProfileFigures:
    payments: int
    outcomes: dict[str, int]
    ms_per_payment: float  # forward(), one at a time, with the steps timed
    steps: list[StepFigures]
    transactions_per_payment: float
    events_per_payment: float
    ledger_ms_per_payment: float  # under the ledger's lock: a ceiling whatever the concurrency
    ledger_ceiling_per_second: float
    cprofile_payments: int
    cprofile_ms_per_payment: float
    cprofile: str
    cprofile_ledger: str  # the same, restricted to LEDGER_SIDE


# -- localstripe ------------------------------------------------------------------------------


def empty(server: ServerProcess) -> None:
    http_json("DELETE", f"{server.url}/_config/data")


def server_cpu_seconds(server: ServerProcess) -> float:
    """utime + stime of localstripe (Linux /proc); 0 if unknown."""
    try:
        with open(f"/proc/{server.pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    except (OSError, ValueError, IndexError):
        return 0.0


def gateway(server: ServerProcess, timeout_seconds: float) -> StripeGateway:
    """A new gateway, hence new HTTP connections, for each measurement."""
    return StripeGateway(
        StripeSettings(
            api_key=SecretStr(API_KEY),
            api_base=server.url,
            timeout_seconds=timeout_seconds,
            max_network_retries=2,
        )
    )


def payment_intents_on(server: ServerProcess, timeout_seconds: float) -> int:
    return sum(1 for _ in gateway(server, timeout_seconds).payment_intents())


@contextmanager
def cpu_clocks(server: ServerProcess) -> Iterator[dict[str, float]]:
    """CPU seconds of this process and of localstripe spent inside the block."""
    spent: dict[str, float] = {}
    client, peer = time.process_time(), server_cpu_seconds(server)
    yield spent
    spent["client"] = time.process_time() - client
    spent["server"] = server_cpu_seconds(server) - peer


# -- the payments -----------------------------------------------------------------------------


def amount_of(n: int) -> int:
    return 1000 + n % 1000


def order_of(n: int) -> dict[str, str]:
    return {"order": f"A-{n}"}


def open_ledger(ledger: Ledger, payments: int) -> None:
    """The location and reader that take the stored payments (limits wide enough)."""
    ledger.record(
        r.location(
            limits={
                "per_payment_max": {CURRENCY: 50_000},
                "stored_amount_max": {CURRENCY: 10**12},
                "stored_count_max": max(10_000, payments),
            },
            device_limits={},
        )
    )
    ledger.record(r.device())
    ledger.bind_stripe_mode(livemode=False)  # once per ledger; forward_all then only reads it


def record_stored(ledger: Ledger, count: int) -> list[str]:
    """`count` stored payments with a reusable payment method, as
    tests/integration/test_forwarding.py records them, SETUP_CHUNK payments per transaction; their
    offline_ids, oldest first."""
    ids = [str(uuid.uuid4()) for _ in range(count)]
    for start in range(0, count, SETUP_CHUNK):
        batch: list[dict[str, Any]] = []
        for n in range(start, min(start + SETUP_CHUNK, count)):
            moment = r.at(2 + n / 100)
            batch += [
                r.created(
                    ids[n],
                    amount=amount_of(n),
                    currency=CURRENCY,
                    capture_method=CAPTURE_METHOD,
                    metadata=order_of(n),
                ),
                r.collected(ids[n], payment_method_id=PAYMENT_METHOD),
                r.confirmed(ids[n], occurred_at=moment, stored_at=moment),
            ]
        refused = [x for x in ledger.record_many(batch) if isinstance(x, LedgerError)]
        if refused:
            raise refused[0]
    return ids


def baseline_calls(count: int) -> list[dict[str, Any]]:
    """The forwarder's create_and_confirm arguments, for fresh offline_ids."""
    calls = []
    for n in range(count):
        offline_id = str(uuid.uuid4())
        calls.append(
            {
                "offline_id": offline_id,
                "amount": amount_of(n),
                "currency": CURRENCY,
                "payment_method_id": PAYMENT_METHOD,
                "capture_method": CAPTURE_METHOD,
                "idempotency_key": idempotency_key(offline_id),
                "metadata": order_of(n),
            }
        )
    return calls


# -- the measurements ---------------------------------------------------------------------------


def run_baseline(
    stripe: StripeGateway,
    calls: list[dict[str, Any]],
    concurrency: int,
    advance: Callable[[float], None] | None = None,
) -> Counter[str]:
    def call(arguments: dict[str, Any]) -> str:
        try:
            return str(stripe.create_and_confirm(**arguments).get("status"))
        except StripeFailure as failure:
            return f"error {failure.code}"

    statuses: Counter[str] = Counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        for status in pool.map(call, calls):
            statuses[status] += 1
            if advance is not None:
                advance(1)
    return statuses


def measure_baseline(
    options: Options, server: ServerProcess, concurrency: int, round_: int, position: int
) -> Measurement:
    empty(server)
    calls = baseline_calls(options.payments)
    stripe = gateway(server, options.timeout_seconds)
    with (
        phase(
            f"c={concurrency} round {round_}: baseline create_and_confirm loop", options.payments
        ) as advance,
        cpu_clocks(server) as cpu,
    ):
        started = time.perf_counter()
        statuses = run_baseline(stripe, calls, concurrency, advance)
        seconds = time.perf_counter() - started
    outcomes = dict(statuses)
    return Measurement(
        BASELINE,
        concurrency,
        round_,
        position,
        options.payments,
        seconds,
        options.payments / seconds,
        outcomes,
        outcomes == {"succeeded": options.payments},
        payment_intents_on(server, options.timeout_seconds),
        cpu["client"] * 1000 / options.payments,
        cpu["server"] * 1000 / options.payments,
    )


def measure_forwarder(
    options: Options,
    server: ServerProcess,
    databases: Databases,
    concurrency: int,
    round_: int,
    position: int,
) -> Measurement:
    empty(server)
    where = databases.fresh(SQLITE, f"forwarder-c{concurrency}-r{round_}")
    with Ledger.open(where.url) as ledger:
        setup_started = time.perf_counter()
        open_ledger(ledger, options.payments)
        ids = record_stored(ledger, options.payments)
        setup_seconds = time.perf_counter() - setup_started
        events_before = count_stored(databases, where).events
        forwarder = Forwarder(ledger, gateway(server, options.timeout_seconds))
        with (
            phase(
                f"c={concurrency} round {round_}: Forwarder.forward_all", options.payments
            ) as advance,
            cpu_clocks(server) as cpu,
        ):
            started, thread_started = time.perf_counter(), time.thread_time()
            summary = forwarder.forward_all(
                ids, concurrency=concurrency, progress=lambda _: advance(1)
            )
            seconds = time.perf_counter() - started
            thread_seconds = time.thread_time() - thread_started
    events = count_stored(databases, where).events - events_before
    return Measurement(
        FORWARDER,
        concurrency,
        round_,
        position,
        options.payments,
        seconds,
        options.payments / seconds,
        summary.outcomes,
        summary.outcomes == {Outcome.FORWARDED.value: options.payments},
        payment_intents_on(server, options.timeout_seconds),
        cpu["client"] * 1000 / options.payments,
        cpu["server"] * 1000 / options.payments,
        setup_seconds=setup_seconds,
        events_appended=events,
        calling_thread_cpu_ms_per_payment=thread_seconds * 1000 / options.payments,
    )


def measure_level(
    options: Options, server: ServerProcess, databases: Databases, concurrency: int
) -> LevelFigures:
    load_before = os.getloadavg()
    measurements: list[Measurement] = []
    for round_ in range(1, options.rounds + 1):
        kinds = (BASELINE, FORWARDER) if round_ % 2 else (FORWARDER, BASELINE)
        for position, kind in enumerate(kinds, start=1):
            if kind == BASELINE:
                measurements.append(
                    measure_baseline(options, server, concurrency, round_, position)
                )
            else:
                measurements.append(
                    measure_forwarder(options, server, databases, concurrency, round_, position)
                )
    load_after = os.getloadavg()

    def rates(kind: str) -> list[float]:
        return [m.payments_per_second for m in measurements if m.kind == kind]

    baseline, forwarder = statistics.median(rates(BASELINE)), statistics.median(rates(FORWARDER))
    by_round = [f / b for b, f in zip(rates(BASELINE), rates(FORWARDER), strict=True)]
    return LevelFigures(
        concurrency,
        measurements,
        baseline,
        forwarder,
        forwarder / baseline,
        by_round,
        all(m.outcomes_ok for m in measurements),
        load_before,
        load_after,
    )


def warm_up(options: Options, server: ServerProcess, databases: Databases) -> None:
    """One small untimed pass of each path: imports, first connections, localstripe's own."""
    count = min(WARMUP_PAYMENTS, options.payments)
    with phase("warm-up (untimed)", None):
        empty(server)
        run_baseline(
            gateway(server, options.timeout_seconds),
            baseline_calls(count),
            max(options.concurrency),
        )
        empty(server)
        with Ledger.open(databases.fresh(SQLITE, "warm-up").url) as ledger:
            open_ledger(ledger, count)
            Forwarder(ledger, gateway(server, options.timeout_seconds)).forward_all(
                record_stored(ledger, count), concurrency=max(options.concurrency)
            )


# -- profile ----------------------------------------------------------------------------------


class StepTimer:
    """Wall time and calls of some methods of some objects (instance attributes wrap them)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = dict.fromkeys((*GATEWAY_STEPS, *LEDGER_STEPS), 0.0)
        self.calls: Counter[str] = Counter()

    def wrap(self, target: object, names: Iterable[str]) -> None:
        for name in names:
            setattr(target, name, self._timed(name, getattr(target, name)))

    def _timed(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - started
                self.calls[name] += 1

        return timed


@contextmanager
def prepared_forwarder(
    options: Options, server: ServerProcess, databases: Databases, label: str, count: int
) -> Iterator[tuple[Database, Forwarder, list[str]]]:
    """An emptied localstripe, and a fresh ledger holding `count` stored payments."""
    empty(server)
    where = databases.fresh(SQLITE, label)
    with Ledger.open(where.url) as ledger:
        open_ledger(ledger, count)
        ids = record_stored(ledger, count)
        yield where, Forwarder(ledger, gateway(server, options.timeout_seconds)), ids


def profile_forwarder(
    options: Options, server: ServerProcess, databases: Databases
) -> ProfileFigures:
    """One payment at a time in this thread (cProfile sees only the thread that enables it)."""
    count = min(options.payments, options.profile_payments)
    timer = StepTimer()
    outcomes: Counter[str] = Counter()
    with (
        prepared_forwarder(options, server, databases, "profile-steps", count) as (
            where,
            forwarder,
            ids,
        ),
        phase(f"profile: {count} payments forwarded one at a time, steps timed", count) as advance,
    ):
        timer.wrap(forwarder.ledger, LEDGER_STEPS)
        timer.wrap(forwarder.gateway, GATEWAY_STEPS)
        events_before = count_stored(databases, where).events
        started = time.perf_counter()
        for offline_id in ids:
            outcomes[forwarder.forward(offline_id).value] += 1
            advance(1)
        total = time.perf_counter() - started
        events = count_stored(databases, where).events - events_before
    steps = [
        StepFigures(
            name,
            timer.calls[name] / count,
            timer.seconds[name] * 1000 / count,
            timer.seconds[name] / total,
        )
        for name in (*GATEWAY_STEPS, *LEDGER_STEPS)
    ]
    other = total - sum(timer.seconds.values())
    steps.append(
        StepFigures(
            "other (facts(), observation parsing, Forwarder code)",
            0.0,
            other * 1000 / count,
            other / total,
        )
    )
    ledger_seconds = sum(timer.seconds[name] for name in LEDGER_STEPS)

    profiler = cProfile.Profile()
    with (
        prepared_forwarder(options, server, databases, "profile-cprofile", count) as (
            _,
            forwarder,
            ids,
        ),
        phase(
            f"profile: {count} payments forwarded one at a time under cProfile", count
        ) as advance,
    ):
        started = time.perf_counter()
        for offline_id in ids:
            profiler.enable()
            forwarder.forward(offline_id)
            profiler.disable()
            advance(1)
        profiled_seconds = time.perf_counter() - started
    shown, ledger_side = io.StringIO(), io.StringIO()
    pstats.Stats(profiler, stream=shown).sort_stats("cumulative").print_stats(PROFILE_LINES_SHOWN)
    pstats.Stats(profiler, stream=ledger_side).sort_stats("cumulative").print_stats(
        LEDGER_SIDE, PROFILE_LINES_SHOWN
    )
    return ProfileFigures(
        payments=count,
        outcomes=dict(outcomes),
        ms_per_payment=total * 1000 / count,
        steps=steps,
        transactions_per_payment=sum(timer.calls[name] for name in WRITES) / count,
        events_per_payment=events / count,
        ledger_ms_per_payment=ledger_seconds * 1000 / count,
        ledger_ceiling_per_second=count / ledger_seconds if ledger_seconds else 0.0,
        cprofile_payments=count,
        cprofile_ms_per_payment=profiled_seconds * 1000 / count,
        cprofile=shown.getvalue(),
        cprofile_ledger=ledger_side.getvalue(),
    )


# -- printing ---------------------------------------------------------------------------------


def _met(ok: bool) -> str:
    return "[green]yes[/]" if ok else "[bold red]no[/]"


def _outcomes(outcomes: dict[str, int]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in sorted(outcomes.items()))


def summary_table(levels: list[LevelFigures], options: Options) -> Table:
    table = Table(
        title=f"forwarding {options.payments:,} payments against localstripe: "
        f"payments/s, median of {options.rounds} rounds",
        title_justify="left",
    )
    for column in (
        "concurrency",
        "baseline /s",
        "forwarder /s",
        "forwarder / baseline",
        "per round",
        "target",
        "met",
        "outcomes ok",
    ):
        table.add_column(column, justify="right")
    for level in levels:
        table.add_row(
            str(level.concurrency),
            f"{level.baseline_per_second:,.1f}",
            f"{level.forwarder_per_second:,.1f}",
            f"{level.ratio:.2f}",
            ", ".join(f"{x:.2f}" for x in level.ratios_by_round),
            f"{level.target:.2f}",
            _met(level.target_met),
            _met(level.all_ok),
        )
    return table


def measurements_table(levels: list[LevelFigures]) -> Table:
    table = Table(title="every measurement, in the order taken", title_justify="left")
    for column in (
        "c",
        "round",
        "#",
        "measurement",
        "payments",
        "seconds",
        "payments/s",
        "client CPU ms/pay",
        "of which calling thread",
        "server CPU ms/pay",
        "on server",
        "events",
        "setup s",
    ):
        table.add_column(column, justify="left" if column == "measurement" else "right")
    table.add_column("outcomes")
    for level in levels:
        for m in level.measurements:
            style = "" if m.outcomes_ok and m.on_server == m.payments else "[bold red]"
            table.add_row(
                str(m.concurrency),
                str(m.round),
                str(m.position),
                m.kind,
                _n(m.payments),
                f"{m.seconds:,.2f}",
                f"{m.payments_per_second:,.1f}",
                f"{m.client_cpu_ms_per_payment:.2f}",
                f"{m.calling_thread_cpu_ms_per_payment:.2f}" if m.kind == FORWARDER else "",
                f"{m.server_cpu_ms_per_payment:.2f}",
                f"{style}{m.on_server:,}",
                _n(m.events_appended) if m.kind == FORWARDER else "",
                f"{m.setup_seconds:.2f}" if m.kind == FORWARDER else "",
                f"{style}{_outcomes(m.outcomes)}",
            )
        table.add_section()
    return table


def profile_table(figures: ProfileFigures) -> Table:
    table = Table(
        title=f"where one forwarded payment's time goes ({figures.payments:,} "
        f"payments, one at a time: {figures.ms_per_payment:.2f} ms each)",
        title_justify="left",
    )
    for column in ("step", "calls/payment", "ms/payment", "share"):
        table.add_column(column, justify="left" if column == "step" else "right")
    for step in figures.steps:
        name = (
            step.step
            if step.step in GATEWAY_STEPS or step.step.startswith("other")
            else f"Ledger.{step.step}"
        )
        table.add_row(
            name,
            f"{step.calls_per_payment:.2f}" if step.calls_per_payment else "",
            f"{step.ms_per_payment:.2f}",
            f"{step.share:.0%}",
        )
    return table


def print_results(
    levels: list[LevelFigures], profile: ProfileFigures | None, options: Options
) -> None:
    console.print()
    console.print(measurements_table(levels))
    for level in levels:
        harness.print_load(
            level.load_average_before,
            level.load_average_after,
            f"c={level.concurrency}: load average",
        )
        if not level.all_ok:
            console.print(
                f"[bold red]c={level.concurrency}: not every payment went through: "
                + "; ".join(
                    f"{m.kind} round {m.round}: {_outcomes(m.outcomes)}"
                    for m in level.measurements
                    if not m.outcomes_ok
                )
                + "[/]"
            )
    console.print()
    console.print(summary_table(levels, options))
    if profile is not None:
        console.print()
        console.print(profile_table(profile))
        console.print(
            f"ledger transactions per payment: {profile.transactions_per_payment:.2f} "
            f"({', '.join(WRITES)}), events appended per payment: "
            f"{profile.events_per_payment:.2f}; ledger calls hold the ledger's lock: "
            f"{profile.ledger_ms_per_payment:.2f} ms per payment, a ceiling of "
            f"{profile.ledger_ceiling_per_second:,.0f} payments/s whatever the concurrency; "
            f"outcomes: {_outcomes(profile.outcomes)}",
            highlight=False,
        )
        console.print()
        console.print(
            f"cProfile of Forwarder.forward, {profile.cprofile_payments:,} payments "
            f"one at a time ({profile.cprofile_ms_per_payment:.2f} ms each under the "
            f"profiler), top {PROFILE_LINES_SHOWN} by cumulative time:",
            highlight=False,
        )
        print(profile.cprofile, flush=True)
        console.print(
            f"the same, restricted to the ledger side ({LEDGER_SIDE!r}):", highlight=False
        )
        print(profile.cprofile_ledger, flush=True)
    elif not all(level.target_met for level in levels):
        console.print(
            "below target: run again with --profile to see where the time goes", highlight=False
        )


# -- command line ---------------------------------------------------------------------------------


def parse_options(argv: list[str]) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.forwarding",
        description="Forwarding throughput of offline-ledger against a local Stripe-compatible "
        "server (localstripe), compared with a plain loop of the same API calls.",
    )
    parser.add_argument("--payments", type=int, default=500, help="payments per measurement")
    parser.add_argument(
        "--concurrency",
        default="1,4",
        help="comma-separated concurrency levels (threads), e.g. 1,4,8",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="measurements of each per level, the order alternating "
        "(baseline first in odd rounds); medians are compared",
    )
    parser.add_argument(
        "--timeout-seconds", type=float, default=TIMEOUT_SECONDS, help="HTTP timeout of the gateway"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also forward a sample one at a time with each step timed, then "
        f"under cProfile (top {PROFILE_LINES_SHOWN} by cumulative time)",
    )
    parser.add_argument(
        "--profile-payments",
        type=int,
        default=PROFILE_PAYMENTS_DEFAULT,
        help="payments of each profiled pass (at most --payments)",
    )
    args = parser.parse_args(argv)
    try:
        levels = tuple(int(x) for x in args.concurrency.split(",") if x.strip())
    except ValueError:
        parser.error("--concurrency: comma-separated integers, e.g. 1,4,8")
    if not levels or not all(0 < c <= CONCURRENCY_MAX for c in levels):
        parser.error(f"--concurrency: each level between 1 and {CONCURRENCY_MAX}")
    if min(args.payments, args.rounds, args.profile_payments) < 1 or args.timeout_seconds <= 0:
        parser.error(
            "--payments, --rounds, --profile-payments and --timeout-seconds must be positive"
        )
    return Options(
        args.payments,
        levels,
        args.rounds,
        args.timeout_seconds,
        args.profile,
        args.profile_payments,
    )


def stripe_facts(workdir: Path) -> dict[str, Any]:
    """Added to benchmarks.harness.machine (SQLite only): the Stripe side's versions."""
    return {
        "stripe": version("stripe"),
        "localstripe": version("localstripe"),
        "requests": version("requests"),
        "workdir_filesystem": filesystem_of(workdir),
    }


def filesystem_of(path: Path) -> str:
    """The type of the file system holding `path` (Linux /proc/mounts), e.g. ext4, tmpfs."""
    best, kind = "", "unknown"
    try:
        with open("/proc/mounts", encoding="utf-8") as mounts:
            for line in mounts:
                _, point, fs_type, *_ = line.split()
                inside = str(path) == point or str(path).startswith(point.rstrip("/") + "/")
                if inside and len(point) >= len(best):
                    best, kind = point, fs_type
    except (OSError, ValueError):
        pass
    return kind


def loopback_without_proxy() -> None:
    """requests honours HTTP(S)_PROXY: keep 127.0.0.1 direct, as the tests' control calls do."""
    for name in ("NO_PROXY", "no_proxy"):
        entries = [x for x in os.environ.get(name, "").split(",") if x]
        if "127.0.0.1" not in entries:
            os.environ[name] = ",".join([*entries, "127.0.0.1"])


def run(options: Options, workdir: Path, databases: Databases) -> dict[str, Any]:
    log_path = workdir / "stripe_peer.log"
    with running_server("tests.support.stripe_peer", log_path=log_path) as server:
        console.print(
            f"localstripe at {server.url} (pid {server.pid}), log {log_path}", highlight=False
        )
        warm_up(options, server, databases)
        levels = [measure_level(options, server, databases, c) for c in options.concurrency]
        profile = profile_forwarder(options, server, databases) if options.profile else None
    print_results(levels, profile, options)
    return {
        "server": {
            "url": server.url,
            "module": "tests.support.stripe_peer",
            "exit_status": server.process.returncode,
        },
        "levels": [{**asdict(level), "target_met": level.target_met} for level in levels],
        "profile": asdict(profile) if profile else None,
    }


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    options = parse_options(argv)
    loopback_without_proxy()
    harness.main(
        "forwarding",
        argv,
        options,
        run,
        stores=(SQLITE,),
        more_facts=stripe_facts,
        versions=("stripe", "localstripe"),
    )


if __name__ == "__main__":
    main()
