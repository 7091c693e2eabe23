"""Parking: where a blocked queue entry waits and how it comes back. `_check` names the
cause (a hold, a time, max_parallel, a pool, the ledger, measured load); `_park` sets the
entry aside under it; `_wake` sends its best entry back as the cause's delegate once the
cause may have cleared (a lifted hold sends them all); holds and load readings come and
go here; aging re-keys entries where they wait. The half of TaskScheduler that never
admits anyone (scheduler.py admits).
"""

from __future__ import annotations

import asyncio
import heapq
from collections import defaultdict
from collections.abc import Callable, Iterable

from l3tui.engine.resources.ledger import Ledger
from l3tui.engine.resources.reservations import ReservationBook
from l3tui.engine.scheduling.admission import (
    Causes,
    FitBlocker,
    HeldBlocker,
    LoadBlocker,
    LoadGate,
    PoolBlocker,
    TimeBlocker,
)
from l3tui.engine.scheduling.aging import AgingLadder
from l3tui.engine.scheduling.queue_entry import (
    INF,
    Blocker,
    HeapItem,
    MainBlocker,
    Outside,
    QueueEntry,
    item_of,
    peek,
)
from l3tui.engine.scheduling.queue_index import first_in_dispatch_order
from l3tui.engine.scheduling.slots import Slots

_heappush, _heappop = heapq.heappush, heapq.heappop


