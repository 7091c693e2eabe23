"""The scheduler's timer loop with the real clock: at rest it makes no tasks per turn (an idle
Runtime's second is mostly wake-ups), and a not_before still wakes it on time."""

from __future__ import annotations

import asyncio
import time

from l3tui.config.schema import Scheduling
from l3tui.engine.clock import SystemClock
from l3tui.engine.scheduling.scheduler import QueueEntry, TaskScheduler
from l3tui.engine.scheduling.timing import keep_time


def scheduler() -> TaskScheduler:
    settings = Scheduling.model_validate({"resource_limits": {"max_concurrent_tasks": 4}})
    return TaskScheduler(settings, SystemClock())


async def test_an_idle_timer_loop_makes_no_tasks_per_turn():
    sched = scheduler()
    turns = 0
    apply_due = sched.apply_due

    def counted(*args: float) -> None:
        nonlocal turns
        turns += 1
        apply_due(*args)

    sched.apply_due = counted  # type: ignore[method-assign]
    loop = asyncio.get_running_loop()
    made: list[object] = []
    runner = asyncio.create_task(keep_time(sched, poll_s=0.01))

    def factory(loop: asyncio.AbstractEventLoop, coro, **kwargs):  # type: ignore[no-untyped-def]
        made.append(coro)
        return asyncio.Task(coro, loop=loop, **kwargs)

    loop.set_task_factory(factory)
    try:
        async with asyncio.timeout(30):
            while turns < 6:
                await asyncio.sleep(0.005)
    finally:
        loop.set_task_factory(None)
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
    assert turns >= 6
    assert made == []  # before: two tasks (the event's wait, the sleep) every turn


async def test_a_not_before_wakes_the_real_clock_loop_on_time_not_at_its_poll():
    sched = scheduler()
    admitted: list[str] = []
    runner = asyncio.create_task(keep_time(sched, poll_s=3600.0))
    try:
        await asyncio.sleep(0.05)  # the loop sleeps (nothing due: until its poll)
        later = QueueEntry(execution_id="e1", task_id="later", workflow_id="wf", name="later",
                           priority=5, on_admit=lambda e: admitted.append(e.task_id),
                           not_before=time.time() + 0.3)  # fmt: skip
        sched.submit(later)  # parked: the loop is woken to sleep until its time instead
        assert admitted == []
        async with asyncio.timeout(30):
            while not admitted:
                await asyncio.sleep(0.01)
        assert time.time() >= later.not_before
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
