"""The in-process gate from Python: acquisitions, fairness across threads and asyncio tasks,
timeouts naming the holder, cancellation, stats, global gates, bad input."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import threading
import time

import pytest

import racegate
from conftest import until


def queued(gate, n):
    return lambda: gate.stats().waiters == n


class Loop:
    """An asyncio event loop on its own thread, so tests can interleave it with blocked
    threads."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def submit(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def close(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def aloop():
    loop = Loop()
    yield loop
    loop.close()


def test_acquire_release_and_guard():
    gate = racegate.Gate("py-basic", capacity=2)
    assert (gate.name, gate.capacity, gate.available) == ("py-basic", 2, 2)
    with gate.acquire(label="vision") as guard:
        assert guard.held and guard.units == 1 and guard.gate_name == "py-basic"
        assert gate.available == 1
        assert [h.label for h in gate.stats().holders] == ["vision"]
    assert not guard.held and gate.available == 2
    # Released by `release()`, idempotently, and by garbage collection like a dropped Rust guard.
    g = gate.acquire(units=2)
    assert gate.available == 0
    g.release()
    g.release()
    assert gate.available == 2
    gate.acquire()
    gc.collect()
    assert gate.available == 2
    # Released when the block raises.
    with pytest.raises(KeyError):
        with gate.acquire(label="boom"):
            raise KeyError("x")
    assert gate.available == 2


def test_timeout_names_the_holder_its_label_and_how_long_it_held():
    gate = racegate.Gate("py-timeout")
    with gate.acquire(label="vision"):
        held_at = time.monotonic()
        with pytest.raises(racegate.AcquireTimeout) as info:
            gate.acquire(label="text", timeout=0.05)
        e = info.value
        assert isinstance(e, TimeoutError) and isinstance(e, racegate.RacegateError)
        assert e.gate == "py-timeout" and e.label == "text"
        assert e.waited >= 0.05
        assert [h.label for h in e.holders] == ["vision"]
        assert 0.05 <= e.holders[0].held_for <= time.monotonic() - held_at + 0.01
        assert "`vision`" in str(e) and "`text`" in str(e) and "hint:" in str(e)
    assert gate.stats().timeouts == 1
    # A zero timeout on a free gate grants at once.
    gate.acquire(timeout=0).release()


def test_try_acquire_never_overtakes_a_queued_waiter():
    gate = racegate.Gate("py-try", capacity=2)
    one = gate.acquire(label="one")
    got = []
    t = threading.Thread(target=lambda: got.append(gate.acquire(units=2, label="two", timeout=30)))
    t.start()
    until(queued(gate, 1), what="the weighted waiter to queue")
    # Only one unit is held, but the queued request for two comes first (the free unit is
    # already set aside for it).
    assert [h.label for h in gate.stats().holders] == ["one"]
    with pytest.raises(racegate.WouldBlock) as info:
        gate.try_acquire(label="barger")
    assert info.value.waiters == 1
    with pytest.raises(racegate.TooLarge):
        gate.try_acquire(units=3)
    one.release()
    t.join(30)
    assert got and got[0].units == 2
    got[0].release()
    gate.try_acquire().release()


def test_fifo_across_threads_and_asyncio_tasks(aloop):
    gate = racegate.Gate("py-fifo")
    order = []
    holder = gate.acquire(label="holder")

    def thread_waiter(name):
        with gate.acquire(label=name, timeout=30):
            order.append(name)

    async def task_waiter(name):
        async with gate.acquire_async(label=name, timeout=30):
            order.append(name)

    expected, threads, futures = [], [], []
    for i in range(4):
        for kind in ("thread", "task"):
            name = f"{kind}-{i}"
            expected.append(name)
            if kind == "thread":
                t = threading.Thread(target=thread_waiter, args=(name,))
                t.start()
                threads.append(t)
            else:
                futures.append(aloop.submit(task_waiter(name)))
            until(queued(gate, len(expected)), what=f"{name} to queue")
    holder.release()
    for t in threads:
        t.join(30)
    for f in futures:
        f.result(30)
    assert order == expected
    s = gate.stats()
    assert s.acquisitions == 9 and s.waiters == 0 and s.available == 1


