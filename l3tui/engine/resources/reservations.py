"""Reservations: declared CPU, memory and pool slots held back from admission for a window
of time (a release build done by hand at 18:00, a maintenance window, what the coordinator
promised a plan). The book checks a new one against the machine and against the others it
overlaps, makes each take effect at its start (an allocation in the ledger, reserved pool
slots) and lets it go at its end or when cancelled, and says which reservation holds what,
so a waiting task's reason can name it.

Bookkeeping only: it never admits a task (the scheduler reads it) and never writes anything
(the Runtime publishes and persists the changes it returns).
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

from l3tui.engine import events as ev
from l3tui.engine.api import ReservationRequest
from l3tui.engine.resources.ledger import Ledger
from l3tui.sanitize import clean

PAST_SLACK_S = 60.0
"""A start this much in the past is taken as "now" (clocks of two processes, typing time)."""
MAX_LENGTH_S = 31 * 86400.0
"""A reservation holds capacity for at most a month: longer is a config change."""


class ReservationError(Exception):
    """A reservation that cannot be made or changed; the message is one line for people."""


@dataclass(frozen=True, slots=True)
class Reservation:
    """Capacity held from `starts_at` to `ends_at` (wall-clock epoch seconds)."""

    id: str
    cpu: float
    memory_mb: int
    pools: tuple[tuple[str, int], ...]
    starts_at: float
    ends_at: float
    reason: str
    actor: str
    created_at: float
    cancelled_at: float | None = None

    def state(self, now: float) -> str:
        """scheduled, active, ended or cancelled."""
        if self.cancelled_at is not None:
            return "cancelled"
        if now < self.starts_at:
            return "scheduled"
        return "active" if now < self.ends_at else "ended"

    def holds(self) -> str:
        """`4 cpu, 8.0 GB, pool flutter_build=1`."""
        parts = []
        if self.cpu:
            parts.append(f"{self.cpu:g} cpu")
        if self.memory_mb:
            parts.append(mb(self.memory_mb))
        parts += [f"pool {name}={slots}" for name, slots in self.pools]
        return ", ".join(parts) or "nothing"

    def label(self) -> str:
        """`reservation r3f2a91 (release build)`: how reasons and hints name it."""
        return f"reservation {self.id}" + (f" ({self.reason})" if self.reason else "")


def to_event(r: Reservation, change: str, at: float, actor: str) -> ev.ReservationChanged:
    return ev.ReservationChanged(
        at=at, reservation_id=r.id, change=change, cpu=r.cpu, memory_mb=r.memory_mb,
        pools=r.pools, starts_at=r.starts_at, ends_at=r.ends_at, reason=r.reason,
        actor=actor, created_at=r.created_at,
    )  # fmt: skip


def from_event(e: ev.ReservationChanged) -> Reservation:
    return Reservation(e.reservation_id, e.cpu, e.memory_mb, tuple(e.pools), e.starts_at,
                       e.ends_at, e.reason, e.actor, e.created_at)  # fmt: skip


def from_request(request: ReservationRequest, reservation_id: str, actor: str,
                 now: float) -> Reservation:  # fmt: skip
    """The reservation a request asks for, made at `now` (not checked: see `check`)."""
    starts = now if request.starts_at is None else request.starts_at
    return Reservation(reservation_id, request.cpu, request.memory_mb, tuple(request.pools),
                       starts, starts + request.duration_s, request.reason, actor, now)  # fmt: skip


def _well_formed(r: Reservation) -> Reservation:
    """Numbers that are numbers (a request may come over the daemon's socket), a reason that
    is one clean line."""
    numbers = (r.cpu, r.memory_mb, r.starts_at, r.ends_at)
    if not all(isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)
               for x in numbers):  # fmt: skip
        raise ReservationError("refused: cpu, memory and times must be numbers")
    if r.cpu < 0 or r.memory_mb < 0 or r.memory_mb != int(r.memory_mb):
        raise ReservationError("refused: cpu and memory must be positive (memory in whole MB)")
    pools: dict[str, int] = {}
    for pair in r.pools:
        if (len(pair) != 2 or not isinstance(pair[0], str) or not isinstance(pair[1], int)
                or isinstance(pair[1], bool) or pair[1] < 1):  # fmt: skip
            raise ReservationError(f"refused: a pool is NAME=SLOTS with SLOTS >= 1, got {pair!r}")
        pools[pair[0]] = pools.get(pair[0], 0) + pair[1]  # the same pool twice adds up
    reason = " ".join(clean(str(r.reason)).split())[:200]
    return replace(r, memory_mb=int(r.memory_mb), pools=tuple(pools.items()), reason=reason)


def new_reservation_id() -> str:
    return "r" + secrets.token_hex(3)


def mb(value: int) -> str:
    return f"{value / 1024:.1f} GB" if value >= 1024 else f"{value} MB"


def clock_text(at: float, now: float) -> str:
    """`20:00` within the next day, else `2026-10-25 20:00` (machine-local time)."""
    if abs(at - now) < 20 * 3600:
        return time.strftime("%H:%M", time.localtime(at))
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(at))


class ReservationBook:
    """Reservations not yet over, applied to the ledger and to pool counts as time passes.
    Listeners hear which pools came back when one ends (the ledger's own `on_freed` covers
    CPU and memory)."""

    def __init__(self, ledger: Ledger, now: Callable[[], float]) -> None:
        self.ledger = ledger
        self._now = now
        self.pool_sizes: dict[str, int] = {}
        self.upcoming: dict[str, Reservation] = {}
        """Scheduled or active (not ended, not cancelled), by id."""
        self.active: dict[str, Reservation] = {}
        self.pool_reserved: dict[str, int] = {}
        """Pool slots held by active reservations, by pool (the scheduler adds them to
        what its tasks hold)."""
        self.due_at = math.inf
        """The next start or end among `upcoming`."""
        self._pools_freed: list[Callable[[Iterable[str]], None]] = []
        self._changed: list[Callable[[Reservation, str], None]] = []
        self._timed: list[Callable[[], None]] = []
        self._applying = False

    def configure(self, pool_sizes: Mapping[str, int]) -> None:
        self.pool_sizes = dict(pool_sizes)

    def on_pools_freed(self, callback: Callable[[Iterable[str]], None]) -> None:
        self._pools_freed.append(callback)

    def on_timed(self, callback: Callable[[], None]) -> None:
        """Called whenever a reservation is added: from then on time may start or end it."""
        self._timed.append(callback)

    def on_change(self, callback: Callable[[Reservation, str], None]) -> None:
        """Called with (reservation, "started" | "ended") as time makes them so."""
        self._changed.append(callback)

    # ------------------------------------------------------------------ checking

    def check(self, r: Reservation, now: float | None = None) -> Reservation:
        """The reservation as it will be kept (a start a moment ago becomes now), or
        ReservationError saying in one line why it cannot be made."""
        now = self._now() if now is None else now
        r = _well_formed(r)
        if r.ends_at <= r.starts_at:
            raise ReservationError("refused: it must last a while (--for 2h, or --until after "
                                   "--from)")  # fmt: skip
        if r.ends_at <= now:
            raise ReservationError(f"refused: it would end at {clock_text(r.ends_at, now)}, "
                                   "which is in the past")  # fmt: skip
        if r.starts_at < now - PAST_SLACK_S:
            raise ReservationError(f"refused: it would start at {clock_text(r.starts_at, now)}, "
                                   "which is in the past (use --from now)")  # fmt: skip
        if r.ends_at - max(r.starts_at, now) > MAX_LENGTH_S:
            raise ReservationError("refused: a reservation lasts at most 31 days (for longer, "
                                   "lower resource_limits or pools in l3-scheduling.yml)")
        if not (r.cpu or r.memory_mb or r.pools):
            raise ReservationError("refused: it holds nothing (give --cpu, --memory or --pool)")
        r = replace(r, starts_at=max(r.starts_at, now))
        ledger = self.ledger
        if r.cpu > ledger.cpu_capacity:
            raise ReservationError(f"refused: {r.cpu:g} cpu is more than the "
                                   f"{ledger.cpu_capacity:g} the scheduler has in all "
                                   "(resource_limits.cpu_cores, or the machine's cores)")
        if r.memory_mb > ledger.memory_capacity_mb:
            raise ReservationError(f"refused: {mb(r.memory_mb)} is more than the "
                                   f"{mb(ledger.memory_capacity_mb)} the scheduler has in all "
                                   "(resource_limits.memory_mb, or the machine's memory)")
        for name, slots in r.pools:
            size = self.pool_sizes.get(name)
            if size is None:
                known = ", ".join(sorted(self.pool_sizes)) or "none defined"
                raise ReservationError(f"refused: there is no pool {name!r} in "
                                       f"scheduling.pools ({known})")  # fmt: skip
            if slots > size:
                raise ReservationError(f"refused: pool {name} has {size} slot(s), not {slots}")
        self._check_overlaps(r, now)
        return r

    def _check_overlaps(self, r: Reservation, now: float) -> None:
        """At every moment of its window, it and the reservations overlapping it must fit
        in the capacity together (checked at each start inside the window, where the sum
        can only grow)."""
        others = [o for o in self.upcoming.values()
                  if o.id != r.id and o.starts_at < r.ends_at and r.starts_at < o.ends_at]
        for moment in sorted({r.starts_at, *(o.starts_at for o in others
                                             if o.starts_at > r.starts_at)}):  # fmt: skip
            during = [o for o in others if o.starts_at <= moment < o.ends_at]
            if not during:
                continue
            names = ", ".join(f"{o.label()}, {clock_text(o.starts_at, now)}-"
                              f"{clock_text(o.ends_at, now)}" for o in during)  # fmt: skip
            at = clock_text(moment, now)
            cpu = r.cpu + sum(o.cpu for o in during)
            if r.cpu and cpu > self.ledger.cpu_capacity + 1e-9:
                raise ReservationError(f"refused: it overlaps {names}: together they would hold "
                                       f"{cpu:g} of {self.ledger.cpu_capacity:g} cpu at {at}")
            memory = r.memory_mb + sum(o.memory_mb for o in during)
            if r.memory_mb and memory > self.ledger.memory_capacity_mb:
                raise ReservationError(f"refused: it overlaps {names}: together they would hold "
                                       f"{mb(memory)} of {mb(self.ledger.memory_capacity_mb)} "
                                       f"at {at}")  # fmt: skip
            for name, slots in r.pools:
                held = slots + sum(s for o in during for n, s in o.pools if n == name)
                if held > self.pool_sizes.get(name, 0):
                    raise ReservationError(f"refused: it overlaps {names}: together they would "
                                           f"hold {held} of the {self.pool_sizes.get(name, 0)} "
                                           f"slot(s) of pool {name} at {at}")  # fmt: skip

    # ------------------------------------------------------------------ changes

    def add(self, r: Reservation, *, started: bool = False) -> list[tuple[Reservation, str]]:
        """Keep a checked reservation (or one loaded from the store: not checked again, it
        was when it was made); returns what started at once. `started`: it is recorded as
        in force already, so taking effect again is not announced again."""
        self.upcoming[r.id] = r
        for callback in self._timed:
            callback()
        if started and r.starts_at <= self._now() < r.ends_at:
            self._take(r)
        self._retime()
        return self.apply_due(self._now())

    def cancel(self, reservation_id: str, now: float | None = None) -> Reservation:
        """End it now; ReservationError when no reservation still to come or in force
        matches (a unique prefix of its id will do)."""
        now = self._now() if now is None else now
        r = self.find(reservation_id)
        del self.upcoming[r.id]
        self._retime()
        self._release(r)
        return replace(r, cancelled_at=now)

    def find(self, reservation_id: str) -> Reservation:
        wanted = reservation_id.strip()
        if wanted in self.upcoming:
            return self.upcoming[wanted]
        found = [r for r in self.upcoming.values() if wanted and r.id.startswith(wanted)]
        if len(found) == 1:
            return found[0]
        if found:
            raise ReservationError(f"{wanted!r} is ambiguous: "
                                   f"{', '.join(sorted(r.id for r in found))}")  # fmt: skip
        raise ReservationError(f"no reservation still to come or in force matches {wanted!r} "
                               "(see `l3tui reservations`)")  # fmt: skip

    def apply_due(self, now: float) -> list[tuple[Reservation, str]]:
        """Start and end what is due; returns (reservation, "started" | "ended") in order."""
        if now < self.due_at or self._applying:
            return []
        # Releasing wakes the scheduler, whose admission pass may call this again: once.
        self._applying = True
        changes: list[tuple[Reservation, str]] = []
        try:
            # Endings first, in the order they came: what one frees, the next may take.
            for r in sorted(self.upcoming.values(), key=lambda r: (r.ends_at, r.id)):
                if r.ends_at <= now:
                    del self.upcoming[r.id]
                    self._release(r)
                    changes.append((r, "ended"))
            for r in sorted(self.upcoming.values(), key=lambda r: (r.starts_at, r.id)):
                if r.starts_at <= now and r.id not in self.active:
                    self._take(r)
                    changes.append((r, "started"))
        finally:
            self._applying = False
            self._retime()
        for r, what in changes:
            for callback in self._changed:
                callback(r, what)
        return changes

    def _take(self, r: Reservation) -> None:
        self.active[r.id] = r
        if r.cpu or r.memory_mb:
            # The ledger refuses only what exceeds its capacity (checked on making it); tasks
            # still running from before may over-commit until they end, as after a resize.
            self.ledger.allocate(f"reservation:{r.id}", r.cpu, r.memory_mb, r.label(),
                                 expires_at=r.ends_at)  # fmt: skip
        for name, slots in r.pools:
            self.pool_reserved[name] = self.pool_reserved.get(name, 0) + slots

    def _release(self, r: Reservation) -> None:
        if self.active.pop(r.id, None) is None:
            return
        freed = []
        for name, slots in r.pools:
            left = self.pool_reserved.get(name, 0) - slots
            if left > 0:
                self.pool_reserved[name] = left
            else:
                self.pool_reserved.pop(name, None)
            freed.append(name)
        self.ledger.release(f"reservation:{r.id}")  # wakes tasks that wait on cpu / memory
        if freed:
            for callback in self._pools_freed:
                callback(freed)

    def _retime(self) -> None:
        times = [r.ends_at if r.id in self.active else r.starts_at for r in self.upcoming.values()]
        self.due_at = min(times, default=math.inf)

    # ------------------------------------------------------------------ for reasons

    def holding(self, *, cpu: bool = False, memory: bool = False,
                pool: str | None = None) -> list[Reservation]:  # fmt: skip
        """Active reservations that hold some of what is asked, earliest end first."""
        out = [r for r in self.active.values()
               if (cpu and r.cpu) or (memory and r.memory_mb)
               or (pool is not None and any(n == pool for n, _ in r.pools))]  # fmt: skip
        return sorted(out, key=lambda r: (r.ends_at, r.id))

    def note(self, held: list[Reservation], what: Callable[[Reservation], str]) -> str:
        """`; reservation r3f2a91 (release build) holds 4 cpu until 20:00` (first two)."""
        if not held:
            return ""
        now = self._now()
        words = [f"{r.label()} holds {what(r)} until {clock_text(r.ends_at, now)}"
                 for r in held[:2]]  # fmt: skip
        more = f" and {len(held) - 2} more" if len(held) > 2 else ""
        return "; " + ", ".join(words) + more
