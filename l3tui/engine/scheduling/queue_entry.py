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
HeapItem = tuple[int, float, float, int, "QueueEntry"]
"""(-effective priority, deadline or inf, arrival, generation, entry): an item is current
only while its generation equals the entry's (re-keying, admission and withdrawal bump it),
so stale items are dropped lazily when they surface."""


class Explainer(Protocol):
    """Whoever queued an entry can say why it still waits (the scheduler)."""

    @property
    def wall_offset(self) -> float:
        """Wall time minus monotonic time, now."""

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

    def idle(self) -> bool:
        """Nobody waits here any more: its cause may be forgotten."""
        return not self.delegated and peek(self.heap) is None

    def parked(self) -> list[QueueEntry]:
        """The entries waiting here, in dispatch order (for reports; O(parked))."""
        return [item[4] for item in sorted(item for item in self.heap if live(item, self))]


class MainBlocker(Blocker):
    """The queue itself: entries nothing but concurrency holds back, plus `delegates`, the
    entries standing for a cause that cleared (a small heap of their own, so that a pool
    slot passing from task to task does not cost a push into, and a pop out of, the whole
    queue's heap)."""

    __slots__ = ("delegates",)

    def __init__(self) -> None:
        super().__init__(("main",), "concurrency")
        self.delegates: list[HeapItem] = []

    def blocking(self) -> str | None:
        return None  # whatever holds the whole queue: see reasons.explain

    def parked(self) -> list[QueueEntry]:
        items = [item for heap in (self.heap, self.delegates) for item in heap]
        return [item[4] for item in sorted(item for item in items if live(item, self))]


class Outside(Blocker):
    """Where an entry is once it left the queue: admitted or withdrawn (no heap, no cause)."""

    __slots__ = ()

    def blocking(self) -> str | None:
        return None


ADMITTED = Outside(("admitted",), "")
WITHDRAWN = Outside(("withdrawn",), "")


class Needs:
    """What a task asks beyond a concurrency slot, its criticality and a caller's note:
    rare, so every entry that asks nothing shares `PLAIN` (or `CRITICAL`): 100,000 queued
    tasks are 100,000 entries. Read-only once made: an entry that changes its note gets its
    own. `plain` and `key_deadline` are derived once here, not per entry."""

    __slots__ = ("cpu", "critical", "deadline", "group_limit", "key_deadline", "memory_mb",
                 "not_before", "note", "one_pool", "plain", "pools")  # fmt: skip

    def __init__(self, cpu: float = 0.0, memory_mb: int = 0,
                 pools: Mapping[str, int] = NO_POOLS, deadline: float | None = None,
                 not_before: float | None = None, group_limit: int | None = None,
                 note: str = "", critical: bool = False) -> None:  # fmt: skip
        self.cpu, self.memory_mb, self.pools = cpu, memory_mb, pools
        self.deadline, self.not_before, self.group_limit = deadline, not_before, group_limit
        self.note, self.critical = note, critical
        self.key_deadline = INF if deadline is None else deadline
        """The deadline as the heap orders it (none: last)."""
        self.plain = not (pools or cpu or memory_mb or group_limit is not None
                          or not_before is not None)  # fmt: skip
        """No pools, needs, max_parallel or not_before: only holds and load can stop it."""
        self.one_pool: tuple[str, int] | None = None
        """(pool, slots) when that is all it asks: the scheduler counts those slots inline."""
        if len(pools) == 1 and not (cpu or memory_mb or group_limit is not None
                                    or not_before is not None):  # fmt: skip
            self.one_pool = next(iter(pools.items()))

    def with_note(self, note: str) -> Needs:
        return Needs(self.cpu, self.memory_mb, self.pools, self.deadline, self.not_before,
                     self.group_limit, note, self.critical)  # fmt: skip


PLAIN = Needs()
CRITICAL = Needs(critical=True)


class QueueEntry:
    """A task waiting to be admitted (or running, once admitted).

    14 slots (144 bytes): what every queued entry carries. What few ask for lives in a
    shared `Needs`; where it is (a cause's heap, the main heap, admitted, withdrawn) is one
    reference, `_home`; its arrival time, made strictly increasing by its scheduler, is also
    its place among equals (FIFO).
    """

    # What admission reads first, together: one or two cache lines per admitted entry.
    __slots__ = ("_needs", "_gen", "_home", "_cause", "_cause_since", "on_admit",  # noqa: RUF023
                 "enqueued_mono", "priority", "_sched", "execution_id", "task_id", "boost",
                 "name", "workflow_id")  # fmt: skip

    def __init__(self, execution_id: str, task_id: str, workflow_id: str, name: str,
                 priority: int, on_admit: Callable[[QueueEntry], None], critical: bool = False,
                 cpu: float = 0.0, memory_mb: int = 0, pools: Mapping[str, int] = NO_POOLS,
                 deadline: float | None = None, not_before: float | None = None,
                 group_limit: int | None = None, note: str = "") -> None:  # fmt: skip
        self.execution_id, self.task_id = execution_id, task_id
        self.workflow_id, self.name = workflow_id, name
        self.priority, self.on_admit = priority, on_admit
        if (cpu or memory_mb or pools or deadline is not None or not_before is not None
                or group_limit is not None or note):  # fmt: skip
            self._needs = Needs(cpu, memory_mb, pools, deadline, not_before, group_limit, note,
                                critical)  # fmt: skip
        else:
            self._needs = CRITICAL if critical else PLAIN
        self.enqueued_mono = 0.0
        """Monotonic time it was queued; unique per scheduler, so it also orders arrival."""
        self.boost = 0
        """Priority points gained by waiting (aging)."""
        self._gen = 0
        self._home: Blocker | None = None
        """Where it is: None (never queued), a cause it waits under (or the main heap),
        ADMITTED or WITHDRAWN."""
        self._sched: Explainer | None = None
        self._cause = "concurrency"
        self._cause_since = 0.0

    @property
    def admitted(self) -> bool:
        return self._home is ADMITTED

    @property
    def withdrawn(self) -> bool:
        return self._home is WITHDRAWN

    @property
    def seq(self) -> float:
        """Its place in arrival order (the strictly increasing arrival time)."""
        return self.enqueued_mono

    @property
    def critical(self) -> bool:
        """Bypasses the measured-load gate."""
        return self._needs.critical

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
        self._needs = self._needs.with_note(text)

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
        home = self._home
        if home is ADMITTED:
            return ""
        if home is WITHDRAWN:
            return "withdrawn"
        if self._sched is None:
            return self.note or "not submitted"
        return self._sched.reason_for(self)

    @reason.setter
    def reason(self, text: str) -> None:
        self.note = text


def item_of(entry: QueueEntry) -> HeapItem:
    """The entry's current heap item (its key as of now)."""
    return (-entry.priority - entry.boost, entry._needs.key_deadline, entry.enqueued_mono,
            entry._gen, entry)  # fmt: skip


def peek(heap: list[HeapItem]) -> HeapItem | None:
    while heap:
        item = heap[0]
        entry = item[4]
        if item[3] == entry._gen:  # admission and withdrawal bump it: one test
            return item
        heapq.heappop(heap)
    return None


def live(item: HeapItem, home: Blocker) -> bool:
    entry = item[4]
    return item[3] == entry._gen and entry._home is home


def waiting(entry: QueueEntry) -> bool:
    home = entry._home
    return home is not None and home is not ADMITTED and home is not WITHDRAWN
