"""The Runtime's counter for the Resource Manager: at start it takes back from the store the
reservations still to come or in force, the findings still open and the last day of waits
(so advice survives a restart); it makes and cancels reservations (checked, then published:
the store records and audits them); and it keeps the advice consoles show (bottlenecks,
upgrade advice, right-sizing from the store's history) fresh.

It decides nothing about admission: the scheduler reads the reservation book.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from dataclasses import replace
from functools import partial
from typing import Any

from l3tui.engine import events as ev
from l3tui.engine.api import AdviceView, OpResult, ReservationRequest, ReservationView
from l3tui.engine.bus import EventBus
from l3tui.engine.clock import Clock
from l3tui.engine.resources.bottlenecks import Finding
from l3tui.engine.resources.ledger import LedgerError
from l3tui.engine.resources.manager import ResourceManager
from l3tui.engine.resources.reservations import (
    Reservation,
    ReservationBook,
    ReservationError,
    from_request,
    new_reservation_id,
    to_event,
)
from l3tui.engine.resources.usage import MIN_RUNS, Sizing, rank, size_task
from l3tui.store import resources as stored
from l3tui.store.sqlite import Store

log = logging.getLogger(__name__)

DAY_S = 86400.0
HISTORY_S = 30 * DAY_S
"""Right-sizing looks at runs of executions created in the last 30 days."""
RUNS = 10
"""... the last this many runs of each task."""
REFRESH_DELAY_S = 2.0
"""After an execution ends, right-sizing is read again once its end is on disk (batched)."""
REFRESH_EVERY_S = 60.0
"""... but at most this often: it reads the last month's runs, and changes slowly."""


def finding_from_row(row: dict[str, Any]) -> Finding:
    return Finding(str(row["kind"]), str(row["severity"]), str(row["summary"]),
                   tuple(str(e) for e in row.get("evidence") or ()),
                   str(row["suggestion"] or ""), float(row["first_seen"]))  # fmt: skip


def reservation_view(r: Reservation, now: float) -> ReservationView:
    return ReservationView(r.id, r.cpu, r.memory_mb, r.pools, r.starts_at, r.ends_at, r.reason,
                           r.actor, r.state(now))  # fmt: skip


def sizing_advice(s: Sizing) -> AdviceView:
    return AdviceView("rightsizing", f"{s.workflow_id}/{s.task_id}",
                      "warning" if s.verdict == "under" else "info", s.summary, s.block(),
                      s.evidence)  # fmt: skip


def make_reservation(book: ReservationBook, request: ReservationRequest, actor: str,
                     now: float, reservation_id: str | None = None) -> Reservation:  # fmt: skip
    """A new reservation from a request, checked against the book (ReservationError).
    `reservation_id`: the id it must have (a decision's, so acting twice is seen), else a
    new one."""
    if reservation_id is not None:
        if reservation_id in book.upcoming:
            raise ReservationError(f"refused: {book.upcoming[reservation_id].label()} exists "
                                   "already")  # fmt: skip
        return book.check(from_request(request, reservation_id, actor, now), now)
    r = from_request(request, new_reservation_id(), actor, now)
    while r.id in book.upcoming:
        r = replace(r, id=new_reservation_id())
    return book.check(r, now)


def reserved_message(r: Reservation, now: float) -> str:
    when = f"from {day_and_time(r.starts_at, now)}" if r.starts_at > now + 1 else "from now"
    reason = f" ({r.reason})" if r.reason else ""
    return f"reserved {r.id}: {r.holds()} {when} until {day_and_time(r.ends_at, now)}{reason}"


def day_and_time(at: float, now: float) -> str:
    """`18:00` today, `tomorrow 18:00`, else `2026-12-01 18:00` (machine-local)."""
    day = time.strftime("%Y-%m-%d", time.localtime(at))
    if day == time.strftime("%Y-%m-%d", time.localtime(now)):
        return time.strftime("%H:%M", time.localtime(at))
    if day == time.strftime("%Y-%m-%d", time.localtime(now + 86400)):
        return "tomorrow " + time.strftime("%H:%M", time.localtime(at))
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(at))


def _subject(kind: str) -> str:
    """`upgrade_pool_flutter_build` -> `pool flutter_build`; `upgrade_memory` -> `memory`."""
    what = kind.removeprefix("upgrade_")
    return "pool " + what[5:] if what.startswith("pool_") else what


