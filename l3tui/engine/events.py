"""Typed events and the EventBus (the seed's Event Publisher).

Events are frozen, keyword-only, named in the past tense and timestamped. `publish` never
blocks: each subscriber has its own queue. A lossy subscriber (the console, `--json`)
keeps its newest `maxsize` events and counts what it dropped, so a slow reader never stalls
the engine. A durable subscriber (the store) is never dropped from; it acknowledges what
it has committed, and `await bus.durable()` returns once everything published so far is
acknowledged: the engine uses it so a task's success is on disk before its dependants
start (many tasks share one wait: group commit).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, ClassVar

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True, slots=True)
class Event:
    """Base of every event: `at` is wall-clock epoch seconds."""

    kind: ClassVar[str] = "event"
    at: float

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["kind"] = self.kind
        return data


# ------------------------------------------------------------------ executions


@dataclass(frozen=True, kw_only=True, slots=True)
class ExecutionCreated(Event):
    kind: ClassVar[str] = "execution_created"
    execution_id: str
    workflow_id: str
    workflow_name: str
    definition_hash: str
    definition: dict[str, Any]
    params: dict[str, Any]
    trigger: str
    parent_id: str | None
    priority: int
    tasks: tuple[tuple[str, str], ...]
    """(task id, display name) in definition order."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ExecutionStarted(Event):
    kind: ClassVar[str] = "execution_started"
    execution_id: str


@dataclass(frozen=True, kw_only=True, slots=True)
class ExecutionPaused(Event):
    kind: ClassVar[str] = "execution_paused"
    execution_id: str


@dataclass(frozen=True, kw_only=True, slots=True)
class ExecutionResumed(Event):
    kind: ClassVar[str] = "execution_resumed"
    execution_id: str


@dataclass(frozen=True, kw_only=True, slots=True)
class ExecutionFinished(Event):
    kind: ClassVar[str] = "execution_finished"
    execution_id: str
    workflow_id: str
    state: str
    reason: str
    duration_s: float


# ----------------------------------------------------------------------- tasks


@dataclass(frozen=True, kw_only=True, slots=True)
class TaskStateChanged(Event):
    """A task transition that has no event of its own: waiting, queued, paused, running
    again after a pause, retrying. Starting an attempt is `TaskStarted`; reaching a
    terminal state is `TaskFinished`."""

    kind: ClassVar[str] = "task_state"
    execution_id: str
    task_id: str
    state: str
    previous: str
    attempt: int
    reason: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class TaskStarted(Event):
    kind: ClassVar[str] = "task_started"
    execution_id: str
    task_id: str
    attempt: int
    pid: int | None
    pgid: int | None
    proc_start: float | None
    log_path: str | None
    command: tuple[str, ...]
    wait_s: float


@dataclass(frozen=True, kw_only=True, slots=True)
class TaskRetrying(Event):
    kind: ClassVar[str] = "task_retrying"
    execution_id: str
    task_id: str
    attempt: int
    """The attempt that failed."""
    delay_s: float
    error: str
    state: str = "failed"
    """How the attempt ended: failed or timed_out."""
    exit_code: int | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class TaskFinished(Event):
    """A task reached a terminal state (succeeded, failed, timed_out, cancelled, skipped)."""

    kind: ClassVar[str] = "task_finished"
    execution_id: str
    task_id: str
    state: str
    attempt: int
    exit_code: int | None
    duration_s: float
    wait_s: float
    reason: str
    peak_cpu_pct: float = 0.0
    peak_rss: int = 0
    avg_cpu_pct: float = 0.0
    avg_rss: int = 0


@dataclass(frozen=True, kw_only=True, slots=True)
class TaskOutput(Event):
    """Lines a task printed (stdout and stderr merged, control sequences removed)."""

    kind: ClassVar[str] = "task_output"
    execution_id: str
    task_id: str
    attempt: int
    lines: tuple[str, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class TaskMetric(Event):
    """A figure a task reported by printing `L3METRIC name=value`."""

    kind: ClassVar[str] = "task_metric"
    execution_id: str
    workflow_id: str
    task_id: str
    name: str
    value: float


@dataclass(frozen=True, kw_only=True, slots=True)
class DeadlineMissed(Event):
    kind: ClassVar[str] = "deadline_missed"
    execution_id: str
    task_id: str | None
    deadline: float


# ---------------------------------------------------------------- operators & system


@dataclass(frozen=True, kw_only=True, slots=True)
class OperatorAction(Event):
    """A command from a person or a tool (pause, resume, cancel, run...), and its outcome."""

    kind: ClassVar[str] = "operator_action"
    action: str
    execution_id: str | None
    task_id: str | None
    applied: bool
    detail: str
    actor: str


@dataclass(frozen=True, kw_only=True, slots=True)
class ResourceSampled(Event):
    """One resource sample; the payload is the sampler's plain dict."""

    kind: ClassVar[str] = "resource_sampled"
    sample: dict[str, Any]


@dataclass(frozen=True, kw_only=True, slots=True)
class ScheduleFired(Event):
    kind: ClassVar[str] = "schedule_fired"
    schedule_id: str
    workflow_id: str
    fire_time: float
    outcome: str
    """started, skipped (overlap), queued (overlap), missed (catch-up skip), failed (the
    workflow could not be started: unknown workflow, missing params)."""
    execution_id: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ScheduleChanged(Event):
    kind: ClassVar[str] = "schedule_changed"
    schedule_id: str
    enabled: bool


@dataclass(frozen=True, kw_only=True, slots=True)
class BottleneckChanged(Event):
    """The resource manager found a bottleneck or an upgrade worth making (`active`), or a
    bottleneck it reported has cleared (`active=False`). Evidence is the numbers behind it."""

    kind: ClassVar[str] = "bottleneck"
    finding: str
    """cpu_sustained, memory_sustained, disk_nearly_full, swap_activity, long_wait,
    upgrade_memory, upgrade_cpu, upgrade_pool_NAME, upgrade_concurrency."""
    active: bool
    severity: str
    summary: str
    evidence: tuple[str, ...]
    suggestion: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class AlertChanged(Event):
    kind: ClassVar[str] = "alert_changed"
    alert_id: str
    rule: str
    state: str
    """raised, acknowledged, snoozed, resolved."""
    severity: str
    message: str
    source: str


@dataclass(frozen=True, kw_only=True, slots=True)
class SystemNotice(Event):
    """Something an operator should know that is not about one execution (store errors,
    recovery after a crash, config reloads)."""

    kind: ClassVar[str] = "system_notice"
    topic: str
    message: str
    severity: str = "info"


EVENT_TYPES: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (
        ExecutionCreated, ExecutionStarted, ExecutionPaused, ExecutionResumed,
        ExecutionFinished, TaskStateChanged, TaskStarted, TaskRetrying, TaskFinished,
        TaskOutput, TaskMetric, DeadlineMissed, OperatorAction, ResourceSampled,
        ScheduleFired, ScheduleChanged, AlertChanged, SystemNotice, BottleneckChanged,
    )
}  # fmt: skip


# ----------------------------------------------------------------------- the bus

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
