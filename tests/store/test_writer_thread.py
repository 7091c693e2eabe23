"""The store's writer thread (store/writer.py: WriterThread): calls run one at a time, in
the order made, off the event loop's thread; a result or an exception reaches the caller;
a caller that stopped waiting (a timeout) leaves the thread working for the next call."""

from __future__ import annotations

import asyncio
import threading

import pytest

from l3tui.store.writer import WriterThread


async def test_calls_run_in_order_in_one_thread_off_the_loop() -> None:
    worker = WriterThread("l3tui-store-test")
    seen: list[tuple[int, int]] = []
    try:
        futures = [worker.call(lambda n: seen.append((n, threading.get_ident())) or n * 2, n)
                   for n in range(50)]  # fmt: skip
        async with asyncio.timeout(30):
            results = await asyncio.gather(*futures)
    finally:
        worker.shutdown()
    assert results == [n * 2 for n in range(50)]
    assert [n for n, _ in seen] == list(range(50))
    threads = {ident for _, ident in seen}
    assert len(threads) == 1 and threading.get_ident() not in threads


async def test_an_exception_reaches_the_caller_and_the_thread_goes_on() -> None:
    worker = WriterThread("l3tui-store-test")

    def fails() -> None:
        raise ValueError("mapping bug")

    try:
        async with asyncio.timeout(30):
            with pytest.raises(ValueError, match="mapping bug"):
                await worker.call(fails)
            assert await worker.call(lambda: "next") == "next"
    finally:
        worker.shutdown()


async def test_a_caller_that_stopped_waiting_leaves_the_thread_working() -> None:
    worker = WriterThread("l3tui-store-test")
    release = threading.Event()
    ran: list[str] = []
    try:
        slow = worker.call(lambda: release.wait(30) and ran.append("slow"))
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(slow, 0.05)  # cancels the future; the call still runs
        after = worker.call(lambda: ran.append("after") or len(ran))
        release.set()
        async with asyncio.timeout(30):
            assert await after == 2
        assert ran == ["slow", "after"]
    finally:
        release.set()
        worker.shutdown()


async def test_shutdown_ends_the_thread_after_the_calls_made() -> None:
    worker = WriterThread("l3tui-store-test")
    done = worker.call(lambda: "last")
    worker.shutdown()
    async with asyncio.timeout(30):
        assert await done == "last"
    worker._thread.join(30)
    assert not worker._thread.is_alive()


async def test_then_runs_on_the_loop_as_the_result_arrives_before_the_caller_resumes() -> None:
    # The store acknowledges a commit from `then`: whatever that wakes (the engine waiting
    # for the commit) runs no later than the writer's own coroutine. Not called on failure.
    worker = WriterThread("l3tui-store-test")
    order: list[tuple[object, ...]] = []
    acknowledged = asyncio.get_running_loop().create_future()

    async def engine() -> None:
        await acknowledged
        order.append(("engine woken",))

    def then(result: int) -> None:
        order.append(("then", result, threading.get_ident()))
        acknowledged.set_result(None)

    def fails() -> int:
        raise ValueError("mapping bug")

    waiting = asyncio.ensure_future(engine())
    try:
        async with asyncio.timeout(30):
            assert await worker.call(lambda: 7, then=then) == 7
            order.append(("caller resumed",))
            with pytest.raises(ValueError, match="mapping bug"):
                await worker.call(fails, then=lambda result: order.append(("wrong",)))
            await waiting
    finally:
        worker.shutdown()
    assert order == [("then", 7, threading.get_ident()), ("engine woken",), ("caller resumed",)]