class ResourceDesk:
    """Reservations and advice for one Runtime."""

    def __init__(self, resources: ResourceManager, bus: EventBus, clock: Clock,
                 store: Store | None) -> None:  # fmt: skip
        self.resources = resources
        self.book = resources.reservations
        self.bus = bus
        self.clock = clock
        self.store = store
        """None when nothing is recorded (`l3tui run --no-record`)."""
        self.sizings: tuple[AdviceView, ...] = ()
        self._refresh: asyncio.Task[None] | None = None
        self._refreshed_at = -REFRESH_EVERY_S

    # ------------------------------------------------------------------ start

    async def load(self) -> None:
        """Take back what the store kept: reservations, open findings, the last day."""
        if self.store is None:
            return
        now = self.clock.time()
        for r, state in await self.store.read(stored.open_reservations):
            if r.ends_at <= now:  # its time ran out while no l3tui ran
                self.bus.publish(to_event(r, "ended", now, "scheduler (after a restart)"))
                continue
            try:
                self.book.add(r, started=state == "active")
            except LedgerError as exc:  # the capacity was lowered below it since
                self.bus.publish(to_event(r, "cancelled", now, "l3tui (start)"))
                self.bus.publish(ev.SystemNotice(
                    at=now, topic="resources", severity="warning",
                    message=f"{r.label()} cancelled: it no longer fits the configured "
                    f"capacity ({exc})"))  # fmt: skip
        waits = await self.store.read(stored.blocked_hours, now - 25 * 3600)
        peaks = await self.store.read(stored.hourly_peaks, now - 25 * 3600)
        rows = await self.store.read(partial(stored.findings, active_only=True))
        self.resources.restore(waits, peaks, [finding_from_row(r) for r in rows])
        await self.refresh_sizings()

    # ------------------------------------------------------------------ reservations

    async def reserve(self, request: ReservationRequest, actor: str,
                      reservation_id: str | None = None) -> OpResult:  # fmt: skip
        now = self.clock.time()
        try:
            r = make_reservation(self.book, request, actor, now, reservation_id)
        except ReservationError as exc:
            return self._refused("reservation.make", str(exc), actor)
        self.bus.publish(to_event(r, "made", now, actor))
        self.book.add(r)  # "started" follows at once when it starts now
        return OpResult(True, reserved_message(r, now), reservation_id=r.id)

    async def cancel(self, reservation_id: str, actor: str) -> OpResult:
        try:
            r = self.book.cancel(reservation_id)
        except ReservationError as exc:
            return self._refused("reservation.cancel", str(exc), actor)
        self.bus.publish(to_event(r, "cancelled", self.clock.time(), actor))
        return OpResult(True, f"cancelled {r.label()}: {r.holds()} is free again",
                        reservation_id=r.id)  # fmt: skip

    def _refused(self, action: str, why: str, actor: str) -> OpResult:
        self.bus.publish(ev.OperatorAction(at=self.clock.time(), action=action,
                                           execution_id=None, task_id=None, applied=False,
                                           detail=why, actor=actor))  # fmt: skip
        return OpResult(False, why)

    def views(self) -> tuple[ReservationView, ...]:
        now = self.clock.time()
        ordered = sorted(self.book.upcoming.values(), key=lambda r: (r.starts_at, r.id))
        return tuple(reservation_view(r, now) for r in ordered)

    # ------------------------------------------------------------------ advice

    def advice(self) -> tuple[AdviceView, ...]:
        """Bottlenecks now, then upgrade advice, then right-sizing (under before over)."""
        live = [AdviceView("bottleneck", f.kind, f.severity, f.summary, f.suggestion,
                           f.evidence, f.since) for f in self.resources.detector.active.values()]
        upgrades = [AdviceView("upgrade", _subject(f.kind), f.severity, f.summary, f.suggestion,
                               f.evidence, f.since)
                    for f in self.resources.suggested.values()]  # fmt: skip
        return (*live, *upgrades, *self.sizings)

    def on_event(self, event: ev.Event) -> None:
        """A bus listener: an execution's end brings new runs to size from."""
        if not isinstance(event, ev.ExecutionFinished) or self.store is None:
            return
        if self._refresh is None or self._refresh.done():
            self._refresh = asyncio.get_running_loop().create_task(
                self._refresh_later(), name="advice-refresh")

    async def _refresh_later(self) -> None:
        since = time.monotonic() - self._refreshed_at
        await asyncio.sleep(max(REFRESH_DELAY_S, REFRESH_EVERY_S - since))
        await self.bus.durable()
        await self.refresh_sizings()

    async def refresh_sizings(self) -> None:
        if self.store is None:
            return
        self._refreshed_at = time.monotonic()
        since = self.clock.time() - HISTORY_S
        try:
            tasks = await self.store.read(partial(stored.task_usage, runs=RUNS, since=since))
        except (sqlite3.Error, RuntimeError) as exc:  # closed, or a disk error: keep the last
            log.warning("right-sizing not refreshed: %s", exc)
            return
        sizings = [size_task(t["workflow_id"], t["task_id"], t["declared_cpu"],
                             t["declared_memory_mb"], t["runs"], MIN_RUNS) for t in tasks]
        self.sizings = tuple(sizing_advice(s) for s in rank(s for s in sizings
                                                             if s is not None and s.actionable))

    async def close(self) -> None:
        if self._refresh is not None:
            self._refresh.cancel()
            await asyncio.gather(self._refresh, return_exceptions=True)
