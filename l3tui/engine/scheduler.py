"""TaskScheduler: the queue of ready tasks and the admission decision.

The engine submits a `QueueEntry` when a task is ready and releases it when the attempt
ends; the scheduler calls `entry.on_admit(entry)` when the task may start. Admission is
synchronous (`pump`) on every submit and release, so dispatch costs no extra wake-up.
Every waiting entry carries `reason`, a sentence for people.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from l3tui.config.schema import Scheduling
from l3tui.engine.clock import Clock


@dataclass(slots=True, eq=False)
class QueueEntry:
    """A task waiting to be admitted (or running, once admitted)."""

    execution_id: str
    task_id: str
    workflow_id: str
    name: str
    priority: int
    on_admit: Callable[[QueueEntry], None]
    critical: bool = False
    cpu: float = 0.0
    memory_mb: int = 0
    pools: Mapping[str, int] = field(default_factory=dict)
    deadline: float | None = None
    not_before: float | None = None
    group_limit: int | None = None
    """At most this many running entries of the same execution (workflow max_parallel)."""
    seq: int = 0
    enqueued_at: float = 0.0
    enqueued_mono: float = 0.0
    reason: str = ""
    admitted: bool = False
    withdrawn: bool = False


class TaskScheduler:
    """Priority queue with concurrency, pool and per-execution limits, and holds."""

    def __init__(self, settings: Scheduling, clock: Clock) -> None:
        self.settings = settings
        self.clock = clock
        self.max_concurrent = settings.resource_limits.max_concurrent_tasks
        self.pool_sizes = dict(settings.pools)
        self.pool_used: dict[str, int] = dict.fromkeys(self.pool_sizes, 0)
        self.running: set[QueueEntry] = set()
        self.running_per_group: dict[str, int] = {}
        self._heap: list[tuple[int, float, int, QueueEntry]] = []
        self._queued = 0
        self._seq = itertools.count()
        self.held: set[str | tuple[str, str]] = set()
        self.version = 0
        """Bumped on every change of the queue, so views can cache."""

    # ------------------------------------------------------------------ engine side

    def submit(self, entry: QueueEntry) -> None:
        entry.seq = next(self._seq)
        entry.enqueued_at = self.clock.time()
        entry.enqueued_mono = self.clock.monotonic()
        entry.admitted = entry.withdrawn = False
        entry.reason = "queued"
        deadline = entry.deadline if entry.deadline is not None else float("inf")
        heapq.heappush(self._heap, (-entry.priority, deadline, entry.seq, entry))
        self._queued += 1
        self.version += 1
        self.pump()

    def withdraw(self, entry: QueueEntry) -> bool:
        """Take a queued entry out (cancel). False if it was not queued."""
        if entry.admitted or entry.withdrawn:
            return False
        entry.withdrawn = True
        self._queued -= 1
        self.version += 1
        return True

    def release(self, entry: QueueEntry) -> None:
        """The admitted entry's attempt ended: free what it held. Safe to call twice."""
        if entry not in self.running:
            return
        self.running.discard(entry)
        for pool, slots in entry.pools.items():
            self.pool_used[pool] = self.pool_used.get(pool, 0) - slots
        self.running_per_group[entry.execution_id] -= 1
        if not self.running_per_group[entry.execution_id]:
            del self.running_per_group[entry.execution_id]
        self.version += 1
        self.pump()

    def hold(self, key: str | tuple[str, str]) -> None:
        """Stop admitting an execution (`exec_id`) or one task (`(exec_id, task_id)`)."""
        self.held.add(key)
        self.version += 1

    def unhold(self, key: str | tuple[str, str]) -> None:
        self.held.discard(key)
        self.version += 1
        self.pump()

    def is_held(self, entry: QueueEntry) -> bool:
        return entry.execution_id in self.held or (entry.execution_id, entry.task_id) in self.held

    # ------------------------------------------------------------------ views

    def queue_length(self) -> int:
        return self._queued

    def queue(self, priority: int | None = None) -> list[QueueEntry]:
        """Queued entries in dispatch order (optionally one priority level only)."""
        live = sorted(item for item in self._heap if not item[3].withdrawn)
        return [e for *_, e in live if priority is None or e.priority == priority]

    # ------------------------------------------------------------------ admission

    def _blocked(self, entry: QueueEntry) -> str | None:
        if self.is_held(entry):
            return "held: execution paused" if entry.execution_id in self.held else "held"
        if len(self.running) >= self.max_concurrent:
            return f"concurrency {len(self.running)}/{self.max_concurrent}"
        if entry.group_limit is not None:
            used = self.running_per_group.get(entry.execution_id, 0)
            if used >= entry.group_limit:
                return f"workflow max_parallel {used}/{entry.group_limit}"
        for pool, slots in entry.pools.items():
            size = self.pool_sizes.get(pool, 0)
            used = self.pool_used.get(pool, 0)
            if used + slots > size:
                return f"pool {pool} {used}/{size}"
        if entry.not_before is not None and self.clock.time() < entry.not_before:
            return "not before " + _hhmm(entry.not_before)
        return None

    def pump(self) -> int:
        """Admit every queued entry that may start now, in priority order."""
        admitted = 0
        skipped: list[tuple[int, float, int, QueueEntry]] = []
        heap = self._heap
        while heap and len(self.running) < self.max_concurrent:
            item = heapq.heappop(heap)
            entry = item[3]
            if entry.withdrawn:
                continue
            reason = self._blocked(entry)
            if reason is not None:
                entry.reason = reason
                skipped.append(item)
                continue
            self._admit(entry)
            admitted += 1
        for item in skipped:
            heapq.heappush(heap, item)
        if heap and len(self.running) >= self.max_concurrent:
            text = f"concurrency {len(self.running)}/{self.max_concurrent}"
            for item in heap[:64]:  # the visible head; the rest update on the next pump
                item[3].reason = text if not self.is_held(item[3]) else item[3].reason
        return admitted

    def _admit(self, entry: QueueEntry) -> None:
        entry.admitted = True
        entry.reason = ""
        self._queued -= 1
        self.running.add(entry)
        for pool, slots in entry.pools.items():
            self.pool_used[pool] = self.pool_used.get(pool, 0) + slots
        self.running_per_group[entry.execution_id] = (
            self.running_per_group.get(entry.execution_id, 0) + 1
        )
        self.version += 1
        entry.on_admit(entry)


def _hhmm(wall: float) -> str:
    import time

    return time.strftime("%H:%M", time.localtime(wall))
