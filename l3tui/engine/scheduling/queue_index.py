"""QueueIndex: which entries are queued, found by (execution, task) and listed in arrival
or dispatch order, for views and reports. It holds no order of its own beyond that and
decides nothing (the scheduler's heaps do).

One small dict per execution, keyed by task id, instead of one dict keyed by an
(execution, task) tuple: no key tuple per queued task (64 bytes each, 100,000 of them in a
deep queue), and a dict's insertion order is its execution's arrival order.

Admission does not touch it: an entry that left the queue is skipped when read and
forgotten by `prune`, which the scheduler calls once the index holds more such entries
than queued ones. (Removing each admitted entry at once cost a cache miss or two per task,
the largest single cost of an admission with 100,000 queued; pruning walks the dicts in
memory order, a few at a time.) Arrival does not touch the dicts either: submit appends
the entry to `pending`, and the first read files those still queued, so a task admitted
before anyone looked never costs a hash or a dict slot here.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator
from operator import attrgetter

from l3tui.engine.scheduling.queue_entry import (
    ADMITTED,
    WITHDRAWN,
    Blocker,
    HeapItem,
    QueueEntry,
    waiting,
)

_arrival = attrgetter("enqueued_mono")


def dispatch_key(entry: QueueEntry) -> tuple[int, float, float]:
    return -entry.priority - entry.boost, entry._needs.key_deadline, entry.enqueued_mono


class QueueIndex:
    """Entries by execution, then task, each execution's in arrival order; entries that
    left the queue linger until `prune` (every read skips them)."""

    __slots__ = ("by_execution", "pending")

    def __init__(self) -> None:
        self.by_execution: dict[str, dict[str, QueueEntry]] = {}
        """Filed from `pending` by every read."""
        self.pending: list[QueueEntry] = []
        """Arrivals not filed yet, in arrival order (the scheduler's submit appends)."""

    def file(self) -> None:
        """File the arrivals still queued: each goes last in its execution's dict (a newer
        entry of a task replaces an older one). Those that left the queue before anyone
        looked cost nothing more (most tasks of a busy engine: no hashing, no dict slot)."""
        pending = self.pending
        if not pending:
            return
        by_execution = self.by_execution
        gone = (None, ADMITTED, WITHDRAWN)  # `waiting`, inlined: per arrival
        for entry in pending:
            if entry._home in gone:
                continue
            tasks = by_execution.get(entry.execution_id)
            if tasks is None:
                tasks = by_execution[entry.execution_id] = {}
            else:
                tasks.pop(entry.task_id, None)  # it goes last: arrival order
            tasks[entry.task_id] = entry
        pending.clear()

    def remove(self, entry: QueueEntry) -> bool:
        """Forget `entry` now (not another entry queued later for the same task)."""
        self.file()
        tasks = self.by_execution.get(entry.execution_id)
        if tasks is None or tasks.get(entry.task_id) is not entry:
            return False
        del tasks[entry.task_id]
        if not tasks:
            del self.by_execution[entry.execution_id]
        return True

    def prune(self) -> int:
        """Forget every entry that left the queue: O(entries held), in memory order.
        Returns how many it holds now."""
        self.file()
        kept: dict[str, dict[str, QueueEntry]] = {}
        size = 0
        for execution_id, tasks in self.by_execution.items():
            left = {task_id: e for task_id, e in tasks.items() if waiting(e)}
            if left:
                kept[execution_id] = left
                size += len(left)
        self.by_execution.clear()  # the same dict object: the scheduler holds it
        self.by_execution.update(kept)
        return size

    def get(self, execution_id: str, task_id: str) -> QueueEntry | None:
        self.file()
        tasks = self.by_execution.get(execution_id)
        entry = tasks.get(task_id) if tasks is not None else None
        return entry if entry is not None and waiting(entry) else None

    def __iter__(self) -> Iterator[QueueEntry]:
        self.file()
        every = itertools.chain.from_iterable(t.values() for t in self.by_execution.values())
        return filter(waiting, every)

    def in_dispatch_order(self, priority: int | None = None,
                          limit: int | None = None) -> list[QueueEntry]:  # fmt: skip
        """Queued entries in dispatch order (optionally of one base priority level). With a
        `limit`, only the first ones are ordered and no key is kept for the rest: a pane
        showing 30 of 100,000 costs one pass and 30 small tuples, not 100,000."""
        self.file()
        gone = (None, ADMITTED, WITHDRAWN)  # `waiting`, inlined: this walks every entry
        chosen = [e for tasks in self.by_execution.values() for e in tasks.values()
                  if e._home not in gone and (priority is None or e.priority == priority)]
        if limit is not None and 4 * limit < len(chosen):
            return heapq.nsmallest(limit, chosen, key=dispatch_key)
        return sorted(chosen, key=dispatch_key)[:limit]

    def oldest(self, cutoff: float, cap: int) -> list[QueueEntry]:
        """Up to `cap` entries queued at or before monotonic `cutoff`, oldest first: the
        executions' own arrival orders merged."""
        self.file()
        out: list[QueueEntry] = []
        merged = heapq.merge(*(t.values() for t in self.by_execution.values()), key=_arrival)
        for entry in merged:
            if entry.enqueued_mono > cutoff or len(out) >= cap:
                break
            if waiting(entry):
                out.append(entry)
        return out


def first_in_dispatch_order(heaps: list[tuple[list[HeapItem], Blocker]],
                            others: list[QueueEntry], limit: int,
                            budget: int) -> list[QueueEntry] | None:  # fmt: skip
    """The first `limit` entries in dispatch order of these heaps (each with the home its
    live items' entries have) and of `others` (entries kept bare: held, timed). Each heap is
    walked from its root, a child never before its parent, so the head of 100,000 queued
    costs what it shows, not a pass over all. None once more than `budget` items were looked
    at (stale items of entries withdrawn en masse), or when `others` alone are more (a
    paused execution of 100,000 tasks): then a pass over the index is cheaper."""
    if len(others) > budget:
        return None
    frontier = [(heap[0][:4], n, 0) for n, (heap, _) in enumerate(heaps) if heap]
    heapq.heapify(frontier)
    out: list[QueueEntry] = []
    seen: set[QueueEntry] = set()
    while frontier and len(out) < limit:
        _, n, pos = heapq.heappop(frontier)
        heap, home = heaps[n]
        item = heap[pos]
        entry = item[4]
        if item[3] == entry._gen and entry._home is home and entry not in seen:
            seen.add(entry)
            out.append(entry)
        budget -= 1
        if budget < 0:
            return None
        for child in (2 * pos + 1, 2 * pos + 2):
            if child < len(heap):
                heapq.heappush(frontier, (heap[child][:4], n, child))
    rest = heapq.nsmallest(limit, (e for e in dict.fromkeys(others) if e not in seen),
                           key=dispatch_key)  # fmt: skip
    return list(itertools.islice(heapq.merge(out, rest, key=dispatch_key), limit))
