"""What admitted tasks hold while they run: pool slots, their execution's running count
(`max_parallel`) and a ledger allocation of their declared cpu / memory. Pool slots held by
reservations count as taken.

`shortfall` names the cause (a `Blocker`) that keeps an entry from taking its slots now;
`take` hands them over on admission; `give_back` returns them when the attempt ends and
names the causes that may have cleared. It never decides order or admits anyone.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

from l3tui.engine.resources.ledger import Ledger
from l3tui.engine.resources.reservations import ReservationBook
from l3tui.engine.scheduling.admission import Causes, FitBlocker, GroupBlocker, PoolBlocker
from l3tui.engine.scheduling.queue_entry import Blocker, QueueEntry


class Slots:
    """Pools, per-execution running counts and ledger allocations of admitted entries."""

    def __init__(self, ledger: Ledger, causes: Causes, book: ReservationBook) -> None:
        self.ledger = ledger
        self.causes = causes
        self.book = book
        self.pool_sizes: dict[str, int] = {}
        """Configured sizes; updated in place (the pool blockers hold this very dict)."""
        self.pool_used: dict[str, int] = {}
        self.running_per_group: dict[str, int] = {}
        self.allocations: dict[QueueEntry, str] = {}
        """Ledger allocation ids of admitted entries that declared cpu / memory."""

    def resize_pools(self, sizes: Mapping[str, int]) -> None:
        self.pool_sizes.clear()
        self.pool_sizes.update(sizes)

    def shortfall(self, entry: QueueEntry) -> Blocker | None:
        """Why `entry` cannot take its slots now (max_parallel, a pool, declared needs)."""
        needs = entry._needs
        limit = needs.group_limit
        if limit is not None and self.running_per_group.get(entry.execution_id, 0) >= limit:
            group, per_group = entry.execution_id, self.running_per_group
            return self.causes.get_or_make(
                ("group", group, limit), lambda: GroupBlocker(group, limit, per_group)
            )
        if needs.pools:
            reserved = self.book.pool_reserved
            for pool, slots in needs.pools.items():
                taken = self.pool_used.get(pool, 0) + reserved.get(pool, 0)
                if taken + slots > self.pool_sizes.get(pool, 0):
                    blocker = self.causes.get(("pool", pool, slots))
                    if blocker is not None:
                        return blocker
                    make = partial(PoolBlocker, pool, slots, self.pool_sizes, self.pool_used,
                                   self.book)  # fmt: skip
                    return self.causes.get_or_make(("pool", pool, slots), make)
        cpu, memory = needs.cpu, needs.memory_mb
        if (cpu or memory) and self.ledger.shortfall(cpu, memory):
            return self.causes.get_or_make(
                ("fit", cpu, memory), lambda: FitBlocker(cpu, memory, self.ledger, self.book)
            )
        return None

    def take(self, entry: QueueEntry) -> None:
        """Hand an admitted entry its pool slots, max_parallel count and ledger allocation."""
        needs = entry._needs
        if needs.pools:
            used = self.pool_used
            for pool, slots in needs.pools.items():
                used[pool] = used.get(pool, 0) + slots
        if needs.group_limit is not None:
            group = entry.execution_id
            self.running_per_group[group] = self.running_per_group.get(group, 0) + 1
        if needs.cpu or needs.memory_mb:
            alloc = f"{entry.execution_id}/{entry.task_id}#{entry.enqueued_mono!r}"
            self.ledger.allocate(alloc, needs.cpu, needs.memory_mb,
                                 f"{entry.workflow_id}/{entry.task_id}")  # fmt: skip
            self.allocations[entry] = alloc

    def give_back(self, entry: QueueEntry) -> list[Blocker]:
        """Return what `entry` held; the causes its return may have cleared. (A ledger
        release wakes the fit blockers itself, through the ledger's `on_freed`.)"""
        freed: list[Blocker] = []
        needs = entry._needs
        if needs.group_limit is not None:
            group = entry.execution_id
            left = self.running_per_group[group] - 1
            if left:
                self.running_per_group[group] = left
            else:
                del self.running_per_group[group]
            blocker = self.causes.get(("group", group, needs.group_limit))
            if blocker is not None:
                freed.append(blocker)
        if needs.pools:
            for pool, slots in needs.pools.items():
                self.pool_used[pool] -= slots
                freed.extend(self.causes.pools_named(pool))
        alloc = self.allocations.pop(entry, None)
        if alloc is not None:
            self.ledger.release(alloc)
        return freed
