"""TaskScheduler: the one queue of ready tasks and the admission decision.

Order: effective priority (base + aging boost), then earliest deadline, then arrival. A task
starts when concurrency, its execution's max_parallel, its pools, the ledger (declared
cpu / memory), less what reservations hold, and measured load (critical tasks bypass only
this) all have room. A blocked
entry is parked under its cause (a `Blocker`) and comes back only when that cause
changes, so 100,000 queued tasks cost O(log n) each. The engine submits and releases;
`entry.on_admit(entry)` is called synchronously when a task may start. It never runs tasks.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time as _time
from collections import defaultdict
from collections.abc import Callable, Iterable

from l3tui.config.schema import Scheduling
from l3tui.engine.clock import Clock, SystemClock
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
from l3tui.engine.scheduling.queue_entry import INF, PLAIN, Blocker, QueueEntry, peek
from l3tui.engine.scheduling.reasons import explain
from l3tui.engine.scheduling.slots import Slots

log = logging.getLogger(__name__)
__all__ = ["QueueEntry", "TaskScheduler"]


def _dispatch_key(entry: QueueEntry) -> tuple[int, float, int]:
    return -entry.priority - entry.boost, entry._deadline, entry.seq


class TaskScheduler:
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
        self.version = 0
        """Bumped on every change of the queue, so views can cache."""
        self.draining = ""
        """Set (to the reason) when nothing more may start: the daemon is stopping."""
        self.wait_totals: defaultdict[str, float] = defaultdict(float)
        """Seconds tasks have waited, by cause (memory, cpu, pool:NAME, concurrency, ...)."""
        self.queued_memory_mb = 0
        self.wall_offset = 0.0
        """Wall minus monotonic time at the last submit: entries keep only the monotonic."""
        self.admitted_total = 0
        self.parked_total = 0
        """Times an entry was set aside under a cause: stays O(entries), never O(n^2)."""
        self.main = Blocker(("main",), "concurrency")
        self.causes = Causes()
        self.slots = Slots(self.ledger, self.causes, self.book)
        self.pool_used = self.slots.pool_used
        self.running_per_group = self.slots.running_per_group
        """Slots in use (the same dicts `slots` keeps)."""
        self.timed = TimeBlocker()
        self._entries: dict[tuple[str, str], QueueEntry] = {}
        self._queued = 0
        self._seq = itertools.count()
        self._pumping = False
        self._again = False
        self.timers_changed = asyncio.Event()
        self.configure(settings)
        self.load = LoadBlocker(self.gate, self.running)

    def configure(self, settings: Scheduling) -> None:
        """Apply (new) limits; waiting entries are re-judged against them."""
        self.settings = settings
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
        self._fast = not self.held and not self._gate_closed
        """No holds and no load limit in force: plain entries need no checks."""
        aging = settings.aging
        previous = getattr(self, "aging", None)
        self.aging = AgingLadder(aging.interval / 1000, aging.step, aging.max_boost, self._rekey)
        if previous is not None:
            self.aging.restart(previous.waiting())
        if old_gate is not None:
            self._wake_all()
            self.version += 1
            self.pump()

    # ------------------------------------------------------------------ engine side

    def submit(self, entry: QueueEntry) -> None:
        entry.seq = next(self._seq)
        entry.enqueued_mono = mono = self._monotonic()
        self.wall_offset = self._time() - mono
        entry.admitted = entry.withdrawn = False
        entry.boost = 0
        entry._gen += 1
        entry._sched = self
        needs = entry._needs
        entry._deadline = INF if needs.deadline is None else needs.deadline
        entry._plain = needs is PLAIN or needs.plain()
        entry._cause, entry._cause_since = "concurrency", mono
        entry._home = self.main
        item = (-entry.priority, entry._deadline, entry.seq, entry._gen, entry)
        heapq.heappush(self.main.heap, item)
        entry._ekey = ekey = (entry.execution_id, entry.task_id)
        self._entries[ekey] = entry
        levels = self.aging.levels
        if levels:  # AgingLadder.add, inlined
            if not levels[0]:
                self.aging.due = min(self.aging.due, mono + self.aging.interval)
            levels[0].append(entry)
        self.queued_memory_mb += needs.memory_mb
        self._queued += 1
        self.version += 1
        if len(self.running) < self.max_concurrent:
            self.pump()

    def withdraw(self, entry: QueueEntry) -> bool:
        """Take a queued entry out (cancel). False if it was not queued."""
        if entry.admitted or entry.withdrawn or entry._sched is not self:
            return False
        entry.withdrawn = True
        entry._gen += 1  # every heap item of it is stale from now on
        self._leave_queue(entry, self.clock.monotonic())
        self.version += 1
        origin = entry._origin
        if origin is not None:  # it stood for its cause: the next one must
            entry._origin = None
            origin.delegated = False
            self._wake(origin)
            self.pump()
        return True

    def release(self, entry: QueueEntry) -> None:
        """The admitted entry's attempt ended: free what it held. Safe to call twice."""
        running = self.running
        try:
            running.remove(entry)
        except KeyError:
            return  # not running: released already, or never admitted
        if not entry._plain:
            for blocker in self.slots.give_back(entry):
                self._wake(blocker)
        if not running and self._gate_closed:
            self._wake(self.load)  # CPU alone no longer holds one task back
        self.version += 1
        self.pump()

    def hold(self, key: str | tuple[str, str]) -> None:
        """Stop admitting an execution (`exec_id`) or one task (`(exec_id, task_id)`)."""
        self.held.add(key)
        self._fast = False
        self.version += 1

    def unhold(self, key: str | tuple[str, str]) -> None:
        self.held.discard(key)
        self._fast = not self.held and not self._gate_closed
        blocker = self.causes.get(("held", key))
        if blocker is not None:
            self._wake(blocker)
        self.version += 1
        self.pump()

    def is_held(self, entry: QueueEntry) -> bool:
        return entry.execution_id in self.held or (entry.execution_id, entry.task_id) in self.held

    def update_load(self, cpu: float | None, memory: float | None) -> None:
        """New measured readings (percent of the machine) from the resource manager."""
        if self.gate.update(cpu, memory):
            self.version += 1
        self._gate_closed = self.gate.closed
        self._fast = not self.held and not self._gate_closed
        if self.load.heap and self.load.clear():
            self._wake(self.load)
            self.pump()

    # ------------------------------------------------------------------ views

    def queue_length(self) -> int:
        return self._queued

    def entry_for(self, execution_id: str, task_id: str) -> QueueEntry | None:
        """The queued entry of a task, if it is queued."""
        return self._entries.get((execution_id, task_id))

    def queue(self, priority: int | None = None, limit: int | None = None) -> list[QueueEntry]:
        """Queued entries in dispatch order (optionally of one base priority level). With a
        `limit`, only the first ones are ordered and no key is kept for the rest: a pane
        showing 30 of 100,000 costs one pass and 30 small tuples, not 100,000."""
        entries = self._entries.values()
        chosen = entries if priority is None else [e for e in entries if e.priority == priority]
        if limit is not None and 4 * limit < len(chosen):
            return heapq.nsmallest(limit, chosen, key=_dispatch_key)
        return sorted(chosen, key=_dispatch_key)[:limit]

    def reason_for(self, entry: QueueEntry) -> str:
        return explain(self, entry)

    def waiting_longer_than(self, seconds: float, cap: int = 1000) -> list[QueueEntry]:
        """Up to `cap` entries that have waited more than `seconds`, oldest first."""
        cutoff = self.clock.monotonic() - seconds
        out: list[QueueEntry] = []
        for entry in self._entries.values():
            if entry.enqueued_mono > cutoff or len(out) >= cap:
                break
            out.append(entry)
        return out

    # ------------------------------------------------------------------ admission

    def pump(self) -> int:
        """Admit every queued entry that may start now, best first."""
        running = self.running
        limit = self.max_concurrent
        if len(running) >= limit or self.draining:
            return 0  # timers are applied when a slot frees (and by `run` every second)
        if self._pumping:  # re-entered from a callback: the running pump goes round again
            self._again = True
            return 0
        self._pumping = True
        self._again = False
        try:
            admitted = self._admit_from_heads(running, limit)
            while self._again and len(running) < limit:
                self._again = False
                admitted += self._admit_from_heads(running, limit)
        finally:
            self._pumping = False
        return admitted

    def _admit_from_heads(self, running: set[QueueEntry], limit: int) -> int:
        mono = self._monotonic()
        if self.aging.due <= mono or self.timed.timed or self.ledger.expiries or self.book.upcoming:
            self.apply_due(mono, self._time())
        main = self.main.heap
        heappop = heapq.heappop
        admitted = 0
        while len(running) < limit:
            while main:  # drop stale items (re-keyed, admitted, withdrawn) at the head
                item = main[0]
                entry = item[4]
                if item[3] == entry._gen:
                    break
                heappop(main)
            else:
                break
            heappop(main)
            origin = entry._origin
            if origin is not None:
                entry._origin = None
                origin.delegated = False
            if entry._plain and self._fast:
                self._admit(entry, mono)
                admitted += 1
            else:
                cause = self._check(entry)
                if cause is None:
                    self._admit(entry, mono)
                    admitted += 1
                else:
                    self._park(entry, cause, mono)
            if origin is not None:
                self._wake(origin)  # its next-best entry takes the delegate's place
        return admitted

    def _wake(self, blocker: Blocker) -> None:
        """The cause may be gone: move its best entry into the main heap as its delegate.
        One delegate at a time keeps dispatch order exact without re-scanning anyone."""
        if blocker.delegated or not blocker.clear():
            return
        item = peek(blocker.heap)
        if item is None:
            return  # nobody waits on it (any more); `_sweep` forgets it later
        heapq.heappop(blocker.heap)
        entry = item[4]
        entry._home = self.main
        entry._origin = blocker
        blocker.delegated = True
        heapq.heappush(self.main.heap, item)

    def apply_due(self, mono: float, now: float) -> None:
        """Aging steps, not_before times, reservations starting or ending, that are due."""
        if self.aging.due <= mono and self.aging.apply(mono):
            self.version += 1
        timed = self.timed.timed
        if timed and timed[0][0] <= now:
            self.timed.release_due(now, self.main)
            self.version += 1
        if self.book.due_at <= now:
            self.book.apply_due(now)
            self.version += 1
        expiries = self.ledger.expiries
        if expiries and expiries[0][0] <= now:
            self.ledger.expire()

    def _check(self, entry: QueueEntry) -> Blocker | None:
        if self.held and self.is_held(entry):
            key: str | tuple[str, str] = (
                entry.execution_id if entry.execution_id in self.held
                else (entry.execution_id, entry.task_id)
            )  # fmt: skip
            return self.causes.get_or_make(("held", key), lambda: HeldBlocker(key, self.held))
        if not entry._plain:
            if entry.not_before is not None and entry.not_before > self._time():
                return self.timed
            cause = self.slots.shortfall(entry)
            if cause is not None:
                return cause
        if self._gate_closed and not entry.critical and self.load.holds():
            return self.load
        return None

    def _admit(self, entry: QueueEntry, mono: float) -> None:
        entry.admitted = True
        entry._gen += 1  # every heap item of it is stale from now on
        # _leave_queue, inlined: this is the hot path of every task
        self.wait_totals[entry._cause] += mono - entry._cause_since
        entry._home = None
        other = self._entries.pop(entry._ekey, None)
        if other is not entry and other is not None:  # not ours to remove
            self._entries[entry._ekey] = other
        self._queued -= 1
        self.running.add(entry)
        if not entry._plain:
            self.queued_memory_mb -= entry.memory_mb
            self.slots.take(entry)
        self.admitted_total += 1
        self.version += 1
        try:
            entry.on_admit(entry)
        except Exception:  # the caller's bug must not leak the slot it was given
            log.exception("on_admit of %s/%s failed", entry.execution_id, entry.task_id)
            self.release(entry)

    def _leave_queue(self, entry: QueueEntry, mono: float) -> None:
        totals = self.wait_totals
        totals[entry._cause] += mono - entry._cause_since
        entry._home = None
        other = self._entries.pop(entry._ekey, None)
        if other is not entry and other is not None:  # not ours to remove
            self._entries[entry._ekey] = other
        self.queued_memory_mb -= entry.memory_mb
        self._queued -= 1

    def _park(self, entry: QueueEntry, blocker: Blocker, mono: float) -> None:
        if blocker is self.timed:
            if self.timed.park(entry):
                self.timers_changed.set()  # the timer loop may be sleeping past this time
        else:
            heapq.heappush(blocker.heap, (-entry.priority - entry.boost, entry._deadline,
                                          entry.seq, entry._gen, entry))  # fmt: skip
        entry._home = blocker
        self.parked_total += 1
        category = self.gate.category if blocker is self.load else blocker.category
        if self.book.active and isinstance(blocker, FitBlocker | PoolBlocker) \
                and blocker.by_reservation():  # fmt: skip
            category = "reservation"
        if category != entry._cause:
            totals = self.wait_totals
            totals[entry._cause] += mono - entry._cause_since
            entry._cause, entry._cause_since = category, mono
        self.version += 1

    def sweep(self) -> None:
        """Forget causes nobody waits on any more (cancelled while held, finished groups)."""
        self.causes.sweep(lambda blocker: not blocker.delegated and peek(blocker.heap) is None)

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
        self.version += 1
        if not self._pumping:
            self.pump()

    def _wake_all(self) -> None:
        for blocker in [*self.causes.all(), self.load]:
            self._wake(blocker)

    # ------------------------------------------------------------------ aging

    def _rekey(self, entry: QueueEntry) -> None:
        home = entry._home
        if home is None or home is self.timed:
            return
        entry._gen += 1
        heapq.heappush(home.heap, (-entry.priority - entry.boost, entry._deadline, entry.seq,
                                   entry._gen, entry))  # fmt: skip
