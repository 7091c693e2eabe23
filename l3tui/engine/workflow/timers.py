"""Timers that can be paused (a frozen task's timeout must not tick), one heap for the
timeouts of many short attempts, and `not_before`."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

log = logging.getLogger(__name__)

Armed = list[Any]
"""A deadline in a `TimeoutHeap`: [when, sequence number, callback or None once disarmed]."""


class TimeoutHeap:
    """The timeouts of many attempts behind one loop timer, set for the earliest deadline.
    Arming one is a heap push and disarming it clears its callback, where a `call_later` and
    its `cancel` per attempt cost ~3.8 us on the hot path (more on a busy loop). Disarmed
    deadlines leave the heap when they reach its head, or all at once when they are most of
    it, so it holds about as many entries as there are attempts running."""

    __slots__ = ("_at", "_dead", "_handle", "_heap", "_loop", "_seq")

    def __init__(self) -> None:
        self._heap: list[Armed] = []
        self._seq = itertools.count()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._at = 0.0
        self._dead = 0

    def __len__(self) -> int:
        return len(self._heap)

    def arm(self, delay: float, callback: Callable[[], None]) -> Armed:
        """Call `callback` once `delay` seconds (loop time, as `call_later`) have passed,
        unless `disarm` is called first."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new event loop: what was armed on the old one is gone
            self._loop, self._heap, self._handle, self._dead = loop, [], None, 0
        when = loop.time() + max(delay, 0.0)
        armed: Armed = [when, next(self._seq), callback]
        heapq.heappush(self._heap, armed)
        if self._handle is None or when < self._at:
            if self._handle is not None:
                self._handle.cancel()
            self._handle = loop.call_at(when, self._fire)
            self._at = when
        return armed

    def disarm(self, armed: Armed) -> None:
        if armed[2] is None:
            return
        armed[2] = None
        self._dead += 1
        heap = self._heap
        if self._dead > 64 and self._dead * 2 > len(heap):
            self._heap = [item for item in heap if item[2] is not None]
            heapq.heapify(self._heap)
            self._dead = 0
            if not self._heap and self._handle is not None:
                self._handle.cancel()
                self._handle = None

    def _fire(self) -> None:
        self._handle = None
        loop = self._loop
        assert loop is not None
        now = loop.time()
        # `self._heap` read afresh each time: a callback may arm or disarm (a retry's backoff
        # requeues its task), and a disarm may compact the heap into a new list.
        while self._heap and self._heap[0][0] <= now:
            armed = heapq.heappop(self._heap)
            callback = armed[2]
            if callback is None:
                self._dead -= 1
                continue
            armed[2] = None
            try:
                callback()
            except Exception:  # one broken timeout must not strand the others
                log.exception("timeout callback failed")
        heap = self._heap
        while heap and heap[0][2] is None:
            heapq.heappop(heap)
            self._dead -= 1
        if heap and (self._handle is None or heap[0][0] < self._at):
            if self._handle is not None:  # armed by a callback, for later than the head
                self._handle.cancel()
            self._at = heap[0][0]
            self._handle = loop.call_at(self._at, self._fire)


class PausableTimer:
    """Calls `callback` once `delay` seconds of un-paused time have passed: a deadline in
    `heap` while it runs, taken out while paused. A process attempt's timeout is one; in
    the shared heap it costs a push and a cleared slot, where a `call_later` and its `cancel`
    of its own cost ~10-15 us per attempt on a busy loop."""

    __slots__ = ("_armed", "_callback", "_heap", "_remaining", "_started", "fired")

    def __init__(self, delay: float, callback: Callable[[], None], heap: TimeoutHeap) -> None:
        self._heap = heap
        self._callback = callback
        self._remaining = max(delay, 0.0)
        self.fired = False
        self._started = 0.0
        self._armed: Armed | None = None
        self.resume()

    def _fire(self) -> None:
        self._armed = None
        self._remaining = 0.0
        self.fired = True
        self._callback()

    @property
    def running(self) -> bool:
        return self._armed is not None

    def pause(self) -> None:
        armed = self._armed
        if armed is None:
            return
        self._armed = None
        self._heap.disarm(armed)
        self._remaining = max(self._remaining - (time.monotonic() - self._started), 0.0)

    def resume(self) -> None:
        if self._armed is not None or self.fired:
            return
        self._started = time.monotonic()
        self._armed = self._heap.arm(self._remaining, self._fire)

    def cancel(self) -> None:
        armed = self._armed
        if armed is not None:
            self._armed = None
            self._heap.disarm(armed)


def resolve_not_before(value: str | None, reference: float) -> float | None:
    """`'02:00'` -> the next 02:00 local at or after `reference`; ISO -> that instant."""
    if not value:
        return None
    if len(value) <= 5 and ":" in value:
        hour, minute = (int(part) for part in value.split(":"))
        base = datetime.fromtimestamp(reference).astimezone()
        target = base.replace(hour=hour, minute=minute, second=0, microsecond=0)
        if target.timestamp() < reference:
            target = (base + timedelta(days=1)).replace(hour=hour, minute=minute, second=0,
                                                        microsecond=0)  # fmt: skip
        return target.timestamp()
    instant = datetime.fromisoformat(value)
    if instant.tzinfo is None:
        instant = instant.astimezone()
    return instant.timestamp()