def test_the_gil_is_released_while_a_thread_waits():
    gate = racegate.Gate("py-gil")
    holder = gate.acquire(label="main")
    result = []
    t = threading.Thread(target=lambda: result.append(gate.acquire(label="worker", timeout=20)))
    t.start()
    # This thread needs the GIL to see the worker queued and to run Python meanwhile: if the
    # worker kept the GIL while waiting, it would only get it back when the worker timed out.
    until(queued(gate, 1), what="the worker to queue")
    busy = sum(i * i for i in range(200_000))
    assert busy > 0 and gate.stats().waiters == 1
    holder.release()
    t.join(20)
    assert result and result[0].held
    result[0].release()


def test_async_waits_do_not_block_the_event_loop():
    gate = racegate.Gate("py-loop")
    holder = gate.acquire(label="thread")
    ticks = []

    async def ticker():
        while len(ticks) < 20:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.001)

    def release_after_ticks():
        until(lambda: len(ticks) >= 20 and gate.stats().waiters == 1, what="ticks while waiting")
        holder.release()

    async def main():
        tick = asyncio.ensure_future(ticker())
        releaser = threading.Thread(target=release_after_ticks)
        releaser.start()
        async with gate.acquire_async(label="task", timeout=30) as guard:
            assert guard.held
        await tick
        releaser.join(30)

    asyncio.run(main())
    assert gate.stats().acquisitions == 2


def test_cancelling_a_task_gives_its_place_back(aloop):
    gate = racegate.Gate("py-cancel")
    holder = gate.acquire(label="holder")
    first = aloop.submit(gate.acquire_async(label="first").__aenter__())
    until(queued(gate, 1), what="the first task to queue")
    second = aloop.submit(gate.acquire_async(label="second", timeout=30).__aenter__())
    until(queued(gate, 2), what="the second task to queue")
    first.cancel()
    until(queued(gate, 1), what="the cancelled task to leave the queue")
    holder.release()
    guard = second.result(30)
    assert [h.label for h in gate.stats().holders] == ["second"]
    guard.release()
    assert gate.available == 1


def test_a_cancellation_racing_a_grant_never_loses_the_gate(aloop):
    gate = racegate.Gate("py-cancel-race")
    for i in range(100):
        holder = gate.acquire()
        fut = aloop.submit(gate.acquire_async(label="racer").__aenter__())
        until(queued(gate, 1), what="the task to queue")
        # Release and cancel at once: the grant either reaches the task or is given back.
        holder.release()
        fut.cancel()
        try:
            guard = fut.result(30)
        except BaseException:
            guard = None
        if guard is not None:
            guard.release()
        until(lambda: gate.available == 1 and gate.stats().waiters == 0, what=f"round {i} to settle")


def test_await_acquire_async_returns_a_guard_and_times_out_naming_the_holder():
    gate = racegate.Gate("py-await")

    async def main():
        guard = await gate.acquire_async(label="a")
        with pytest.raises(racegate.AcquireTimeout) as info:
            await gate.acquire_async(label="b", timeout=0.05)
        assert [h.label for h in info.value.holders] == ["a"]
        guard.release()
        async with gate.acquire_async(units=1):
            pass

    asyncio.run(main())
    assert gate.stats().timeouts == 1


