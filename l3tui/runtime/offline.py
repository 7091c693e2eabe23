"""Reservations made or cancelled while no l3tui runs: the state dir is locked and the store
opened as any Runtime does (without crash recovery: the next Runtime does that), the request
is checked against the config's capacity and the reservations the store holds, and the change
is written through the store's one writer, audit entry included. Nothing is scheduled here:
the next console, daemon or `l3tui run` loads what is recorded.
"""

from __future__ import annotations

import time
from pathlib import Path
from types import TracebackType

from l3tui.config.loader import Config
from l3tui.engine import events as ev
from l3tui.engine.api import OpResult, ReservationRequest
from l3tui.engine.bus import EventBus
from l3tui.engine.resources.ledger import Ledger, LedgerError
from l3tui.engine.resources.reservations import ReservationBook, ReservationError, to_event
from l3tui.engine.resources.sampler import PsutilSampler
from l3tui.errors import UsageError
from l3tui.runtime.resources import day_and_time, make_reservation, reserved_message
from l3tui.store import resources as stored
from l3tui.store.sqlite import Store


class OfflineReservations:
    """`async with OfflineReservations(config, state_dir, actor) as desk:` then reserve or
    cancel; the store is closed (everything committed) on leaving."""

    def __init__(self, config: Config | None, state_dir: Path, actor: str) -> None:
        """`config` gives the capacity and pools a new reservation is checked against (not
        needed to cancel one)."""
        self.state_dir = state_dir.expanduser().resolve()
        self.actor = actor
        self.bus = EventBus()
        self.store = Store(self.state_dir, actor=actor)
        cores, memory_mb = PsutilSampler(self.state_dir).capacity()
        settings = config.scheduling if config is not None else None
        limits = settings.resource_limits if settings is not None else None
        self.book = ReservationBook(Ledger((limits.cpu_cores if limits else None) or cores,
                                           (limits.memory_mb if limits else None) or memory_mb,
                                           time.time), time.time)  # fmt: skip
        self.book.configure(settings.pools if settings is not None else {})

    async def __aenter__(self) -> OfflineReservations:
        await self.store.open(self.bus, recover=False)
        try:
            now = time.time()
            for r, state in await self.store.read(stored.open_reservations):
                if r.ends_at > now:
                    try:
                        self.book.add(r, started=state == "active")
                    except LedgerError:
                        pass  # over today's capacity: the next Runtime cancels it, saying so
        except BaseException:
            await self.store.close()
            raise
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:  # fmt: skip
        await self.bus.durable()
        await self.store.close()

    async def reserve(self, request: ReservationRequest) -> OpResult:
        now = time.time()
        try:
            r = make_reservation(self.book, request, self.actor, now)
        except ReservationError as exc:
            self._refused("reservation.make", str(exc))
            return OpResult(False, str(exc))
        self.bus.publish(to_event(r, "made", now, self.actor))
        return OpResult(True, reserved_message(r, now), reservation_id=r.id)

    async def cancel(self, reservation_id: str) -> OpResult:
        now = time.time()
        try:
            r = await self.store.read(stored.resolve_reservation, reservation_id)
        except UsageError as exc:
            self._refused("reservation.cancel", str(exc))
            return OpResult(False, str(exc))
        if r.ends_at <= now:
            why = f"{r.label()} already ended at {day_and_time(r.ends_at, now)}"
            self._refused("reservation.cancel", why)
            return OpResult(False, why)
        self.bus.publish(to_event(r, "cancelled", now, self.actor))
        return OpResult(True, f"cancelled {r.label()}: {r.holds()} will not be held",
                        reservation_id=r.id)  # fmt: skip

    def _refused(self, action: str, why: str) -> None:
        self.bus.publish(ev.OperatorAction(at=time.time(), action=action, execution_id=None,
                                           task_id=None, applied=False, detail=why,
                                           actor=self.actor))  # fmt: skip
