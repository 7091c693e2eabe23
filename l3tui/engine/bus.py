"""The EventBus (the seed's Event Publisher) and its subscriptions.

`publish` never blocks: each subscriber has its own queue. A lossy subscriber (the
console, `--json`) keeps its newest `maxsize` events and counts what it dropped, so a slow
reader never stalls the engine. A durable subscriber (the store) is never dropped from; it
acknowledges what it has committed, and `await bus.durable()` returns once everything
published so far is acknowledged: the engine uses it so an execution and each attempt are
on disk before a process is spawned (many attempts share one wait: group commit).

A `committed` subscriber (the console, `l3tui run`'s printer) receives each event only once
every durable subscriber has acknowledged it and everything published before it, in
publication order: what it shows as done is on disk. A durable subscriber may wait a
little before committing what nobody waits for (`Subscription.wanted`); a `durable()`
call or a committed reader waiting for an event ends that wait at once. Without a durable subscriber
(`--no-record`) it receives events at once, and nothing ever waits.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable

from l3tui.engine.events import Event

log = logging.getLogger(__name__)

EventFilter = Callable[[Event], bool]
Listener = Callable[[Event], None]


class Subscription:
    """One subscriber's queue. Iterate it (`async for event in sub`) or `get_batch()`."""

    __slots__ = ("_accepts", "_acked", "_bus", "_plain", "_queue", "_seqs", "_unconfirmed",
                 "_waiter", "_waiters", "_wanted", "_wanted_most", "closed", "committed",
                 "delivered", "dropped", "durable", "maxsize", "name")  # fmt: skip

    def __init__(
        self,
        bus: EventBus,
        name: str,
        maxsize: int,
        durable: bool,
        accepts: EventFilter | None,
        committed: bool = False,
    ) -> None:
        self._bus = bus
        self.name = name
        self.maxsize = maxsize
        self.durable = durable
        self.committed = committed and not durable
        self._accepts = accepts
        self._plain = accepts is None and not durable and not self.committed
        """Takes every event as it is published: `publish` delivers without `_offer`."""
        self._queue: deque[Event] = deque(maxlen=None if durable else maxsize)
        self._waiter: asyncio.Future[None] | None = None
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._acked = 0
        self._seqs: deque[int] = deque()
        """Durable: the bus sequence number of each delivered, unacknowledged event."""
        self._unconfirmed: deque[tuple[int, Event]] = deque()
        """Committed: (sequence number, event) not yet acknowledged by the durable ones."""
        self._wanted: asyncio.Future[None] | None = None
        """Durable: set once someone waits for what it holds (see `wanted`)."""
        self._wanted_most = 0
        self.delivered = 0
        self.dropped = 0
        self.closed = False

    def _offer(self, event: Event, seq: int) -> None:
        if self._accepts is not None and not self._accepts(event):
            return
        if self.durable:
            self._seqs.append(seq)
        elif self.committed and self._bus._durable:
            if len(self._unconfirmed) >= self.maxsize:
                self._unconfirmed.popleft()
                self.dropped += 1
            self._unconfirmed.append((seq, event))
            if self._waiter is not None:
                self._bus._wanted()  # its reader waits for this one: no lazy commit
            return
        self._deliver(event)

    def _deliver(self, event: Event) -> None:
        queue = self._queue
        if len(queue) == self.maxsize and not self.durable:
            self.dropped += 1  # the deque drops the oldest itself
        queue.append(event)
        self.delivered += 1
        wanted = self._wanted
        if wanted is not None and len(queue) >= self._wanted_most and not wanted.done():
            wanted.set_result(None)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _release(self, frontier: int) -> None:
        """Committed: deliver what every durable subscriber has acknowledged."""
        unconfirmed = self._unconfirmed
        while unconfirmed and unconfirmed[0][0] <= frontier:
            self._deliver(unconfirmed.popleft()[1])

    def frontier(self) -> int | None:
        """Durable: the bus sequence number up to which everything it took is acknowledged
        (None: it holds nothing unacknowledged)."""
        return self._seqs[0] - 1 if self._seqs else None

    def pending(self) -> int:
        return len(self._queue)

    def peek(self) -> Event | None:
        """The next event `get` would return, left queued (None when nothing is)."""
        return self._queue[0] if self._queue else None

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
            if self._unconfirmed:
                self._bus._wanted()
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
        seqs = self._seqs
        for _ in range(min(count, len(seqs))):
            seqs.popleft()
        self._bus._confirmed()
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
        wanted = self._wanted
        if wanted is not None and not wanted.done():
            wanted.set_result(None)
        return future

    async def wanted(self, within: float, most: int) -> None:
        """Durable: return once someone waits for what was delivered (`bus.durable()`), or
        `most` events are queued, or `within` seconds have passed, or it is closed, or a
        `committed` reader waits for an event it holds. The store commits at once what the
        engine or a reader waits for, and lazily, in fewer and larger commits, what nobody
        waits for (task starts and ends, samples, with no console or printer following)."""
        if self._waiters or self.closed or len(self._queue) >= most or self._bus._reading():
            return
        loop = asyncio.get_running_loop()
        wanted = self._wanted = loop.create_future()
        self._wanted_most = most
        timer = loop.call_later(within, _set_done, wanted)
        try:
            await wanted
        finally:
            timer.cancel()
            self._wanted = None

    def close(self) -> None:
        self.closed = True
        self._bus._remove(self)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        if self._wanted is not None:
            _set_done(self._wanted)
        self.ack(self.delivered)  # nobody will commit the rest; do not hold the engine

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        return await self.get()