class Parking:
    """Causes, parked entries and their delegates (mixed into TaskScheduler)."""

    # Set by TaskScheduler.__init__ / configure.
    _time: Callable[[], float]
    _pumping: bool
    _gate_closed: bool
    _fast: bool
    _quick_limit: int
    max_concurrent: int
    _sizes: dict[str, int]
    _reserved: dict[str, int]
    _draining: str
    _calm_until: float
    _standins: dict[QueueEntry, Blocker]
    aging: AgingLadder
    book: ReservationBook
    causes: Causes
    gate: LoadGate
    held: set[str | tuple[str, str]]
    ledger: Ledger
    load: LoadBlocker
    main: MainBlocker
    parked_total: int
    pool_used: dict[str, int]
    slots: Slots
    timed: TimeBlocker
    timers_changed: asyncio.Event
    _version: int
    _submitted: int
    admitted_total: int
    _totals: defaultdict[str, float]
    _waited: float

    def pump(self) -> int:
        raise NotImplementedError

    @property
    def version(self) -> int:
        """Changes on every change of the queue, so views can cache."""
        return self._version + self._submitted + self.admitted_total

    @version.setter
    def version(self, value: int) -> None:
        self._version = value - self._submitted - self.admitted_total

    @property
    def wait_totals(self) -> defaultdict[str, float]:
        """Seconds tasks have waited, by cause (memory, cpu, pool:NAME, concurrency, ...)."""
        if self._waited:  # release counts "concurrency" on its own (a float, not a dict item)
            self._totals["concurrency"] += self._waited
            self._waited = 0.0
        return self._totals

    @property
    def draining(self) -> str:
        """Set (to the reason) when nothing more may start: the daemon is stopping."""
        return self._draining

    @draining.setter
    def draining(self, reason: str) -> None:
        self._draining = reason
        self._refast()

    def _refast(self) -> None:
        """`_fast`: no holds and no load limit in force, so plain entries need no checks.
        `_quick_limit`: when that holds and it is neither inside `pump` nor draining, the
        concurrency limit (release may admit alone below it); otherwise 0."""
        self._fast = not self.held and not self._gate_closed
        quick = self._fast and not self._pumping and not self._draining
        self._quick_limit = self.max_concurrent if quick else 0

    def hold(self, key: str | tuple[str, str]) -> None:
        """Stop admitting an execution (`exec_id`) or one task (`(exec_id, task_id)`)."""
        self.held.add(key)
        self._refast()
        self._version += 1

    def unhold(self, key: str | tuple[str, str]) -> None:
        self.held.discard(key)
        self._refast()
        blocker = self.causes.get(("held", key))
        if blocker is not None:
            self._wake(blocker)
        self._version += 1
        self.pump()

    def is_held(self, entry: QueueEntry) -> bool:
        return entry.execution_id in self.held or (entry.execution_id, entry.task_id) in self.held

    def update_load(self, cpu: float | None, memory: float | None) -> None:
        """New measured readings (percent of the machine) from the resource manager."""
        if self.gate.update(cpu, memory):
            self._version += 1
        self._gate_closed = self.gate.closed
        self._refast()
        if self.load.heap and self.load.clear():
            self._wake(self.load)
            self.pump()

    def _wake(self, blocker: Blocker) -> None:
        """The cause may be gone: move its best entry into the main heap as its delegate.
        One delegate at a time keeps dispatch order exact without re-scanning anyone. A
        hold lifted sends all its entries back at once (they were kept bare, unordered)."""
        if blocker.delegated:
            return
        main = self.main
        if not blocker.heap:  # nobody waits in it: only a hold keeps its entries elsewhere
            if isinstance(blocker, HeldBlocker) and blocker.clear():
                for entry in blocker.take_all():
                    entry._home = main
                    _heappush(main.heap, item_of(entry))
            return
        if not blocker.clear():
            return
        item = peek(blocker.heap)
        if item is None:
            return  # nobody waits on it (any more); `_sweep` forgets it later
        _heappop(blocker.heap)
        entry = item[4]
        entry._home = main
        self._standins[entry] = blocker
        blocker.delegated = True
        _heappush(main.delegates, item)

    def _pool_freed(self, pool: str, slots: int) -> None:
        """An entry that asked only `slots` of `pool` ended: give them back and bring the
        best entry waiting on the pool forward, as `_wake` would (inlined: per pooled task)."""
        used = self.pool_used
        used[pool] -= slots
        blockers = self.causes.pool_blockers(pool)
        if not blockers:
            return
        free = self._sizes.get(pool, -1) - used[pool] - self._reserved.get(pool, 0)
        for need, blocker in blockers.items():
            heap = blocker.heap
            if blocker.delegated or need > free or not heap:
                continue
            while heap:  # peek, inlined
                item = _heappop(heap)
                entry = item[4]
                if item[3] == entry._gen:
                    entry._home = self.main
                    self._standins[entry] = blocker
                    blocker.delegated = True
                    _heappush(self.main.delegates, item)
                    break

    def apply_due(self, mono: float, now: float) -> None:
        """Aging steps, not_before times, reservations starting or ending, that are due."""
        if self.aging.due <= mono and self.aging.apply(mono):
            self._version += 1
        timed = self.timed.timed
        if timed and timed[0][0] <= now:
            self.timed.release_due(now, self.main)
            self._version += 1
        if self.book.due_at <= now:
            self.book.apply_due(now)
            self._version += 1
        expiries = self.ledger.expiries
        if expiries and expiries[0][0] <= now:
            self.ledger.expire()
        # Until then release may admit without looking at any of these (whatever adds a
        # time, a not_before, an expiry or a reservation sets it to -inf again).
        timers = self.timed.timed or self.ledger.expiries or self.book.upcoming
        self._calm_until = -INF if timers else self.aging.due

    def _timers_added(self) -> None:
        """A not_before, ledger expiry or reservation is pending: release leaves the next
        admission to `pump`, which applies what is due first."""
        self._calm_until = -INF

    def _held_cause(self, entry: QueueEntry) -> Blocker:
        key: str | tuple[str, str] = (
            entry.execution_id if entry.execution_id in self.held
            else (entry.execution_id, entry.task_id)
        )  # fmt: skip
        return self.causes.get_or_make(("held", key), lambda: HeldBlocker(key, self.held))

    def _check(self, entry: QueueEntry) -> Blocker | None:
        if self.held and self.is_held(entry):
            return self._held_cause(entry)
        needs = entry._needs
        if not needs.plain:
            if needs.not_before is not None and needs.not_before > self._time():
                return self.timed
            cause = self.slots.shortfall(entry)
            if cause is not None:
                return cause
        if self._gate_closed and not needs.critical and self.load.holds():
            return self.load
        return None

    def _park(self, entry: QueueEntry, blocker: Blocker, mono: float) -> None:
        if blocker is self.timed:
            self._calm_until = -INF
            if self.timed.park(entry):
                self.timers_changed.set()  # the timer loop may be sleeping past this time
        elif isinstance(blocker, HeldBlocker):
            blocker.entries.append(entry)  # bare: ordered only when the hold is lifted
        else:
            _heappush(blocker.heap, (-entry.priority - entry.boost, entry._needs.key_deadline,
                                     entry.enqueued_mono, entry._gen, entry))  # fmt: skip
        entry._home = blocker
        self.parked_total += 1
        category = blocker.category
        if blocker is self.load:
            category = self.gate.category
        elif self.book.active and isinstance(blocker, FitBlocker | PoolBlocker) \
                and blocker.by_reservation():  # fmt: skip
            category = "reservation"
        if category != entry._cause:
            totals = self._totals
            totals[entry._cause] += mono - entry._cause_since
            entry._cause, entry._cause_since = category, mono
        self._version += 1

    def heads(self, limit: int) -> list[QueueEntry] | None:
        """The first `limit` queued entries in dispatch order, read off the heaps' tops
        (None: too many stale items on top; see `first_in_dispatch_order`)."""
        main, load = self.main, self.load
        heaps: list[tuple[list[HeapItem], Blocker]] = [
            (main.heap, main), (main.delegates, main), (load.heap, load)]
        others = [e for _, _, e in self.timed.timed if e._home is self.timed]
        for blocker in self.causes.all():
            if isinstance(blocker, HeldBlocker):
                others.extend(e for e in blocker.entries if e._home is blocker)
            else:
                heaps.append((blocker.heap, blocker))
        return first_in_dispatch_order(heaps, others, limit, 4 * limit + 4096)

    def sweep(self) -> None:
        """Forget causes nobody waits on any more (cancelled while held, finished groups)."""
        self.causes.sweep(lambda blocker: blocker.idle())

    def _ledger_freed(self) -> None:
        for blocker in self.causes.fits():
            self._wake(blocker)
        if not self._pumping:
            self.pump()

    def _pools_freed(self, pools: Iterable[str]) -> None:
        """A reservation ended: tasks waiting on its pools may start."""
        for pool in pools:
            for blocker in list(self.causes.pools_named(pool)):
                self._wake(blocker)
        self._version += 1
        if not self._pumping:
            self.pump()

    def _wake_all(self) -> None:
        for blocker in [*self.causes.all(), self.load]:
            self._wake(blocker)

    # ------------------------------------------------------------------ aging

    def _rekey(self, entry: QueueEntry) -> None:
        home = entry._home
        if home is None or home is self.timed or isinstance(home, HeldBlocker | Outside):
            return  # not in a heap: its key is made when it goes back into one
        entry._gen += 1
        _heappush(home.heap, item_of(entry))
