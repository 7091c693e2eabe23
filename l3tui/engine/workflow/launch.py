"""Starting admitted attempts without an asyncio Task each.

An admitted attempt's first step runs at once, in a batch on the loop, up to its first real
wait; only an attempt that does wait (a process, a slow in-process job, a commit) continues
in a Task of its own. An in-process no-op thus ends without a Task, a `call_soon` and a
loop turn of its own (~8 us CPU per task of a 10k-task run, load 4). Nothing here decides
anything about an attempt: it only drives what the engine gives it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Coroutine, Generator, Mapping
from typing import Any, TypeVar

from l3tui.engine.scheduling.queue_entry import QueueEntry
from l3tui.engine.workflow.live import Attempt, LiveExecution

log = logging.getLogger(__name__)

BATCH = 500
"""Attempts begun per loop turn at most: a long chain of no-ops must not starve the loop."""

T = TypeVar("T")
BeginAttempt = Callable[[LiveExecution, str, Attempt], Coroutine[Any, Any, None] | None]
"""An attempt's first step: None once it has ended, else the coroutine waiting for its end."""


class Launcher:
    """Begins admitted attempts in admission order, a batch per loop turn."""

    __slots__ = ("_begin", "_in_batch", "_live", "_loop", "_pending", "_scheduled")

    def __init__(self, begin: BeginAttempt, live: Mapping[str, LiveExecution]) -> None:
        self._begin = begin
        self._live = live
        """The engine's running executions, by id (shared, never rebound)."""
        self._pending: deque[tuple[LiveExecution, str, Attempt]] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scheduled = False
        self._in_batch = False
        """A batch is being begun: what is admitted now joins it (no loop look-up)."""

    def admit(self, entry: QueueEntry) -> None:
        """The scheduler admitted this entry: begin its attempt soon (within this loop
        turn's batch, or the next turn)."""
        live = self._live[entry.execution_id]
        self._pending.append((live, entry.task_id, live.attempts[entry.task_id]))
        if self._in_batch:  # admitted by an attempt that ended in this batch: it joins it
            return
        loop = asyncio.get_running_loop()
        if not self._scheduled or loop is not self._loop:
            self._loop, self._scheduled = loop, True
            loop.call_soon(self._begin_batch)

    def _begin_batch(self) -> None:
        pending, loop = self._pending, self._loop
        assert loop is not None
        # Attempts admitted while this batch runs (dependants of those that end) join it.
        self._in_batch = True
        try:
            self._begin_some(pending, loop)
        finally:
            self._in_batch = False
        if pending:
            loop.call_soon(self._begin_batch)
        else:
            self._scheduled = False

    def _begin_some(self, pending: deque[tuple[LiveExecution, str, Attempt]],
                    loop: asyncio.AbstractEventLoop) -> None:  # fmt: skip
        for _ in range(BATCH):
            if not pending:
                break
            live, task_id, attempt = pending.popleft()
            try:
                coro = self._begin(live, task_id, attempt)
                if coro is None:
                    continue  # it ended without waiting
                # Begun here, so that its Task, cancelled at once, still runs its cleanup.
                waits_for = coro.send(None)
            except StopIteration:
                continue
            except Exception:  # a bug in the engine's bookkeeping: the others still run
                log.exception("attempt %s/%s failed to begin", live.execution.id, task_id)
                continue
            attempt.job_task = loop.create_task(CarryOn(coro, waits_for),
                                                name=f"{live.execution.id}/{task_id}")  # fmt: skip


class CarryOn(Coroutine[Any, Any, T]):
    """`coro` driven on from its first wait (it yielded `waits_for` to whoever began it), as
    a coroutine a Task runs or another coroutine awaits: its first step hands `waits_for`
    over and every later one, cancellation and errors included, goes straight to `coro`.
    Unlike a generator doing that, a Task cancelled before its first step throws into
    `coro`, so that it still runs its cleanup (the slot's release), rather than past it."""

    __slots__ = ("_coro", "_first")

    def __init__(self, coro: Coroutine[Any, Any, T], waits_for: Any) -> None:
        self._coro = coro
        self._first: tuple[Any] | None = (waits_for,)

    def send(self, value: Any) -> Any:
        first = self._first
        if first is not None:
            self._first = None
            return first[0]
        return self._coro.send(value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        self._first = None
        if val is None and tb is None:
            return self._coro.throw(typ)
        return self._coro.throw(typ, val, tb)

    def close(self) -> None:
        self._first = None
        self._coro.close()

    def __await__(self) -> Generator[Any, None, T]:
        return self  # its own iterator, as a generator is

    def __iter__(self) -> CarryOn[T]:
        return self

    def __next__(self) -> Any:
        return self.send(None)
