"""What keeps a queued task from starting: one `Blocker` per distinct cause (a pool, an
execution's max_parallel, a hold, declared needs that do not fit, measured load), each with
its own heap of parked entries, plus the measured-load gate with hysteresis. A pool or the
ledger short because a reservation holds part of it says so, naming the reservation.

Parking blocked entries under their cause is what keeps admission O(log n): the scheduler
never re-scans tasks whose cause has not changed. This module holds no policy about order
and never starts anything.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Iterable, Mapping, Sized
from typing import Any

from l3tui.engine.resources.ledger import Ledger
from l3tui.engine.resources.reservations import ReservationBook
from l3tui.engine.scheduling.queue_entry import Blocker, QueueEntry, item_of
from l3tui.engine.scheduling.queue_index import dispatch_key


class HeldBlocker(Blocker):
    """A paused execution or task. Its entries are kept bare, in arrival order, not in a
    heap: nothing is admitted from a hold, and lifting it sends them all back at once."""

    __slots__ = ("entries", "held")

    def __init__(self, key: str | tuple[str, str], held: set[str | tuple[str, str]]) -> None:
        super().__init__(("held", key), "held")
        self.held = held
        self.entries: list[QueueEntry] = []

    def take_all(self) -> list[QueueEntry]:
        """The entries still held here (withdrawn ones are dropped); none are kept."""
        entries = self._here()
        self.entries = []
        return entries

    def _here(self) -> list[QueueEntry]:
        # once each: an entry withdrawn and queued again may be listed twice
        return list(dict.fromkeys(e for e in self.entries if e._home is self))

    def parked(self) -> list[QueueEntry]:
        return sorted(self._here(), key=dispatch_key)

    def idle(self) -> bool:
        return not any(e._home is self for e in self.entries)

    def clear(self) -> bool:
        return self.key[1] not in self.held

    def blocking(self) -> str | None:
        key = self.key[1]
        if key not in self.held:
            return None
        return "held by operator" if isinstance(key, tuple) else "held: execution paused"

    def unblock_hint(self) -> str:
        key = self.key[1]
        if isinstance(key, tuple):
            return f"resume task {key[1]} of {key[0]}"
        return f"resume execution {key}"


class GroupBlocker(Blocker):
    __slots__ = ("limit", "running_per_group")

    def __init__(self, execution_id: str, limit: int, running_per_group: dict[str, int]) -> None:
        super().__init__(("group", execution_id, limit), "max_parallel")
        self.limit = limit
        self.running_per_group = running_per_group

    def clear(self) -> bool:
        return self.running_per_group.get(self.key[1], 0) < self.limit

    def blocking(self) -> str | None:
        used = self.running_per_group.get(self.key[1], 0)
        return f"workflow max_parallel {used}/{self.limit}" if used >= self.limit else None

    def unblock_hint(self) -> str:
        return f"a running task of {self.key[1]} ends (or raise the workflow's max_parallel)"


class PoolBlocker(Blocker):
    __slots__ = ("book", "sizes", "slots", "used")

    def __init__(self, name: str, slots: int, sizes: Mapping[str, int],
                 used: Mapping[str, int], book: ReservationBook) -> None:  # fmt: skip
        super().__init__(("pool", name, slots), f"pool:{name}")
        self.slots = slots
        self.sizes = sizes
        self.used = used
        self.book = book

    @property
    def name(self) -> str:
        return str(self.key[1])

    def clear(self) -> bool:
        name = self.key[1]
        taken = self.used.get(name, 0) + self.book.pool_reserved.get(name, 0)
        return taken + self.slots <= self.sizes.get(name, -1)

    def by_reservation(self) -> bool:
        """It would fit but for what reservations hold."""
        return self.used.get(self.name, 0) + self.slots <= self.sizes.get(self.name, -1)

    def blocking(self) -> str | None:
        name = self.name
        size = self.sizes.get(name)
        if size is None:
            return f"pool {name} is not defined in scheduling.pools"
        reserved = self.book.pool_reserved.get(name, 0)
        used = self.used.get(name, 0) + reserved
        if used + self.slots <= size:
            return None
        if self.slots > size:
            return f"needs {self.slots} slots of pool {name}, which has {size}"
        extra = f" (needs {self.slots})" if self.slots > 1 else ""
        note = ""
        if reserved:
            note = self.book.note(self.book.holding(pool=name),
                                  lambda r: f"{sum(n for p, n in r.pools if p == name)} slot(s)")
        return f"pool {name} {used}/{size}{extra}{note}"

    def unblock_hint(self) -> str:
        name = self.name
        if name not in self.sizes:
            return f"define pools.{name} in l3-scheduling.yml"
        if self.book.pool_reserved.get(name) and self.by_reservation():
            return "the reservation ends (or is cancelled: `l3tui reservations cancel ID`)"
        return (f"a task holding pool {name} ends (or raise pools.{name} to "
                f"{self.sizes[name] + self.slots})")  # fmt: skip


class FitBlocker(Blocker):
    """Declared cpu / memory that the ledger cannot grant now."""

    __slots__ = ("book", "cpu", "ledger", "memory_mb")

    def __init__(self, cpu: float, memory_mb: int, ledger: Ledger, book: ReservationBook) -> None:
        short_memory = memory_mb > ledger.memory_free_mb
        super().__init__(("fit", cpu, memory_mb), "memory" if short_memory else "cpu")
        self.cpu = cpu
        self.memory_mb = memory_mb
        self.ledger = ledger
        self.book = book

    def blocking(self) -> str | None:
        why = self.ledger.shortfall(self.cpu, self.memory_mb)
        if why is None or not self.book.active:
            return why
        ledger = self.ledger
        short_cpu = bool(self.cpu) and self.cpu > ledger.cpu_free + 1e-9
        short_memory = self.memory_mb > ledger.memory_free_mb
        held = self.book.holding(cpu=short_cpu, memory=short_memory)
        return why + self.book.note(held, lambda r: r.holds())

    def by_reservation(self) -> bool:
        """It would fit but for what reservations hold."""
        ledger = self.ledger
        cpu = sum(r.cpu for r in self.book.active.values())
        memory = sum(r.memory_mb for r in self.book.active.values())
        return (self.cpu <= ledger.cpu_free + cpu + 1e-9
                and self.memory_mb <= ledger.memory_free_mb + memory)  # fmt: skip

    def unblock_hint(self) -> str:
        if self.ledger.never_fits(self.cpu, self.memory_mb):
            return "it can never fit: lower the task's resources or raise resource_limits"
        holders = ", ".join(a.owner or a.id for a in self.ledger.holders()[:3])
        return f"allocations end ({holders})" if holders else "allocations end"


class LoadGate:
    """Measured CPU and memory against the limits. Closes when a reading goes over its
    limit and opens again only once it is `hysteresis` points under, so admission does not
    flap around the line."""

    def __init__(self, max_cpu: float, max_memory: float, hysteresis: float) -> None:
        self.max_cpu = max_cpu
        self.max_memory = max_memory
        self.hysteresis = hysteresis
        self.cpu: float | None = None
        self.memory: float | None = None
        self.cpu_over = False
        self.memory_over = False

    @property
    def closed(self) -> bool:
        return self.cpu_over or self.memory_over

    def limit(self, max_cpu: float, max_memory: float, hysteresis: float) -> None:
        """New limits (a config reload), the last readings judged against them."""
        self.max_cpu, self.max_memory, self.hysteresis = max_cpu, max_memory, hysteresis
        self.update(self.cpu, self.memory)

    def update(self, cpu: float | None, memory: float | None) -> bool:
        """Take new readings; True when the reason text (or the open/closed state) changed."""
        before = self.reason
        self.cpu, self.memory = cpu, memory
        self.cpu_over = _over(cpu, self.max_cpu, self.hysteresis, self.cpu_over)
        self.memory_over = _over(memory, self.max_memory, self.hysteresis, self.memory_over)
        return self.reason != before

    @property
    def category(self) -> str:
        return "memory" if self.memory_over else "cpu"

    @property
    def reason(self) -> str:
        parts = []
        if self.memory_over and self.memory is not None:
            parts.append(_describe("memory", self.memory, self.max_memory, self.hysteresis))
        if self.cpu_over and self.cpu is not None:
            parts.append(_describe("cpu", self.cpu, self.max_cpu, self.hysteresis))
        return ", ".join(parts)


def _over(value: float | None, limit: float, hysteresis: float, was_over: bool) -> bool:
    if value is None:
        return False
    return value > limit - hysteresis if was_over else value > limit


def _describe(name: str, value: float, limit: float, hysteresis: float) -> str:
    if value > limit:
        return f"{name} {value:.0f}% > {limit:g}%"
    return f"{name} {value:.0f}%, waiting for <= {limit - hysteresis:g}%"


class LoadBlocker(Blocker):
    """Measured load. Memory over its limit always holds non-critical tasks; CPU over its
    limit holds them only while one of ours runs (as GNU make -l): other programs' load
    must not stall l3tui forever, and ours is what the limit is for."""

    __slots__ = ("gate", "running")

    def __init__(self, gate: LoadGate, running: Sized) -> None:
        super().__init__(("load",), "load")
        self.gate = gate
        self.running = running

    def holds(self) -> bool:
        gate = self.gate
        return gate.memory_over or (gate.cpu_over and len(self.running) > 0)

    def clear(self) -> bool:
        return not self.holds()

    def blocking(self) -> str | None:
        return self.gate.reason if self.holds() else None

    def unblock_hint(self) -> str:
        gate = self.gate
        wanted = []
        if gate.memory_over:
            wanted.append(f"memory <= {gate.max_memory - gate.hysteresis:g}%")
        if gate.cpu_over:
            wanted.append(f"cpu <= {gate.max_cpu - gate.hysteresis:g}%")
        return (" and ".join(wanted) + " (running tasks end, or raise "
                "resource_limits.max_memory_usage / max_cpu_usage); critical tasks bypass "
                "this, and with none of ours running one task may start despite CPU")


class TimeBlocker(Blocker):
    """`not_before`: entries wait in a heap ordered by that time (not by priority) until
    it comes, then go back to the main heap in their priority order."""

    __slots__ = ("timed",)

    def __init__(self) -> None:
        super().__init__(("time",), "not_before")
        self.timed: list[tuple[float, float, QueueEntry]] = []

    def blocking(self) -> str | None:
        return None  # per entry: see `describe_entry`

    @staticmethod
    def describe_entry(not_before: float, now: float) -> str | None:
        if not_before <= now:
            return None
        return "not before " + hhmm(not_before, now)

    def unblock_hint(self) -> str:
        return "their time comes"

    def park(self, entry: QueueEntry) -> bool:
        """Hold `entry` until its not_before; True if it is now the earliest to come."""
        not_before = entry._needs.not_before
        assert not_before is not None
        earliest = not self.timed or not_before < self.timed[0][0]
        heapq.heappush(self.timed, (not_before, entry.enqueued_mono, entry))
        return earliest

    def _holds(self, entry: QueueEntry) -> bool:
        return entry._home is self

    def release_due(self, now: float, main: Blocker) -> None:
        """Entries whose time has come go back to `main`, keyed by priority."""
        heap = self.timed
        while heap and heap[0][0] <= now:
            _, _, entry = heapq.heappop(heap)
            if self._holds(entry):
                entry._home = main
                heapq.heappush(main.heap, item_of(entry))

    def next_time(self) -> float | None:
        """When the earliest entry still held here may go (stale items are dropped)."""
        heap = self.timed
        while heap and not self._holds(heap[0][2]):
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def entries(self) -> list[QueueEntry]:
        """Entries held here, earliest first."""
        return [e for _, _, e in sorted(self.timed, key=lambda t: t[:2]) if self._holds(e)]

    def parked(self) -> list[QueueEntry]:
        return self.entries()

    def idle(self) -> bool:
        return self.next_time() is None


class Causes:
    """Every blocker with entries parked under it, by key, with the indexes release needs
    (a pool's blockers by slot count, the fit blockers) kept in step."""

    def __init__(self) -> None:
        self._all: dict[tuple[Any, ...], Blocker] = {}
        self._pools: dict[str, dict[int, Blocker]] = {}
        self._fits: dict[tuple[Any, ...], Blocker] = {}

    def get(self, key: tuple[Any, ...]) -> Blocker | None:
        return self._all.get(key)

    def get_or_make(self, key: tuple[Any, ...], make: Callable[[], Blocker]) -> Blocker:
        blocker = self._all.get(key)
        if blocker is None:
            blocker = self._all[key] = make()
            if key[0] == "pool":
                self._pools.setdefault(key[1], {})[key[2]] = blocker
            elif key[0] == "fit":
                self._fits[key] = blocker
        return blocker

    def all(self) -> list[Blocker]:
        return list(self._all.values())

    def pool_blockers(self, pool: str) -> dict[int, Blocker] | None:
        """The pool's blockers by the slots their entries ask (None: nobody waited on it)."""
        return self._pools.get(pool)

    def pools_named(self, pool: str) -> Iterable[Blocker]:
        by_slots = self._pools.get(pool)
        return by_slots.values() if by_slots else ()

    def fits(self) -> list[Blocker]:
        return list(self._fits.values())

    def sweep(self, unused: Callable[[Blocker], bool]) -> None:
        for key, blocker in list(self._all.items()):
            if unused(blocker):
                del self._all[key]
                if key[0] == "pool":
                    self._pools.get(key[1], {}).pop(key[2], None)
                elif key[0] == "fit":
                    self._fits.pop(key, None)


def hhmm(wall: float, now: float) -> str:
    """`02:00` today or tomorrow, else `2026-10-25 02:00` (machine-local time)."""
    if wall - now < 20 * 3600:
        return time.strftime("%H:%M", time.localtime(wall))
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(wall))