def test_stats_are_the_rust_figures():
    gate = racegate.Gate("py-stats", capacity=1)
    for label, hold in (("vision", 0.02), ("vision", 0.02), ("text", 0.0)):
        with gate.acquire(label=label):
            end = time.monotonic() + hold
            while time.monotonic() < end:
                pass
    with gate.acquire(label="text"):
        with pytest.raises(racegate.AcquireTimeout):
            gate.acquire(label="text", timeout=0.01)
        s = gate.stats()
        assert [(h.label, h.units) for h in s.holders] == [("text", 1)]
    s = gate.stats()
    assert (s.name, s.capacity, s.available, s.enabled) == ("py-stats", 1, 1, True)
    assert (s.acquisitions, s.timeouts, s.panics_while_held, s.waiters) == (4, 1, 0, 0)
    assert s.hold.count == 4 and s.wait.count == 4
    assert s.hold.p50 <= s.hold.p90 <= s.hold.p99 <= s.hold.max
    by_label = {l.label: l for l in s.labels}
    assert by_label["vision"].acquisitions == 2 and by_label["vision"].hold.p50 >= 0.019
    assert by_label["text"].acquisitions == 2 and by_label["text"].timeouts == 1
    d = s.to_dict()
    assert d["labels"][0]["label"] == "vision" and d["hold"]["count"] == 4
    assert "acquisitions 4" in str(s)
    assert racegate.Gate("py-nostats", stats=False).stats().enabled is False


def test_global_gates_are_configured_once():
    gate = racegate.configure("py-global-a", capacity=2)
    assert racegate.global_gate("py-global-a") is gate and gate.capacity == 2
    assert racegate.configure("py-global-a", capacity=2) is gate
    with pytest.raises(racegate.ConfigError, match="already configured"):
        racegate.configure("py-global-a", capacity=3)
    used = racegate.global_gate("py-global-b")
    assert used.capacity == 1
    with pytest.raises(racegate.ConfigError, match="already used"):
        racegate.configure("py-global-b", capacity=4)


def test_bad_input_gets_clear_errors():
    with pytest.raises(racegate.ConfigError, match="capacity must be at least"):
        racegate.Gate("x", 0)
    gate = racegate.Gate("py-bad")
    with pytest.raises(ValueError, match="timeout"):
        gate.acquire(timeout=-1)
    with pytest.raises(ValueError, match="timeout"):
        gate.acquire(timeout=float("nan"))
    with pytest.raises(racegate.TooLarge) as info:
        gate.acquire(units=2)
    assert (info.value.requested, info.value.capacity) == (2, 1)
    with pytest.raises(TypeError):
        gate.acquire(label=7)
    with pytest.raises(racegate.MachineGateError, match="invalid"):
        racegate.MachineGate("../escape")
    with pytest.raises(ValueError, match="slots"):
        racegate.MachineGate("x", capacity=2, slots=3)
    # Nothing was taken by the failed calls.
    assert gate.available == 1 and gate.stats().acquisitions == 0


def test_ctrl_c_interrupts_a_wait_and_leaves_the_queue():
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals reach the main thread only")
    # A process started with SIGINT ignored (a background job of a non-interactive shell, some
    # CI runners) gets no KeyboardInterrupt from Python: install the handler this test is about.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _ctrl_c_interrupts_a_wait()
    finally:
        signal.signal(signal.SIGINT, previous)


def _ctrl_c_interrupts_a_wait():
    gate = racegate.Gate("py-sigint")
    holder = gate.acquire(label="holder")

    def interrupt():
        until(queued(gate, 1), what="the main thread to queue")
        os.kill(os.getpid(), signal.SIGINT)

    t = threading.Thread(target=interrupt)
    t.start()
    with pytest.raises(KeyboardInterrupt):
        # Only the signal ends this wait; the timeout turns a lost signal into a failure, not a hang.
        gate.acquire(label="main", timeout=60)
    t.join(10)
    assert gate.stats().waiters == 0
    holder.release()
    gate.acquire(timeout=5).release()


def test_hold_warnings_reach_python_logging(caplog):
    gate = racegate.Gate("py-warn", hold_warning=0.01)
    with caplog.at_level(logging.WARNING, logger="racegate"):
        with gate.acquire(label="slow"):
            end = time.monotonic() + 0.05
            while time.monotonic() < end:
                pass
    texts = [r.getMessage() for r in caplog.records if r.name == "racegate"]
    assert any("held too long" in t and "slow" in t for t in texts), texts
