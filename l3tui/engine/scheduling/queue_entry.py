"""QueueEntry: one task's place in the scheduler's queue (and, once admitted, its hold on
slots); Blocker: a cause that entries wait under; and the small helpers the heaps share.

Plain data: it decides nothing; its `reason` asks the scheduler, so it is never stale.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
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
    pools: Mapping[str, int] = field(default_factory=lambda: NO_POOLS)
    deadline: float | None = None
    not_before: float | None = None
    group_limit: int | None = None
    """At most this many running entries of the same execution (workflow max_parallel)."""
    seq: int = 0
    enqueued_at: float = 0.0
    enqueued_mono: float = 0.0
    admitted: bool = False
    withdrawn: bool = False
    boost: int = 0
    """Priority points gained by waiting (aging)."""
    note: str = field(default="", repr=False)
    """A caller's own remark, shown only when nothing else explains the wait."""
    _gen: int = field(default=0, init=False, repr=False)
    _home: Blocker | None = field(default=None, init=False, repr=False)
    _sched: Explainer | None = field(default=None, init=False, repr=False)
    _deadline: float = field(default=INF, init=False, repr=False)
    _cause: str = field(default="concurrency", init=False, repr=False)
    _cause_since: float = field(default=0.0, init=False, repr=False)
    _alloc: str | None = field(default=None, init=False, repr=False)
    _plain: bool = field(default=False, init=False, repr=False)
    _ekey: tuple[str, str] = field(default=("", ""), init=False, repr=False)
    _origin: Blocker | None = field(default=None, init=False, repr=False)
    """The cause this entry was parked under, while it stands in the main heap for it."""
    """No pools, needs, max_parallel or not_before: only holds and load can stop it."""

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
