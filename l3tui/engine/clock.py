"""Time as the engine sees it, behind a small protocol so tests can drive it.

`time()` is wall-clock epoch seconds (cron, deadlines, records); `monotonic()` measures
durations. `FakeClock` moves only when told to, for cron and DST tests.
"""

from __future__ import annotations

import asyncio
import time as _time
from typing import Protocol


class Clock(Protocol):
    def time(self) -> float: ...

    def monotonic(self) -> float: ...

    async def sleep_until(self, wall: float) -> None:
        """Return once `time()` >= wall."""


class SystemClock:
    """The real clocks (the C functions themselves: `clock.time()` is called a few times per
    task on the engine's hot path, and a Python frame around it cost more than the call)."""

    time = staticmethod(_time.time)
    monotonic = staticmethod(_time.monotonic)

    async def sleep_until(self, wall: float) -> None:
        # Sleep in slices so a suspended laptop or a changed system clock is noticed.
        while (left := wall - _time.time()) > 0:
            await asyncio.sleep(min(left, 30.0))


class FakeClock:
    """A clock that moves only by `advance`/`set`; sleepers wake when it passes them."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._mono = 0.0
        self._changed = asyncio.Event()

    def time(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def set(self, wall: float) -> None:
        if wall < self._now:
            raise ValueError("FakeClock does not go backwards")
        self.advance(wall - self._now)

    def advance(self, seconds: float) -> None:
        self._now += seconds
        self._mono += seconds
        self._changed.set()
        self._changed = asyncio.Event()

    async def sleep_until(self, wall: float) -> None:
        while self._now < wall:
            await self._changed.wait()


async def wake_at(when: float) -> None:
    """Sleep until the running loop's own time `when`, exactly: timers aimed at one instant
    this way run in one turn of the loop (`asyncio.sleep(delay)` adds the delay to a later
    reading of the clock, so two sleeps aimed at one instant wake in two turns)."""
    loop = asyncio.get_running_loop()
    woken: asyncio.Future[None] = loop.create_future()
    timer = loop.call_at(when, woken.set_result, None)
    try:
        await woken
    finally:
        timer.cancel()