def _set_done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class EventBus:
    """Fan-out of events to subscribers; never blocks the publisher."""

    def __init__(self) -> None:
        self._subs: list[Subscription] = []
        self._durable: list[Subscription] = []
        self._committed: list[Subscription] = []
        self._listeners: list[tuple[Listener, tuple[type[Event], ...] | None]] = []
        self._routes: dict[type[Event], tuple[Listener, ...]] = {}
        """The listeners of each event class, in registration order (made on its first
        event, dropped when listeners change): a listener of a few kinds costs nothing on
        the three events per task it ignores (4 listeners: ~3 us per task less)."""
        self.published = 0

    def subscribe(
        self,
        name: str = "",
        *,
        maxsize: int = 10_000,
        durable: bool = False,
        accepts: EventFilter | None = None,
        committed: bool = False,
    ) -> Subscription:
        """`durable`: never dropped from, acknowledges what it committed (the store).
        `committed`: sees an event only once the durable subscribers acknowledged it."""
        sub = Subscription(self, name, maxsize, durable, accepts, committed)
        if durable:
            # Durable ones first, so an event is counted as theirs before anyone waits on it.
            self._subs.insert(len(self._durable), sub)
            self._durable.append(sub)
        else:
            self._subs.append(sub)
        if sub.committed:
            self._committed.append(sub)
        return sub

    def add_listener(self, callback: Listener, kinds: Iterable[type[Event]] | None = None
                     ) -> Callable[[], None]:  # fmt: skip
        """Call `callback` synchronously for each event (keep it tiny), or only for events
        of the classes in `kinds` (and their subclasses); returns a remover. A listener that
        raises is logged and kept; it never stops the publisher."""
        entry = (callback, None if kinds is None else tuple(kinds))
        self._listeners.append(entry)
        self._routes.clear()

        def remove() -> None:
            self._listeners.remove(entry)
            self._routes.clear()

        return remove

    def _route(self, cls: type[Event]) -> tuple[Listener, ...]:
        route = self._routes[cls] = tuple(
            callback for callback, kinds in self._listeners
            if kinds is None or issubclass(cls, kinds)
        )  # fmt: skip
        return route

    def _remove(self, sub: Subscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)
        if sub in self._committed:
            self._committed.remove(sub)
        if sub in self._durable:
            self._durable.remove(sub)
            self._confirmed()

    def _wanted(self) -> None:
        """Someone waits for what the durable subscribers hold: no lazy commit."""
        for sub in self._durable:
            if sub._wanted is not None:
                _set_done(sub._wanted)

    def _reading(self) -> bool:
        """A committed reader waits for an event not yet acknowledged."""
        return any(sub._waiter is not None and sub._unconfirmed for sub in self._committed)

    def _confirmed(self) -> None:
        """A durable subscriber acknowledged (or left): release what committed ones may see."""
        if not self._committed:
            return
        frontier = self.published
        for sub in self._durable:
            mark = sub.frontier()
            if mark is not None and mark < frontier:
                frontier = mark
        for sub in self._committed:
            sub._release(frontier)

    def publish(self, event: Event) -> None:
        self.published += 1
        seq = self.published
        for sub in self._subs:
            if sub._plain:  # Subscription._deliver, inlined (plain: not durable, no `wanted`)
                queue = sub._queue
                if len(queue) == sub.maxsize:
                    sub.dropped += 1  # the deque drops the oldest itself
                queue.append(event)
                sub.delivered += 1
                waiter = sub._waiter
                if waiter is not None:
                    sub._waiter = None
                    if not waiter.done():
                        waiter.set_result(None)
            elif sub.durable:  # Subscription._offer and _deliver, inlined (the store's)
                accepts = sub._accepts
                if accepts is not None and not accepts(event):
                    continue
                sub._seqs.append(seq)
                queue = sub._queue
                queue.append(event)
                sub.delivered += 1
                wanted = sub._wanted
                if wanted is not None and len(queue) >= sub._wanted_most and not wanted.done():
                    wanted.set_result(None)
                waiter = sub._waiter
                if waiter is not None:
                    sub._waiter = None
                    if not waiter.done():
                        waiter.set_result(None)
            else:
                sub._offer(event, seq)
        if self._committed:
            self._confirmed()  # nothing of a durable subscriber's may be pending
        route = self._routes.get(type(event))
        if route is None:
            route = self._route(type(event))
        for listener in route:
            try:
                listener(event)
            except Exception:  # a broken listener must not stop the engine
                log.exception("event listener %r failed on %s", listener, event.kind)

    @property
    def has_durable(self) -> bool:
        return bool(self._durable)

    def committed_through(self) -> int:
        """The sequence number up to which every durable subscriber has acknowledged
        everything (`published` when nothing is pending, or nothing is durable)."""
        frontier = self.published
        for sub in self._durable:
            mark = sub.frontier()
            if mark is not None and mark < frontier:
                frontier = mark
        return frontier

    async def durable(self) -> None:
        """Return once every durable subscriber has committed all events published so far."""
        for sub in self._durable:
            future = sub.caught_up()
            if future is not None:
                await future

    def durable_future(self) -> asyncio.Future[None] | None:
        """What `durable()` waits for, as one future (None: nothing to wait for): awaited
        where it is called, it is one coroutine fewer to create and to step through."""
        durable = self._durable
        if not durable:
            return None
        if len(durable) == 1:
            return durable[0].caught_up()
        return asyncio.ensure_future(self.durable())
