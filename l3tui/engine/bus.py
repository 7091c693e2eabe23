"""The EventBus (the seed's Event Publisher) and its subscriptions.

`publish` never blocks: each subscriber has its own queue. A lossy subscriber (the
console, `--json`) keeps its newest `maxsize` events and counts what it dropped, so a slow
reader never stalls the engine. A durable subscriber (the store) is never dropped from; it
acknowledges what it has committed, and `await bus.durable()` returns once everything
published so far is acknowledged: the engine uses it so a task's success is on disk before
its dependants start (many tasks share one wait: group commit).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable

from l3tui.engine.events import Event

log = logging.getLogger(__name__)

EventFilter = Callable[[Event], bool]


class Subscription:
    """One subscriber's queue. Iterate it (`async for event in sub`) or `get_batch()`."""

    __slots__ = ("_accepts", "_acked", "_bus", "_queue", "_waiter", "_waiters", "closed",
                 "delivered", "dropped", "durable", "maxsize", "name")  # fmt: skip

    def __init__(
        self, bus: EventBus, name: str, maxsize: int, durable: bool, accepts: EventFilter | None
    ) -> None:
        self._bus = bus
        self.name = name
        self.maxsize = maxsize
        self.durable = durable
        self._accepts = accepts
        self._queue: deque[Event] = deque(maxlen=None if durable else maxsize)
        self._waiter: asyncio.Future[None] | None = None
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._acked = 0
        self.delivered = 0
        self.dropped = 0
        self.closed = False

    def _offer(self, event: Event) -> None:
        if self._accepts is not None and not self._accepts(event):
            return
        queue = self._queue
        if len(queue) == self.maxsize and not self.durable:
            self.dropped += 1  # the deque drops the oldest itself
        queue.append(event)
        self.delivered += 1
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def pending(self) -> int:
        return len(self._queue)

    async def get(self) -> Event:
        await self.get_batch_wait()
        return self._queue.popleft()

    async def get_batch(self, limit: int = 1000) -> list[Event]:
        """At least one event (waiting for it), at most `limit`."""
        if not self._queue:
            await self.get_batch_wait()
        queue = self._queue
        count = min(limit, len(queue))
        return [queue.popleft() for _ in range(count)]

    async def get_batch_wait(self) -> None:
        """Wait until at least one event is queued (StopAsyncIteration once closed)."""
        while not self._queue:
            if self.closed:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter

    def drain(self) -> list[Event]:
        """Everything queued now, without waiting."""
        items = list(self._queue)
        self._queue.clear()
        return items

    def ack(self, count: int) -> None:
        """A durable subscriber has committed `count` more events."""
        self._acked += count
        if self._waiters:
            keep = []
            for target, future in self._waiters:
                if self._acked >= target:
                    if not future.done():
                        future.set_result(None)
                else:
                    keep.append((target, future))
            self._waiters = keep

    def caught_up(self) -> asyncio.Future[None] | None:
        """A future that completes when everything delivered so far is acknowledged."""
        if self._acked >= self.delivered:
            return None
        future = asyncio.get_running_loop().create_future()
        self._waiters.append((self.delivered, future))
        return future

    def close(self) -> None:
        self.closed = True
        self._bus._remove(self)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        self.ack(self.delivered)  # nobody will commit the rest; do not hold the engine

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        return await self.get()


class EventBus:
    """Fan-out of events to subscribers; never blocks the publisher."""

    def __init__(self) -> None:
        self._subs: list[Subscription] = []
        self._durable: list[Subscription] = []
        self._listeners: list[Callable[[Event], None]] = []
        self.published = 0

    def subscribe(
        self,
        name: str = "",
        *,
        maxsize: int = 10_000,
        durable: bool = False,
        accepts: EventFilter | None = None,
    ) -> Subscription:
        sub = Subscription(self, name, maxsize, durable, accepts)
        self._subs.append(sub)
        if durable:
            self._durable.append(sub)
        return sub

    def add_listener(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Call `callback` synchronously for each event (keep it tiny); returns a remover.
        A listener that raises is logged and kept; it never stops the publisher."""
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback)

    def _remove(self, sub: Subscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)
        if sub in self._durable:
            self._durable.remove(sub)

    def publish(self, event: Event) -> None:
        self.published += 1
        for sub in self._subs:
            sub._offer(event)
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:  # a broken listener must not stop the engine
                log.exception("event listener %r failed on %s", listener, event.kind)

    @property
    def has_durable(self) -> bool:
        return bool(self._durable)

    async def durable(self) -> None:
        """Return once every durable subscriber has committed all events published so far."""
        for sub in self._durable:
            future = sub.caught_up()
            if future is not None:
                await future
