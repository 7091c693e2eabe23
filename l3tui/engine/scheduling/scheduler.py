"""TaskScheduler: the one queue of ready tasks and the admission decision.

Order: effective priority (base + aging boost), then earliest deadline, then arrival. A task
starts when concurrency, its execution's max_parallel, its pools, the ledger (declared
cpu / memory), less what reservations hold, and measured load (critical tasks bypass only
this) all have room. A blocked
entry is parked under its cause (a `Blocker`) and comes back only when that cause
changes, so 100,000 queued tasks cost O(log n) each. The engine submits and releases;
`entry.on_admit(entry)` is called synchronously when a task may start. It never runs tasks.
Where blocked entries wait and how they come back: `Parking` (parking.py); which entries
are queued, by id and in order, for views: `QueueIndex` (queue_index.py).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
import time as _time
from collections import defaultdict
from collections.abc import Callable

from l3tui.config.schema import Scheduling
from l3tui.engine.clock import Clock, SystemClock
from l3tui.engine.resources.ledger import Ledger
from l3tui.engine.resources.reservations import ReservationBook
from l3tui.engine.scheduling.admission import (
    Causes,
    LoadBlocker,
    LoadGate,
    PoolBlocker,
    TimeBlocker,
)
from l3tui.engine.scheduling.aging import AgingLadder
from l3tui.engine.scheduling.parking import Parking
from l3tui.engine.scheduling.queue_entry import (
    ADMITTED,
    INF,
    WITHDRAWN,
    Blocker,
    MainBlocker,
    QueueEntry,
    waiting,
)
from l3tui.engine.scheduling.queue_index import QueueIndex
from l3tui.engine.scheduling.reasons import explain
from l3tui.engine.scheduling.slots import Slots

log = logging.getLogger(__name__)
__all__ = ["QueueEntry", "TaskScheduler"]
_heappush, _heappop = heapq.heappush, heapq.heappop


class TaskScheduler(Parking):
    """Priority queue with concurrency, max_parallel, pool, ledger and load admission."""

    def __init__(self, settings: Scheduling, clock: Clock, ledger: Ledger | None = None,
                 book: ReservationBook | None = None) -> None:  # fmt: skip
        self.clock = clock
        # The C functions themselves when the clock is the real one: this is per task.
        real = isinstance(clock, SystemClock)
        self._time: Callable[[], float] = _time.time if real else clock.time
        self._monotonic: Callable[[], float] = _time.monotonic if real else clock.monotonic
        self.ledger = ledger or Ledger(INF, 2**62, clock.time)
        self.ledger.on_freed(self._ledger_freed)
        self.book = book or ReservationBook(self.ledger, clock.time)
        self.book.on_pools_freed(self._pools_freed)
        self.running: set[QueueEntry] = set()
        self.held: set[str | tuple[str, str]] = set()
        self._version = 0
        """With arrivals and admissions, the queue's `version` (each counted once, here)."""
        self._draining = ""  # `draining`
        self._totals: defaultdict[str, float] = defaultdict(float)
        self._waited = 0.0
        """`wait_totals`, less what release admitted after waiting on "concurrency" alone."""
        self.queued_memory_mb = 0
        self.admitted_total = 0
        self.parked_total = 0
        """Times an entry was set aside under a cause: stays O(entries), never O(n^2)."""
        self.main = MainBlocker()
        self.causes = Causes()
        self.slots = Slots(self.ledger, self.causes, self.book)
        self.pool_used = self.slots.pool_used
        self.running_per_group = self.slots.running_per_group
        """Slots in use (the same dicts `slots` keeps)."""
        self.timed = TimeBlocker()
        self.index = QueueIndex()
        self._arrivals = self.index.pending.append
        self._main_heap = self.main.heap
        self._delegates = self.main.delegates
        self._sizes, self._reserved = self.slots.pool_sizes, self.book.pool_reserved
        """The same objects, one attribute away: the admission loop reads them per task."""
        self._standins: dict[QueueEntry, Blocker] = {}
        """Entries in the main heap standing for the cause they were parked under."""
        self._submitted = self._withdrawn = 0
        """With `admitted_total`: what is queued (`queue_length`) and the `version`."""
        self._index_offset, self._prune_at = 0, 4096
        """`_submitted` plus this: at most the entries the index holds, queued or not (a
        newer entry of a task is not taken off); past `_prune_at` it forgets the others."""
        self._last_mono = -INF
        self._calm_until = -INF
        """Monotonic time before which nothing is due: the next aging step, or -inf while a
        not_before, ledger expiry or reservation is pending (`apply_due` sets it, see there)."""
        self.ledger.on_timed(self._timers_added)
        self.book.on_timed(self._timers_added)
        self._pumping = self._again = False
        self.timers_changed = asyncio.Event()
        self.configure(settings)
        self.load = LoadBlocker(self.gate, self.running)

    def configure(self, settings: Scheduling) -> None:
        """Apply (new) limits; waiting entries are re-judged against them."""
        self.settings = settings
        self._calm_until = -INF  # the aging ladder changes: the next `pump` looks again
        limits = settings.resource_limits
        self.max_concurrent = limits.max_concurrent_tasks
        self.slots.resize_pools(settings.pools)
        self.book.configure(settings.pools)
        old_gate = getattr(self, "gate", None)
        if old_gate is None:
            self.gate = LoadGate(limits.max_cpu_usage, limits.max_memory_usage, limits.hysteresis)
        else:
            old_gate.limit(limits.max_cpu_usage, limits.max_memory_usage, limits.hysteresis)
        self._gate_closed = self.gate.closed
        self._refast()
        aging = settings.aging
        previous = getattr(self, "aging", None)
        self.aging = AgingLadder(aging.interval / 1000, aging.step, aging.max_boost, self._rekey)
        self._level0 = self.aging.levels[0] if self.aging.levels else None
        if previous is not None:
            self.aging.restart(previous.waiting())
        if old_gate is not None:
            self._wake_all()
            self._version += 1
            self.pump()

    @property
    def wall_offset(self) -> float:
        """Wall minus monotonic time, now: entries keep only their monotonic time."""
        return self._time() - self._monotonic()

    # ------------------------------------------------------------------ engine side

    def submit(self, entry: QueueEntry) -> None:
        if entry._sched is not None:  # queued before (withdrawn, then queued again)
            entry.boost = 0
            entry._gen += 1
            entry._cause = "concurrency"
        entry._sched = self
        mono = self._monotonic()
        if mono <= self._last_mono:  # the clock did not move: arrival order still must
            mono = math.nextafter(self._last_mono, INF)
        self._last_mono = entry.enqueued_mono = entry._cause_since = mono
        self._arrivals(entry)  # filed in the index when someone reads it (if still queued)
        if self._submitted >= self._prune_at:  # looked at once per 4,096 arrivals
            self._prune()
        level0 = self._level0
        if level0 is not None:  # AgingLadder.add, inlined
            if not level0:
                due = self.aging.due = min(self.aging.due, mono + self.aging.interval)
                self._calm_until = min(self._calm_until, due)
            level0.append(entry)
        self._submitted += 1
        needs = entry._needs
        if self.held and self.is_held(entry):  # straight to its hold: no pass, no heap item
            self.queued_memory_mb += needs.memory_mb
            self._park(entry, self._held_cause(entry), mono)
            return
        full = len(self.running) >= self.max_concurrent
        if not needs.plain:
            self.queued_memory_mb += needs.memory_mb
            if full:  # blocked already? then parked now, not after waiting its turn for nothing
                one = needs.one_pool
                if one is None:
                    cause = self._check(entry)
                elif (self.pool_used.get(one[0], 0) + self._reserved.get(one[0], 0)
                      + one[1] > self._sizes.get(one[0], 0)):  # fmt: skip
                    cause = self.causes.get(("pool", *one)) or self.slots.shortfall(entry)
                else:
                    cause = None
                if cause is not None and one is not None and not self.book.active:
                    # _park, inlined for the common case: no reservation to name, and no
                    # wait to credit yet (it arrived just now)
                    _heappush(cause.heap, (-entry.priority, needs.key_deadline, mono,
                                           entry._gen, entry))  # fmt: skip
                    entry._home = cause
                    entry._cause = cause.category
                    self.parked_total += 1
                    return
                if cause is not None:
                    self._park(entry, cause, mono)
                    return
        if (not full and needs.plain and not self._main_heap and not self._delegates
                and mono < self._calm_until and len(self.running) < self._quick_limit):
            entry._home = ADMITTED  # nothing else queued, nothing due: it starts, no pass
            self.running.add(entry)
            self.admitted_total += 1  # and so `version` and `queue_length`
            self._hand_over(entry)
            return
        entry._home = self.main
        _heappush(self._main_heap, (-entry.priority, needs.key_deadline, mono, entry._gen,
                                    entry))  # fmt: skip
        if not full:
            self.pump()

    def withdraw(self, entry: QueueEntry) -> bool:
        """Take a queued entry out (cancel). False if it was not queued."""
        if entry._sched is not self or not waiting(entry):
            return False
        entry._home = WITHDRAWN
        entry._gen += 1  # every heap item of it is stale from now on
        self._leave_queue(entry, self._monotonic())
        self._version += 1
        origin = self._standins.pop(entry, None)
        if origin is not None:  # it stood for its cause: the next one must
            origin.delegated = False
            self._wake(origin)
            self.pump()
        return True

    def release(self, entry: QueueEntry) -> None:
        """The admitted entry's attempt ended: free what it held. Safe to call twice.
        One out, one in: when the best queued entry is plain (or asks one pool that has
        room) and nothing else is due, it takes the slot right here (`pump` does the same
        for every other case)."""
        running = self.running
        try:
            running.remove(entry)
        except KeyError:
            return  # not running: released already, or never admitted
        needs = entry._needs
        if needs.one_pool is not None:
            self._pool_freed(*needs.one_pool)  # Slots.give_back and _wake, inlined
        elif not needs.plain:
            for blocker in self.slots.give_back(entry):
                self._wake(blocker)
        if self._gate_closed and not running:
            self._wake(self.load)  # CPU alone no longer holds one task back
        if len(running) < self._quick_limit:
            heap, delegates = self._main_heap, self._delegates
            if delegates and (not heap or delegates[0] < heap[0]):
                heap = delegates
            if heap:
                item = heap[0]
                head = item[4]
                wants = head._needs
                one = wants.one_pool
                mono = self._monotonic()
                if (item[3] == head._gen and mono < self._calm_until
                        and (wants.plain or (one is not None and self.pool_used.get(one[0], 0)
                             + one[1] + self._reserved.get(one[0], 0)
                             <= self._sizes.get(one[0], 0)))):  # fmt: skip
                    _heappop(heap)  # its only current item: no other is left to make stale
                    head._home = ADMITTED
                    if head._cause == "concurrency":
                        self._waited += mono - head._cause_since
                    else:
                        self._totals[head._cause] += mono - head._cause_since
                    running.add(head)
                    self.admitted_total += 1  # and so `version` and `queue_length`
                    origin = self._standins.pop(head, None) if self._standins else None
                    if one is not None:
                        used = self.pool_used
                        taken = used[one[0]] = used.get(one[0], 0) + one[1]
                        if origin is not None:
                            origin.delegated = False
                            if (taken + one[1] + self._reserved.get(one[0], 0)
                                    <= self._sizes.get(one[0], 0)
                                    or not isinstance(origin, PoolBlocker)):  # fmt: skip
                                self._wake(origin)  # its next one, if its pool has room
                    elif origin is not None:
                        origin.delegated = False
                        self._wake(origin)
                    try:  # _hand_over, inlined
                        head.on_admit(head)
                    except Exception:
                        log.exception("on_admit of %s/%s failed", head.execution_id, head.task_id)
                        self.release(head)
                    return
            elif self._monotonic() < self._calm_until:  # nothing queued, nothing due: no pass
                self._version += 1
                return
        if self.pump() == 0:
            self._version += 1  # (an admission bumps it too)

    # ------------------------------------------------------------------ views

    def queue_length(self) -> int:
        return self._submitted - self.admitted_total - self._withdrawn

    def entry_for(self, execution_id: str, task_id: str) -> QueueEntry | None:
        """The queued entry of a task, if it is queued."""
        return self.index.get(execution_id, task_id)

    def queue(self, priority: int | None = None, limit: int | None = None) -> list[QueueEntry]:
        """Queued entries in dispatch order: the head off the heaps' tops when that is all
        that is asked, else from the index (see `QueueIndex.in_dispatch_order`)."""
        head = self.heads(limit) if limit is not None and priority is None else None
        return head if head is not None else self.index.in_dispatch_order(priority, limit)

    def reason_for(self, entry: QueueEntry) -> str:
        return explain(self, entry)

    def sweep(self) -> None:
        """Forget causes nobody waits on, and (once they outnumber the queue) entries that
        left it: a queue that drained does not keep its old entries (the timer loop)."""
        super().sweep()
        self._prune()

    def _prune(self) -> None:
        """Forget, in one pass, the entries that left the queue once they outnumber it (the
        per-execution index and the aging ladder each)."""
        bound = 2 * self.queue_length() + 4096
        if self._submitted + self._index_offset > bound:
            self._index_offset = self.index.prune() - self._submitted
        if self.aging.held() > bound:
            self.aging.prune()
        self._prune_at = self._submitted + 4096

    def waiting_longer_than(self, seconds: float, cap: int = 1000) -> list[QueueEntry]:
        """Up to `cap` entries that have waited more than `seconds`, oldest first."""
        return self.index.oldest(self.clock.monotonic() - seconds, cap)

    # ------------------------------------------------------------------ admission

    def _hand_over(self, entry: QueueEntry) -> None:
        """The admitted entry to its owner; the owner's bug must not leak the slot it got."""
        try:
            entry.on_admit(entry)
        except Exception:
            log.exception("on_admit of %s/%s failed", entry.execution_id, entry.task_id)
            self.release(entry)

    def pump(self) -> int:
        """Admit every queued entry that may start now, best first. The one path of every
        admission (submit, release, a cause clearing): this loop is the per-task cost."""
        running = self.running
        limit = self.max_concurrent
        if len(running) >= limit or self._draining:
            return 0  # timers are applied when a slot frees (and by `run` every second)
        if self._pumping:  # re-entered from a callback: the running pump goes round again
            self._again = True
            return 0
        self._pumping, self._quick_limit = True, 0
        main = self._main_heap
        delegates = self._delegates
        standins = self._standins
        used, sizes, reserved = self.pool_used, self._sizes, self._reserved
        admitted = 0
        waited = 0.0  # by "concurrency", the common cause, added to the totals once
        try:
            again = True
            while again:
                self._again = False
                mono = self._monotonic()
                if mono >= self._calm_until:
                    self.apply_due(mono, self._time())
                while len(running) < limit:
                    if delegates and (not main or delegates[0] < main[0]):
                        item = _heappop(delegates)
                    elif main:
                        item = _heappop(main)
                    else:
                        break
                    entry = item[4]
                    if item[3] != entry._gen:
                        continue  # stale: re-keyed, admitted or withdrawn since
                    origin = standins.pop(entry, None) if standins else None
                    if origin is not None:
                        origin.delegated = False
                    needs = entry._needs
                    one = needs.one_pool
                    if one is not None and self._fast:  # Slots.shortfall, inlined
                        cause = None
                        if used.get(one[0], 0) + reserved.get(one[0], 0) + one[1] > sizes.get(
                                one[0], 0):  # fmt: skip
                            cause = self.slots.shortfall(entry)
                        if cause is not None:
                            self._park(entry, cause, mono)
                            if origin is not None:
                                self._wake(origin)
                            continue
                    elif not (needs.plain and self._fast):
                        cause = self._check(entry)
                        if cause is not None:
                            self._park(entry, cause, mono)
                            if origin is not None:
                                self._wake(origin)  # its next-best takes the delegate's place
                            continue
                    # admitted: it leaves the queue (_leave_queue, inlined; the index prunes later)
                    entry._home = ADMITTED  # (its item, popped, was its only current one)
                    if entry._cause == "concurrency":
                        waited += mono - entry._cause_since
                    else:
                        self._totals[entry._cause] += mono - entry._cause_since
                    running.add(entry)
                    admitted += 1
                    if one is not None:  # Slots.take, inlined
                        taken = used[one[0]] = used.get(one[0], 0) + one[1]
                        # its pool's next entry comes forward only if there is room left
                        room = taken + reserved.get(one[0], 0) + one[1] <= sizes.get(one[0], 0)
                        if origin is not None and (room or not isinstance(origin, PoolBlocker)):
                            self._wake(origin)
                    else:
                        if not needs.plain:
                            self.queued_memory_mb -= needs.memory_mb
                            self.slots.take(entry)
                        if origin is not None:
                            self._wake(origin)
                    self._hand_over(entry)
                again = self._again and len(running) < limit
        finally:
            self._pumping = False
            self._quick_limit = self.max_concurrent if self._fast and not self._draining else 0
            if admitted:
                self.admitted_total += admitted  # and so `version` and `queue_length`
                self._waited += waited
        return admitted

    def _leave_queue(self, entry: QueueEntry, mono: float) -> None:
        totals = self._totals
        totals[entry._cause] += mono - entry._cause_since
        if self.index.remove(entry):
            self._index_offset -= 1
        self.queued_memory_mb -= entry._needs.memory_mb
        self._withdrawn += 1
