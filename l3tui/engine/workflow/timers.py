"""Timers that can be paused (a frozen task's timeout must not tick) and `not_before`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime, timedelta


class PausableTimer:
    """Calls `callback` once `delay` seconds of un-paused time have passed."""

    __slots__ = ("_callback", "_handle", "_loop", "_remaining", "_started", "fired")

    def __init__(self, delay: float, callback: Callable[[], None]) -> None:
        self._loop = asyncio.get_running_loop()
        self._callback = callback
        self._remaining = max(delay, 0.0)
        self.fired = False
        self._started: float | None = None
        self._handle: asyncio.TimerHandle | None = None
        self.resume()

    def _fire(self) -> None:
        self._handle = None
        self._started = None
        self._remaining = 0.0
        self.fired = True
        self._callback()

    @property
    def running(self) -> bool:
        return self._handle is not None

    def pause(self) -> None:
        if self._handle is None or self._started is None:
            return
        self._handle.cancel()
        self._handle = None
        self._remaining = max(self._remaining - (time.monotonic() - self._started), 0.0)
        self._started = None

    def resume(self) -> None:
        if self._handle is not None or self.fired:
            return
        self._started = time.monotonic()
        self._handle = self._loop.call_later(self._remaining, self._fire)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._started = None


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
