"""The cycle collector's pause is process-wide: threads that pause it at once (the server's
batches) leave it on once the last of them is done, whatever their interleaving."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from ledger import collector
from ledger.collector import collector_paused


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
