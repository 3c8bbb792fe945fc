"""The cycle collector's pause is process-wide: threads that pause it at once (the server's
batches) leave it on once the last of them is done, whatever their interleaving. What an
ingest's batches leave alive is set aside from the collector until the ingest ends, and only
that: a batch's own cycles are freed between batches."""

from __future__ import annotations

import gc
import json
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from adapters.jsonl import ingest
from ledger import Ledger, LedgerError, collector
from ledger.collector import collector_paused
from tests.support import records as r


@pytest.fixture(autouse=True)
def collector_on() -> Iterator[None]:
    gc.enable()
    yield
    gc.enable()


def test_a_pause_that_ends_while_another_begins_leaves_the_collector_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first pause ends between the second's look at the collector and its pause (the
    second's `gc.disable` is held until the first is out): the collector is on at the end."""
    first_in, first_may_leave, first_out = threading.Event(), threading.Event(), threading.Event()
    second_in, second_may_leave = threading.Event(), threading.Event()

    def disable() -> None:
        if threading.current_thread().name == "second":
            first_may_leave.set()
            first_out.wait()
        gc.disable()

    monkeypatch.setattr(
        collector, "gc", SimpleNamespace(isenabled=gc.isenabled, enable=gc.enable, disable=disable)
    )

    def first() -> None:
        with collector_paused():
            first_in.set()
            first_may_leave.wait()
        first_out.set()

    def second() -> None:
        with collector_paused():
            second_in.set()
            second_may_leave.wait()

    threads = [threading.Thread(target=first, name="first")]
    threads[0].start()
    first_in.wait()
    threads.append(threading.Thread(target=second, name="second"))
    threads[1].start()
    second_in.wait()
    first_may_leave.set()
    first_out.wait()
    second_may_leave.set()
    for thread in threads:
        thread.join()

    assert gc.isenabled()


def test_the_collector_stays_off_while_any_pause_lasts_and_as_the_caller_had_it() -> None:
    with collector_paused():
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()

    gc.disable()
    with collector_paused():
        pass
    assert not gc.isenabled()


def test_the_collector_is_on_again_after_a_pause_that_raised() -> None:
    with pytest.raises(ZeroDivisionError), collector_paused():
        1 / 0  # noqa: B018
    assert gc.isenabled()


def numbered(records: Iterable[dict[str, Any]]) -> list[tuple[int, bytes]]:
    return [(n, json.dumps(record).encode()) for n, record in enumerate(records, start=1)]


def test_an_ingest_sets_aside_what_its_batches_leave_and_gives_it_back_at_the_end(
    memory_ledger: Ledger,
) -> None:
    frozen: list[int] = []
    lines = numbered([r.location(), r.device(), *(r.created() for _ in range(30))])

    summary = ingest(
        memory_ledger,
        iter(lines),
        batch_size=4,
        on_batch=lambda _: frozen.append(gc.get_freeze_count()),
    )

    assert summary.accepted == 32
    assert len(frozen) == 8 and min(frozen) > 0
    assert gc.get_freeze_count() == 0


def test_an_ingest_that_raises_gives_back_what_it_set_aside(memory_ledger: Ledger) -> None:
    def fails(_: int) -> None:
        assert gc.get_freeze_count() > 0
        raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        ingest(memory_ledger, iter(numbered([r.location()])), on_batch=fails)

    assert gc.get_freeze_count() == 0


def _refused_line(kind: str) -> bytes:
    """A line refused while deciding (an unknown location) or while parsing (a card number,
    an amount out of range, a nesting too deep: raised, with a traceback)."""
    created = r.created()
    if kind == "card number":
        created["description"] = "card 4242424242424242"
    elif kind == "amount":
        created["amount"] = 10**12
    elif kind == "depth":
        return b'{"a":' + b"[" * 40 + b"1" + b"]" * 40 + b"}"
    return json.dumps(created).encode()


