"""The allocation ledger: declared CPU and memory handed out to running tasks and to timed
reservations, against the capacity the scheduler may promise.

Every allocation has an id; `release` is idempotent, so callers release on every ending
(success, failure, timeout, cancel, crash) without bookkeeping. It must not measure anything:
measured load is the sampler's job.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Allocation:
    """Declared needs held by one owner until released (or until `expires_at`)."""

    id: str
    cpu: float
    memory_mb: int
    owner: str = ""
    """Who holds it, for people ("build/compile", "reservation: nightly backup")."""
    expires_at: float | None = None
    """Wall-clock time a reservation lapses; None for task allocations."""


class LedgerError(Exception):
    """An allocation the ledger cannot make (duplicate id, needs beyond capacity)."""


class Ledger:
    """Capacity minus allocations. Listeners hear about every release or expiry, because
    that is when waiting tasks may fit."""

    def __init__(self, cpu_capacity: float, memory_capacity_mb: int,
                 now: Callable[[], float]) -> None:  # fmt: skip
        self.cpu_capacity = cpu_capacity
        self.memory_capacity_mb = memory_capacity_mb
        self._now = now
        self.allocations: dict[str, Allocation] = {}
        self.cpu_allocated = 0.0
        self.memory_allocated_mb = 0
        self.expiries: list[tuple[float, str]] = []
        """Heap of (expires_at, id); may hold ids already released."""
        self._listeners: list[Callable[[], None]] = []
        self._timed: list[Callable[[], None]] = []

    def on_timed(self, callback: Callable[[], None]) -> None:
        """Call `callback` whenever an allocation with an expiry is made (the scheduler
        then applies expiries before it admits)."""
        self._timed.append(callback)

    def on_freed(self, callback: Callable[[], None]) -> None:
        """Call `callback` whenever capacity comes back (release, expiry, resize)."""
        self._listeners.append(callback)

    def _freed(self) -> None:
        for callback in self._listeners:
            callback()

    # ------------------------------------------------------------------ queries

    @property
    def cpu_free(self) -> float:
        return self.cpu_capacity - self.cpu_allocated

    @property
    def memory_free_mb(self) -> int:
        return self.memory_capacity_mb - self.memory_allocated_mb

    def shortfall(self, cpu: float, memory_mb: int) -> str | None:
        """None when the needs fit now; otherwise why not, in words."""
        if self.expiries and self.expiries[0][0] <= self._now():
            self.expire()
        if cpu > self.cpu_capacity:
            return (f"needs {cpu:g} cpu but the ledger has {self.cpu_capacity:g} in all "
                    "(lower resources.cpu or raise resource_limits.cpu_cores)")  # fmt: skip
        if memory_mb > self.memory_capacity_mb:
            return (f"needs {_mb(memory_mb)} memory but the ledger has "
                    f"{_mb(self.memory_capacity_mb)} in all (lower resources.memory_mb or "
                    "raise resource_limits.memory_mb)")  # fmt: skip
        # A small epsilon: 0.1 + 0.2 cores must fit in 0.3.
        if cpu and cpu > self.cpu_free + 1e-9:
            return f"needs {cpu:g} cpu, {max(self.cpu_free, 0):g} of {self.cpu_capacity:g} free"
        if memory_mb and memory_mb > self.memory_free_mb:
            return (f"needs {_mb(memory_mb)} memory, {_mb(max(self.memory_free_mb, 0))} of "
                    f"{_mb(self.memory_capacity_mb)} free")  # fmt: skip
        return None

    def never_fits(self, cpu: float, memory_mb: int) -> bool:
        return cpu > self.cpu_capacity or memory_mb > self.memory_capacity_mb

    def next_expiry(self) -> float | None:
        while self.expiries and self.expiries[0][1] not in self.allocations:
            heapq.heappop(self.expiries)
        return self.expiries[0][0] if self.expiries else None

    # ------------------------------------------------------------------ changes

    def allocate(self, alloc_id: str, cpu: float, memory_mb: int, owner: str = "",
                 *, expires_at: float | None = None) -> Allocation:  # fmt: skip
        """Record an allocation. The caller has checked `shortfall`; the ledger refuses
        duplicates and needs beyond capacity, never an over-commit it was asked for."""
        if alloc_id in self.allocations:
            raise LedgerError(f"allocation {alloc_id!r} exists already")
        if self.never_fits(cpu, memory_mb):
            raise LedgerError(f"allocation {alloc_id!r} exceeds the ledger's capacity")
        alloc = Allocation(alloc_id, cpu, memory_mb, owner, expires_at)
        self.allocations[alloc_id] = alloc
        self.cpu_allocated += cpu
        self.memory_allocated_mb += memory_mb
        if expires_at is not None:
            heapq.heappush(self.expiries, (expires_at, alloc_id))
            for callback in self._timed:
                callback()
        return alloc

    def reserve(self, alloc_id: str, cpu: float, memory_mb: int, duration_s: float,
                owner: str = "") -> Allocation:  # fmt: skip
        """Hold capacity for `duration_s` (maintenance windows, a build about to start)."""
        why = self.shortfall(cpu, memory_mb)
        if why is not None:
            raise LedgerError(f"cannot reserve {alloc_id!r}: {why}")
        return self.allocate(alloc_id, cpu, memory_mb, owner or f"reservation {alloc_id}",
                             expires_at=self._now() + duration_s)  # fmt: skip

    def release(self, alloc_id: str) -> bool:
        """Give the allocation back. Safe to call twice (False the second time)."""
        alloc = self.allocations.pop(alloc_id, None)
        if alloc is None:
            return False
        self.cpu_allocated -= alloc.cpu
        self.memory_allocated_mb -= alloc.memory_mb
        if not self.allocations:
            self.cpu_allocated, self.memory_allocated_mb = 0.0, 0  # no float drift when idle
        self._freed()
        return True

    def expire(self) -> int:
        """Release reservations whose time is up; returns how many."""
        now = self._now()
        expired = 0
        while self.expiries and self.expiries[0][0] <= now:
            _, alloc_id = heapq.heappop(self.expiries)
            alloc = self.allocations.get(alloc_id)
            if alloc is not None and alloc.expires_at is not None and alloc.expires_at <= now:
                self.release(alloc_id)
                expired += 1
        return expired

    def resize(self, cpu_capacity: float, memory_capacity_mb: int) -> None:
        """New capacity (config reload). Existing allocations stay; they may over-commit
        until they end, and nothing new is admitted meanwhile."""
        grew = cpu_capacity > self.cpu_capacity or memory_capacity_mb > self.memory_capacity_mb
        self.cpu_capacity, self.memory_capacity_mb = cpu_capacity, memory_capacity_mb
        if grew:
            self._freed()

    def holders(self) -> list[Allocation]:
        return sorted(self.allocations.values(), key=lambda a: (-a.memory_mb, -a.cpu, a.id))


def _mb(value: int) -> str:
    return f"{value / 1024:.1f} GB" if value >= 1024 else f"{value} MB"
