"""QueueEntry: one task's place in the scheduler's queue (and, once admitted, its hold on
slots); Blocker: a cause that entries wait under; and the small helpers the heaps share.

Plain data: it decides nothing; its `reason` asks the scheduler, so it is never stale.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Protocol

INF = math.inf
NO_POOLS: Mapping[str, int] = MappingProxyType({})
"""Shared by every entry that takes no pool slot (most do not): 64 bytes saved per entry."""
HeapItem = tuple[int, float, int, int, "QueueEntry"]
"""(-effective priority, deadline or inf, arrival seq, generation, entry): an item is
current only while its generation equals the entry's (re-keying, admission and withdrawal
bump it), so stale items are dropped lazily when they surface."""


class Explainer(Protocol):
    """Whoever queued an entry can say why it still waits (the scheduler)."""

    wall_offset: float
    """Wall time minus monotonic time when it last queued an entry."""

    def reason_for(self, entry: QueueEntry) -> str: ...


class Blocker:
    """A cause of waiting shared by every entry parked under it."""

    __slots__ = ("category", "delegated", "heap", "key")

    def __init__(self, key: tuple[Any, ...], category: str) -> None:
        self.key = key
        self.category = category
        """What the wait is attributed to in history: memory, cpu, pool:NAME, ..."""
        self.heap: list[HeapItem] = []
        self.delegated = False
        """One of its entries stands in the main heap for it (see TaskScheduler._wake)."""

    def blocking(self) -> str | None:
        """Why entries parked here wait, or None once the cause is gone."""
        raise NotImplementedError

    def clear(self) -> bool:
        """The cause is gone (cheap: called on the admission path)."""
        return self.blocking() is None

    def unblock_hint(self) -> str:
        """What would let these entries start (for the queue report)."""
        return ""


class Needs:
    """What a task asks beyond a concurrency slot, and a caller's note: rare, so every entry
    that asks nothing shares `PLAIN` (80 bytes saved per entry; 100,000 queued tasks are
    100,000 entries). Read-only once made: an entry that changes its note gets its own."""

    __slots__ = ("cpu", "deadline", "group_limit", "memory_mb", "not_before", "note", "pools")

    def __init__(self, cpu: float = 0.0, memory_mb: int = 0,
                 pools: Mapping[str, int] = NO_POOLS, deadline: float | None = None,
                 not_before: float | None = None, group_limit: int | None = None,
                 note: str = "") -> None:  # fmt: skip
        self.cpu, self.memory_mb, self.pools = cpu, memory_mb, pools
        self.deadline, self.not_before, self.group_limit = deadline, not_before, group_limit
        self.note = note

    def plain(self) -> bool:
        """No pools, needs, max_parallel or not_before: only holds and load can stop it."""
        return not (self.pools or self.cpu or self.memory_mb or self.group_limit is not None
                    or self.not_before is not None)  # fmt: skip


PLAIN = Needs()


class QueueEntry:
    """A task waiting to be admitted (or running, once admitted).

    23 slots (216 bytes): what every queued entry carries; what few ask for lives in `Needs`.
    """

    __slots__ = ("_alloc", "_cause", "_cause_since", "_deadline", "_ekey", "_gen", "_home",
                 "_needs", "_origin", "_plain", "_sched", "admitted", "boost", "critical",
                 "enqueued_mono", "execution_id", "name", "on_admit", "priority", "seq",
                 "task_id", "withdrawn", "workflow_id")  # fmt: skip

    def __init__(self, execution_id: str, task_id: str, workflow_id: str, name: str,
                 priority: int, on_admit: Callable[[QueueEntry], None], critical: bool = False,
                 cpu: float = 0.0, memory_mb: int = 0, pools: Mapping[str, int] = NO_POOLS,
                 deadline: float | None = None, not_before: float | None = None,
                 group_limit: int | None = None, note: str = "") -> None:  # fmt: skip
        self.execution_id, self.task_id = execution_id, task_id
        self.workflow_id, self.name = workflow_id, name
        self.priority, self.on_admit, self.critical = priority, on_admit, critical
        if (cpu or memory_mb or pools or deadline is not None or not_before is not None
                or group_limit is not None or note):  # fmt: skip
            self._needs = Needs(cpu, memory_mb, pools, deadline, not_before, group_limit, note)
        else:
            self._needs = PLAIN
        self.seq = 0
        self.enqueued_mono = 0.0
        self.admitted = self.withdrawn = False
        self.boost = 0
        """Priority points gained by waiting (aging)."""
        self._gen = 0
        self._home: Blocker | None = None
        self._sched: Explainer | None = None
        self._deadline = INF
        self._cause = "concurrency"
        self._cause_since = 0.0
        self._alloc: str | None = None
        self._plain = False
        """No pools, needs, max_parallel or not_before: only holds and load can stop it."""
        self._ekey: tuple[str, str] = ("", "")
        self._origin: Blocker | None = None
        """The cause this entry was parked under, while it stands in the main heap for it."""

    @property
    def cpu(self) -> float:
        """Declared CPU (cores)."""
        return self._needs.cpu

    @property
    def memory_mb(self) -> int:
        """Declared memory (MB)."""
        return self._needs.memory_mb

    @property
    def pools(self) -> Mapping[str, int]:
        """Pool slots it takes, by pool name."""
        return self._needs.pools

    @property
    def deadline(self) -> float | None:
        """Wall time it should have started by (orders the queue)."""
        return self._needs.deadline

    @property
    def not_before(self) -> float | None:
        """Wall time before which it may not start."""
        return self._needs.not_before

    @property
    def group_limit(self) -> int | None:
        """At most this many running entries of its execution (max_parallel)."""
        return self._needs.group_limit

    @property
    def note(self) -> str:
        """A caller's own remark, shown only when nothing else explains the wait."""
        return self._needs.note

    @note.setter
    def note(self, text: str) -> None:
        old = self._needs
        self._needs = Needs(old.cpu, old.memory_mb, old.pools, old.deadline, old.not_before,
                            old.group_limit, text)  # fmt: skip

    @property
    def enqueued_at(self) -> float:
        """Wall time it was queued: its monotonic time on the wall clock of its scheduler
        (one float fewer per entry than storing both)."""
        sched = self._sched
        return self.enqueued_mono + sched.wall_offset if sched is not None else 0.0

    def __repr__(self) -> str:
        return (f"QueueEntry({self.execution_id!r}, {self.task_id!r}, "
                f"priority={self.priority}, boost={self.boost}, admitted={self.admitted}, "
                f"withdrawn={self.withdrawn})")  # fmt: skip

    @property
    def effective_priority(self) -> int:
        return self.priority + self.boost

    @property
    def reason(self) -> str:
        """Why it waits, for people; computed now, so it is never stale."""
        if self.admitted:
            return ""
        if self.withdrawn:
            return "withdrawn"
        if self._sched is None:
            return self.note or "not submitted"
        return self._sched.reason_for(self)

    @reason.setter
    def reason(self, text: str) -> None:
        self.note = text


def peek(heap: list[HeapItem]) -> HeapItem | None:
    while heap:
        item = heap[0]
        entry = item[4]
        if item[3] == entry._gen:  # admission and withdrawal bump it: one test
            return item
        heapq.heappop(heap)
    return None


def live(item: HeapItem) -> bool:
    entry = item[4]
    return item[3] == entry._gen and waiting(entry)


def key(item: HeapItem) -> tuple[int, float, int]:
    return item[0], item[1], item[2]


def waiting(entry: QueueEntry) -> bool:
    return not entry.admitted and not entry.withdrawn
