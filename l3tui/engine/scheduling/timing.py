"""The scheduler's clock-driven side: the loop the Runtime owns that admits work when a
`not_before` time comes, an aging step is due or a reservation lapses. (Submit and release
admit on their own; this loop is only for what time alone changes.)

At rest it wakes once per `poll_s` (or at the next due time): with the real clock each turn is
one timer and one future in its own task, no tasks made and cancelled per turn, and the poll
on the loop's grid of `poll_s`, in the same turn as the Runtime's ticker (an idle Runtime's
second is mostly such wake-ups)."""

from __future__ import annotations

import asyncio
from typing import Any

from l3tui.engine.clock import SystemClock
from l3tui.engine.scheduling.queue_entry import INF
from l3tui.engine.scheduling.scheduler import TaskScheduler


def next_wake(scheduler: TaskScheduler) -> float | None:
    """Wall-clock time of the next not_before, aging step or reservation expiry."""
    clock = scheduler.clock
    candidates = []
    not_before = scheduler.timed.next_time()
    if not_before is not None:
        candidates.append(not_before)
    if scheduler.aging.due < INF:
        candidates.append(clock.time() + scheduler.aging.due - clock.monotonic())
    expiry = scheduler.ledger.next_expiry()
    if expiry is not None:
        candidates.append(expiry)
    if scheduler.book.due_at < INF:  # a reservation starts or ends
        candidates.append(scheduler.book.due_at)
    return min(candidates) if candidates else None


async def keep_time(scheduler: TaskScheduler, poll_s: float = 1.0) -> None:
    """Apply what is due, admit, forget causes nobody waits on; sleep until the next time
    something is due (or `timers_changed` says an earlier time was parked), at most `poll_s`."""
    clock = scheduler.clock
    changed = scheduler.timers_changed
    while True:
        scheduler.apply_due(clock.monotonic(), clock.time())
        scheduler.pump()
        scheduler.sweep()
        wake = next_wake(scheduler)
        changed.clear()
        if isinstance(clock, SystemClock):  # the real clock: a timeout, not two tasks
            # The poll falls on the loop's grid of whole `poll_s` (as the Runtime's ticker
            # does): both wake in one turn of the loop, not in two.
            now = asyncio.get_running_loop().time()
            at = (now // poll_s + 1) * poll_s
            if wake is not None:
                at = min(at, now + max(wake - clock.time(), 0.0))
            try:
                async with asyncio.timeout_at(at):
                    await changed.wait()
            except TimeoutError:
                pass
            continue
        waits: list[asyncio.Task[Any]] = [asyncio.ensure_future(changed.wait())]
        if wake is not None:
            waits.append(asyncio.ensure_future(clock.sleep_until(wake)))
        try:
            await asyncio.wait(waits, timeout=poll_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