@pytest.mark.parametrize("kind", ["unknown location", "card number", "amount", "depth"])
def test_refusals_are_freed_between_batches_not_set_aside(
    memory_ledger: Ledger, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """A refusal and its traceback's frames would make a reference cycle that only the
    collector frees: set aside while the ingest still held it (its batch being told, or the
    next one decided meanwhile), it would stay until the ingest's end, so that a long file of
    refusals would grow without bound. Each batch's refusals are gone once the next is told."""
    told: list[list[weakref.ref[LedgerError]]] = []
    alive_before_each_batch: list[int] = []
    record_stream = memory_ledger.record_stream

    def noted(batches: Any, committed: Callable[[Any, list[Any]], None]) -> None:
        def noting(tag: Any, results: list[Any]) -> None:
            told.append([weakref.ref(x) for x in results if isinstance(x, LedgerError)])
            committed(tag, results)

        record_stream(batches, noting)

    monkeypatch.setattr(memory_ledger, "record_stream", noted)
    refused = [(n, _refused_line(kind)) for n in range(1, 51)]

    ingest(
        memory_ledger,
        iter(refused),
        batch_size=10,
        on_batch=lambda _: alive_before_each_batch.append(
            sum(x() is not None for earlier in told[:-1] for x in earlier)
        ),
    )

    assert sum(map(len, told)) == 50
    assert alive_before_each_batch == [0] * 5


class _Cycle:
    def __init__(self) -> None:
        self.me = self


@pytest.mark.parametrize(("elsewhere", "collected"), [(0, 1), (1, 2), (2, 2)])
def test_a_batch_cycle_another_threads_collection_moved_on_is_freed_not_set_aside(
    elsewhere: int, collected: int
) -> None:
    """A catch-up's collection in another thread (`projections.runner`) moves what is alive
    then, a batch's cycle still in use among it, to an older generation; once the batch
    drops it, the next set-aside that collects collects up to that generation and frees it
    rather than keeping it until the ingest's end."""
    with collector_paused(), collector.survivors_set_aside() as set_aside:
        cycle = _Cycle()
        left = weakref.ref(cycle)
        other = threading.Thread(target=lambda: gc.collect(elsewhere))
        other.start()
        other.join()
        del cycle
        assert collections_during(set_aside) == [collected]
        assert left() is None


def collections_during(run: Callable[[], object]) -> list[int]:
    """The generation of each collection that ran during `run`."""
    ran: list[int] = []

    def noted(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            ran.append(info["generation"])

    gc.callbacks.append(noted)
    try:
        run()
    finally:
        gc.callbacks.remove(noted)
    return ran


def test_set_asides_collect_only_once_the_young_objects_grew_by_the_bound() -> None:
    """Most of what a batch makes is freed by reference counting by the next set-aside: a
    collection there would walk it to find nothing. Until the young objects have grown by
    `YOUNG_GROWTH_MAX` nothing is collected; then the young generation, which holds all of
    them when nothing else collected meanwhile (a full collection would cost more for the
    same objects), is collected and set aside, and the count starts again."""
    with collector_paused(), collector.survivors_set_aside() as set_aside:
        frozen = gc.get_freeze_count()
        kept = [[] for _ in range(collector.YOUNG_GROWTH_MAX // 2)]
        assert collections_during(set_aside) == []
        assert gc.get_freeze_count() == frozen

        kept += [[] for _ in range(collector.YOUNG_GROWTH_MAX)]
        assert collections_during(set_aside) == [0]
        assert gc.get_freeze_count() >= frozen + collector.YOUNG_GROWTH_MAX
        assert gc.get_count()[0] < 100
        del kept


def test_a_small_ingest_collects_nothing_between_its_batches(memory_ledger: Ledger) -> None:
    lines = numbered([r.location(), r.device(), *(r.created() for _ in range(30))])

    def run() -> None:
        assert ingest(memory_ledger, iter(lines), batch_size=4).accepted == 32

    assert collections_during(run) == []


def test_cycles_the_batches_leave_are_freed_every_so_many_young_objects(
    memory_ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches that each leave cyclic garbage: it is collected once the young objects have
    grown by the bound, so that no more of it than that is ever alive, however long the run."""
    monkeypatch.setattr(collector, "YOUNG_GROWTH_MAX", 500)
    cycles: list[weakref.ref[_Cycle]] = []
    alive: list[int] = []

    def leave_cycles(_: int) -> None:
        alive.append(sum(c() is not None for c in cycles))
        cycles.extend(weakref.ref(_Cycle()) for _ in range(100))

    lines = numbered([r.location(), r.device(), *(r.created() for _ in range(98))])
    ingest(memory_ledger, iter(lines), batch_size=2, on_batch=leave_cycles)

    assert len(alive) == 50
    assert max(alive) <= 500
    assert sum(c() is not None for c in cycles) <= 500


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_a_collection_elsewhere_during_the_set_aside_is_seen_and_followed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another thread's collection just before the set-aside's own moves a cycle, alive then
    and dropped before the freeze, on to an older generation: the set-aside sees that its
    own collection was not the only one and collects again up to there, so the cycle is
    freed rather than frozen until the run ends."""
    held: list[_Cycle] = []
    armed = [True]

    def collect(*generation: int) -> int:
        if armed and armed.pop():

            def other() -> None:  # its cycle alive at its collection, dropped just after
                gc.collect(1)
                held.clear()

            thread = threading.Thread(target=other)
            thread.start()
            thread.join()
        return gc.collect(*generation)

    fake = SimpleNamespace(**{name: getattr(gc, name) for name in dir(gc) if name[0] != "_"})
    fake.collect = collect
    monkeypatch.setattr(collector, "gc", fake)
    with collector_paused(), collector.survivors_set_aside() as set_aside:
        held.append(_Cycle())
        alive = weakref.ref(held[0])
        grown = [[] for _ in range(collector.YOUNG_GROWTH_MAX + 1_000)]
        set_aside()
        del grown
        assert not armed  # the other collection ran
        assert alive() is None
