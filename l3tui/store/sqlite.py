"""The Store: one SQLite file in the state dir, written by one batched writer that is a
durable subscriber of the event bus, read through separate connections (WAL: readers never
block the writer).

Group commit: the writer takes everything queued (up to `batch_rows` events), writes it in
one transaction in its own thread, commits, then acknowledges; the engine's
`await bus.durable()` after a task succeeded therefore returns once that success is on disk,
and many tasks share one commit.

Degraded mode (disk full, read-only file, I/O errors): a failing commit is retried a few
times within ~0.3 s; if it still fails the store publishes a SystemNotice (topic "store",
severity "error"), keeps the events in memory and *acknowledges them*, so the engine keeps
running tasks rather than stalling, at the price of durability until the disk recovers.
Writes are retried with backoff; once one succeeds, everything held is written in order
and a notice (severity "info") says so. What was committed before is never touched.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from l3tui.config.schema import Retention
from l3tui.engine import events as ev
from l3tui.engine.bus import EventBus, Subscription
from l3tui.store.database import connect_readonly, db_path, prepare
from l3tui.store.lock import StateLock, read_holder
from l3tui.store.private import private_database, private_state_dir
from l3tui.store.recovery import (
    RecoveryReport,
    find_interrupted,
    find_survivors,
    recorded_processes,
    recovery_events,
    terminate_groups,
)
from l3tui.store.writer import Writer

log = logging.getLogger(__name__)
T = TypeVar("T")

QUICK_RETRIES = (0.02, 0.08, 0.2)
"""Delays before declaring the store degraded: a brief lock or hiccup is not an outage."""
MAX_BACKOFF_S = 5.0
MAX_HELD_EVENTS = 500_000
PRUNE_EVERY_S = 3600.0
# Errors that may go away (full disk, read-only file, I/O): hold and retry. Other
# DatabaseErrors (IntegrityError, ProgrammingError...) mean a bug in the mapping.
_TRANSIENT = (sqlite3.OperationalError, OSError)


def _accepts(event: ev.Event) -> bool:
    return not isinstance(event, ev.TaskOutput)  # output lives in log files


class Store:
    """Open with `await store.open(bus)`, close with `await store.close()`."""

    def __init__(
        self,
        state_dir: Path,
        *,
        actor: str = "l3tui",
        retention: Retention | None = None,
        batch_rows: int = 4000,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.state_dir = state_dir
        self.path = db_path(state_dir)
        self.actor = actor
        self.retention = retention or Retention()
        self.batch_rows = batch_rows
        self.now = now
        self.lock = StateLock(state_dir)
        self.writable = False
        self.degraded: str | None = None
        """Why writes fail right now, or None."""
        self.held_events = 0
        self.notes: list[str] = []
        """Warnings found on opening (a state directory that was open to other users)."""
        self.dropped_events = 0
        self.committed_events = 0
        self.commits = 0
        self.last_commit_s = 0.0
        """How long the newest commit took (health: store write latency)."""
        self._bus: EventBus | None = None
        self._sub: Subscription | None = None
        self._writer = Writer(self.path, actor)
        self._pool: ThreadPoolExecutor | None = None
        self._reader: sqlite3.Connection | None = None
        self._reader_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._held: list[ev.Event] = []
        self._last_prune = 0.0
        self._backoff = 0.5

    # ------------------------------------------------------------------ lifecycle

    async def open(
        self, bus: EventBus, *, grace_s: float = 10.0, recover: bool = True
    ) -> RecoveryReport:
        """Lock the state dir, prepare the database, recover from a crash, start writing.
        Raises LockedError or StateError (one line each) when the store cannot be used."""
        # Private before anything is written in it: created 0700, the database 0600.
        note = private_state_dir(self.state_dir)
        self.notes = [note] if note else []
        previous = read_holder(self.lock.path)
        self.lock.acquire()
        try:
            await asyncio.to_thread(private_database, self.path)
            self.writable = await asyncio.to_thread(prepare, self.path)
            self._reader = await asyncio.to_thread(connect_readonly, self.path)
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="l3tui-store")
            await self._in_writer(self._writer.open)
            report = RecoveryReport(previous_holder=previous.describe() if previous else "")
            if recover:
                await self._recover(report, grace_s)
        except BaseException:
            await self._close_connections()
            self.lock.release()
            raise
        self._bus = bus
        self._sub = bus.subscribe("store", durable=True, accepts=_accepts)
        self._task = asyncio.get_running_loop().create_task(self._write_loop(),
                                                            name="store-writer")  # fmt: skip
        for note in self.notes:
            log.warning("store: %s", note)
            bus.publish(ev.SystemNotice(at=self.now(), topic="state", message=note,
                                        severity="warning"))  # fmt: skip
        if report.needed:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.now()))
            why = f"l3tui stopped while this ran; recovered at {stamp}"
            for event in recovery_events(report, self.now(), why):
                bus.publish(event)
            await bus.durable()
        return report

    async def _in_writer(self, fn: Callable[..., T], *args: Any) -> T:
        assert self._pool is not None
        return await asyncio.get_running_loop().run_in_executor(self._pool, partial(fn, *args))

    async def _recover(self, report: RecoveryReport, grace_s: float) -> None:
        interrupted = await self.read(find_interrupted)
        report.interrupted = interrupted
        ids = [i.execution_id for i in interrupted]
        recorded = await self.read(recorded_processes, ids) if ids else []
        # Even with nothing recorded as running, a previous instance killed between spawning
        # a task and committing it leaves processes behind: look for them every time.
        groups = await asyncio.to_thread(find_survivors, recorded, self.state_dir / "runs")
        if not groups:
            return
        report.killed_groups = sorted(groups)
        report.killed_pids = sorted(pid for pids in groups.values() for pid in pids)
        report.survivors = await terminate_groups(groups, grace_s)

    async def close(self, wait_s: float = 10.0) -> None:
        """Write what is queued (waiting at most `wait_s`), then close and unlock."""
        if self._sub is not None:
            self._sub.close()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), wait_s)
            except TimeoutError:
                log.error("store: writer did not finish within %.0fs; closing", wait_s)
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._held:
            log.error("store: %d event(s) could not be written to %s (%s)", len(self._held),
                      self.path, self.degraded)  # fmt: skip
        await self._close_connections()
        self.lock.release()

    async def _close_connections(self) -> None:
        # The reader first: the last connection to close checkpoints the WAL into the
        # database file, and only the writer can.
        if self._reader is not None:
            reader, self._reader = self._reader, None
            reader.close()
        if self._pool is not None:
            try:
                await self._in_writer(self._writer.close)
            except sqlite3.Error as exc:
                log.warning("store: closing %s: %s", self.path, exc)
            pool, self._pool = self._pool, None
            pool.shutdown(wait=False)

    # ------------------------------------------------------------------ reading

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a query function `fn(conn, *args)` on the reader connection, in a thread."""
        if self._reader is None:
            raise RuntimeError("store is not open")
        reader = self._reader
        async with self._reader_lock:
            return await asyncio.to_thread(fn, reader, *args)

    # ------------------------------------------------------------------ the writer

    async def _write_loop(self) -> None:
        sub = self._sub
        assert sub is not None
        while True:
            try:
                if self.degraded is None:
                    events = await sub.get_batch(self.batch_rows)
                else:
                    events = await self._next_while_degraded(sub)
            except StopAsyncIteration:
                break
            if self.degraded is None:
                error = await self._commit_with_retries(events)
                if error is None:
                    sub.ack(len(events))
                    await self._maybe_prune()
                    continue
                self._enter_degraded(error)
            self._hold(events)
            sub.ack(len(events))
            await self._flush_held()
        if self._held:
            await self._flush_held()

    async def _next_while_degraded(self, sub: Subscription) -> list[ev.Event]:
        """New events, or an empty list when it is time to retry the held ones."""
        try:
            await asyncio.wait_for(sub.get_batch_wait(), self._backoff)
        except TimeoutError:
            return []
        return sub.drain()

    def _hold(self, events: list[ev.Event]) -> None:
        self._held.extend(events)
        overflow = len(self._held) - MAX_HELD_EVENTS
        if overflow > 0:
            del self._held[:overflow]
            self.dropped_events += overflow
        self.held_events = len(self._held)

    def backlog(self) -> int:
        """Events published but not yet written (queued, or held while degraded)."""
        return (self._sub.pending() if self._sub is not None else 0) + self.held_events

    async def _commit(self, events: list[ev.Event]) -> None:
        started = time.perf_counter()
        await self._in_writer(self._writer.commit, events)
        self.last_commit_s = time.perf_counter() - started
        self.committed_events += len(events)
        self.commits += 1

    async def _commit_with_retries(self, events: list[ev.Event]) -> str | None:
        """None when committed; otherwise why it failed (after a few quick retries)."""
        for delay in (*QUICK_RETRIES, None):
            try:
                await self._commit(events)
                return None
            except _TRANSIENT as exc:
                if delay is None:
                    return str(exc)
                await asyncio.sleep(delay)
            except sqlite3.DatabaseError as exc:
                if not isinstance(exc, sqlite3.IntegrityError | sqlite3.ProgrammingError):
                    return f"{type(exc).__name__}: {exc}"  # malformed pages and the like
                # A bug in how we map events to rows; this batch can never be written.
                log.exception("store: a batch of %d events was rejected", len(events))
                self._notice(f"store rejected {len(events)} event(s): {exc} (a bug; please "
                             "report it with the log)", "error")  # fmt: skip
                return None
        raise AssertionError("unreachable")

    def _enter_degraded(self, error: str) -> None:
        self.degraded = error
        self._backoff = 0.5
        self._notice(f"cannot write the state database {self.path}: {error}; tasks keep "
                     "running, their history is held in memory and writes are retried",
                     "error")  # fmt: skip

    async def _flush_held(self) -> None:
        """Write held events in order, a chunk per commit; stop at the first failure."""
        while self._held:
            chunk = self._held[: self.batch_rows]
            try:
                if self.degraded is not None and "readonly" in self.degraded.replace(" ", ""):
                    # SQLite decided the file was read-only when it opened it: ask again.
                    await self._in_writer(self._writer.open)
                await self._commit(chunk)
            except (*_TRANSIENT, sqlite3.DatabaseError) as exc:
                self.degraded = str(exc)
                self._backoff = min(self._backoff * 2, MAX_BACKOFF_S)
                return
            del self._held[: len(chunk)]
            self.held_events = len(self._held)
        if self.degraded is not None:
            self.degraded = None
            lost = f"; {self.dropped_events} event(s) were dropped" if self.dropped_events else ""
            self._notice(f"the state database {self.path} is writable again; the history "
                         f"held in memory is written{lost}", "info")  # fmt: skip

    def _notice(self, message: str, severity: str) -> None:
        log.log(logging.ERROR if severity == "error" else logging.INFO, "store: %s", message)
        if self._bus is not None:
            self._bus.publish(ev.SystemNotice(at=self.now(), topic="store", message=message,
                                              severity=severity))  # fmt: skip

    async def _maybe_prune(self) -> None:
        now = self.now()
        if now - self._last_prune < PRUNE_EVERY_S:
            return
        self._last_prune = now
        await self.prune(now)

    async def prune(self, now: float | None = None) -> None:
        """Delete what retention says is too old (resource metrics, old events)."""
        now = self.now() if now is None else now
        try:
            await self._in_writer(self._writer.prune,
                                  now - self.retention.metrics_days * 86400,
                                  now - self.retention.events_days * 86400)  # fmt: skip
        except sqlite3.Error as exc:
            log.warning("store: pruning old history failed: %s", exc)

    # ------------------------------------------------------------------ schedules

    async def execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        """One statement in its own transaction, on the writer's thread."""
        await self._in_writer(self._writer.execute, sql, params)

    async def flush(self) -> None:
        """Return once everything published so far is committed (or held, if degraded)."""
        if self._bus is not None:
            await self._bus.durable()
