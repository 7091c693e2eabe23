"""The Store: one SQLite file in the state dir, written by one batched writer that is a
durable subscriber of the event bus, read through separate connections (WAL: readers never
block the writer).

Group commit: the writer takes everything queued (up to `batch_rows` events), writes it in
one transaction, commits, then acknowledges; the engine's `await bus.durable()` after a task
succeeded therefore returns once that success is on disk, and many tasks share one commit.

Degraded mode (disk full, read-only file, I/O errors): a failing commit is retried a few
times within ~0.3 s; if it still fails the store publishes a SystemNotice (topic "store",
severity "error"), keeps the events in memory and *acknowledges them*, so the engine keeps
running tasks rather than stalling, at the price of durability until the disk recovers.
Writes are retried with backoff; once one succeeds, everything held is written in order
and a notice says so. What was committed before is never touched.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from l3tui.config.schema import Retention
from l3tui.engine import events as ev
from l3tui.store import queries
from l3tui.store.audit import chain
from l3tui.store.database import WRITER_PRAGMAS, connect_readonly, db_path, prepare
from l3tui.store.lock import StateLock, read_holder
from l3tui.store.recovery import (
    RecoveryReport,
    find_interrupted,
    find_survivors,
    recorded_processes,
    recovery_events,
    terminate_groups,
)
from l3tui.store.rows import Batch, BatchBuilder

log = logging.getLogger(__name__)
T = TypeVar("T")

QUICK_RETRIES = (0.02, 0.08, 0.2)
"""Delays before declaring the store degraded: a brief lock or hiccup is not an outage."""
MAX_BACKOFF_S = 5.0
MAX_HELD_EVENTS = 500_000
PRUNE_EVERY_S = 3600.0


@dataclass(frozen=True, slots=True)
class ScheduleState:
    """What the store remembers of a recurring task between runs."""

    last_fire: float | None
    enabled: bool | None
    last_outcome: str


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
        batch_rows: int = 2000,
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
        self.dropped_events = 0
        self.committed_events = 0
        self.commits = 0
        self._bus: ev.EventBus | None = None
        self._sub: ev.Subscription | None = None
        self._conn: aiosqlite.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._reader_lock = asyncio.Lock()
        self._write_lock = asyncio.Lock()
        self._writer: asyncio.Task[None] | None = None
        self._builder = BatchBuilder(actor)
        self._held: list[ev.Event] = []
        self._audit_head: tuple[int, str] = (0, "0" * 64)
        self._last_prune = 0.0
        self._backoff = 0.5

    # ------------------------------------------------------------------ lifecycle

    async def open(
        self, bus: ev.EventBus, *, grace_s: float = 10.0, recover: bool = True
    ) -> RecoveryReport:
        """Lock the state dir, prepare the database, recover from a crash, start writing.
        Raises LockedError or StateError (one line each) when the store cannot be used."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        previous = read_holder(self.lock.path)
        self.lock.acquire()
        try:
            self.writable = await asyncio.to_thread(prepare, self.path)
            self._reader = await asyncio.to_thread(connect_readonly, self.path)
            self._conn = await aiosqlite.connect(self.path, isolation_level=None)
            await self._configure_writer()
            head = await self.read(queries.audit_head)
            self._audit_head = head
            report = RecoveryReport(previous_holder=previous.describe() if previous else "")
            if recover:
                await self._recover(report, grace_s)
        except BaseException:
            await self._close_connections()
            self.lock.release()
            raise
        self._bus = bus
        self._sub = bus.subscribe("store", durable=True, accepts=_accepts)
        self._writer = asyncio.get_running_loop().create_task(self._write_loop(),
                                                              name="store-writer")  # fmt: skip
        if report.needed:
            why = (f"l3tui stopped while this ran; recovered at "
                   f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(self.now()))}")  # fmt: skip
            for event in recovery_events(report, self.now(), why):
                bus.publish(event)
            await bus.durable()
        return report

    async def _configure_writer(self) -> None:
        assert self._conn is not None
        for pragma in WRITER_PRAGMAS:
            try:
                await self._conn.execute(f"PRAGMA {pragma}")
            except sqlite3.OperationalError as exc:  # a read-only file keeps its journal mode
                log.warning("store: PRAGMA %s failed on %s: %s", pragma, self.path, exc)

    async def _recover(self, report: RecoveryReport, grace_s: float) -> None:
        interrupted = await self.read(find_interrupted)
        report.interrupted = interrupted
        if not interrupted:
            return
        ids = [i.execution_id for i in interrupted]
        recorded = await self.read(recorded_processes, ids)
        groups = await asyncio.to_thread(find_survivors, recorded, set(ids),
                                         self.state_dir / "runs")  # fmt: skip
        report.killed_groups = sorted(groups)
        report.killed_pids = sorted(pid for pids in groups.values() for pid in pids)
        report.survivors = await terminate_groups(groups, grace_s)

    async def close(self, wait_s: float = 10.0) -> None:
        """Write what is queued (waiting at most `wait_s`), then close and unlock."""
        if self._sub is not None:
            self._sub.close()
        if self._writer is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._writer), wait_s)
            except TimeoutError:
                log.error("store: writer did not finish within %.0fs; closing", wait_s)
                self._writer.cancel()
                await asyncio.gather(self._writer, return_exceptions=True)
            self._writer = None
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
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                await conn.close()
            except sqlite3.Error as exc:
                log.warning("store: closing %s: %s", self.path, exc)

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

    async def _next_while_degraded(self, sub: ev.Subscription) -> list[ev.Event]:
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

    async def _commit_with_retries(self, events: list[ev.Event]) -> str | None:
        """None when committed; otherwise why it failed (after a few quick retries)."""
        for delay in (*QUICK_RETRIES, None):
            try:
                await self._commit(events)
                return None
            except (sqlite3.OperationalError, OSError) as exc:
                if delay is None:
                    return str(exc)
                await asyncio.sleep(delay)
            except sqlite3.DatabaseError as exc:  # malformed pages: retrying will not help
                return f"{type(exc).__name__}: {exc}"
            except (sqlite3.IntegrityError, sqlite3.InterfaceError, ValueError) as exc:
                # A bug in how we map events to rows; the batch can never be written.
                log.exception("store: a batch of %d events was rejected", len(events))
                self._notice(f"store rejected {len(events)} event(s): {exc} (a bug; please "
                             "report it with the log)", "error")  # fmt: skip
                return None
        return "unreachable"

    async def _commit(self, events: list[ev.Event]) -> None:
        batch = self._builder.build(events)
        assert self._conn is not None
        conn = self._conn
        async with self._write_lock:
            await conn.execute("BEGIN IMMEDIATE")
            try:
                head = await _apply(conn, batch, self._audit_head)
                await conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    try:
                        await conn.execute("ROLLBACK")
                    except sqlite3.Error as exc:
                        log.warning("store: rollback failed: %s", exc)
                raise
        self._audit_head = head
        self.committed_events += len(events)
        self.commits += 1

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
                await self._commit(chunk)
            except (sqlite3.OperationalError, sqlite3.DatabaseError, OSError) as exc:
                self.degraded = str(exc)
                self._backoff = min(self._backoff * 2, MAX_BACKOFF_S)
                return
            del self._held[: len(chunk)]
            self.held_events = len(self._held)
        if self.degraded is not None:
            late = self.committed_events
            self.degraded = None
            lost = f"; {self.dropped_events} event(s) were dropped" if self.dropped_events else ""
            self._notice(f"the state database {self.path} is writable again; held history "
                         f"written ({late} events committed so far){lost}", "info")  # fmt: skip

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
        metrics_cutoff = now - self.retention.metrics_days * 86400
        events_cutoff = now - self.retention.events_days * 86400
        assert self._conn is not None
        conn = self._conn
        try:
            async with self._write_lock:
                await conn.execute("BEGIN IMMEDIATE")
                try:
                    await conn.execute("DELETE FROM resource_metrics WHERE bucket < ?",
                                       (metrics_cutoff,))  # fmt: skip
                    await conn.execute(
                        "DELETE FROM events WHERE at < ? AND (execution_id IS NULL OR "
                        "execution_id NOT IN (SELECT id FROM executions WHERE state IN "
                        "('pending', 'running', 'paused')))", (events_cutoff,),
                    )  # fmt: skip
                    await conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        await conn.execute("ROLLBACK")
                    raise
        except sqlite3.Error as exc:
            log.warning("store: pruning old history failed: %s", exc)

    # ------------------------------------------------------------------ schedules

    async def load_schedule_state(self) -> dict[str, ScheduleState]:
        rows = await self.read(queries.schedule_states)
        return {r["id"]: ScheduleState(r["last_fire"], None if r["enabled"] is None
                                       else bool(r["enabled"]), r["last_outcome"])
                for r in rows}  # fmt: skip

    async def save_schedule_state(
        self, schedule_id: str, last_fire: float | None, enabled: bool | None
    ) -> None:
        """Upsert one recurring task's state (None keeps the stored value)."""
        await self._write_now(
            "INSERT INTO schedule_state (id, last_fire, enabled, updated_at) VALUES (?,?,?,?) "
            "ON CONFLICT(id) DO UPDATE SET last_fire = coalesce(excluded.last_fire, last_fire), "
            "enabled = coalesce(excluded.enabled, enabled), updated_at = excluded.updated_at",
            (schedule_id, last_fire, None if enabled is None else int(enabled), self.now()),
        )

    async def _write_now(self, sql: str, params: tuple[Any, ...]) -> None:
        assert self._conn is not None
        conn = self._conn
        async with self._write_lock:
            await conn.execute(sql, params)  # autocommit: one statement, one transaction

    async def flush(self) -> None:
        """Return once everything published so far is committed (or held, if degraded)."""
        if self._bus is not None:
            await self._bus.durable()


_UPDATE_SQL: dict[tuple[str, tuple[str, ...]], str] = {}
_KEYS = {
    "executions": ("id",),
    "task_runs": ("execution_id", "task_id"),
    "task_attempts": ("execution_id", "task_id", "attempt"),
}


async def _updates(conn: aiosqlite.Connection, table: str, updates: dict[Any, dict[str, Any]]
                   ) -> None:  # fmt: skip
    groups: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
    for key, values in updates.items():
        columns = tuple(values)
        keys = key if isinstance(key, tuple) else (key,)
        groups.setdefault(columns, []).append((*values.values(), *keys))
    for columns, params in groups.items():
        sql = _UPDATE_SQL.get((table, columns))
        if sql is None:
            where = " AND ".join(f"{k} = ?" for k in _KEYS[table])
            sets = ", ".join(f"{c} = ?" for c in columns)
            sql = _UPDATE_SQL[(table, columns)] = f"UPDATE {table} SET {sets} WHERE {where}"
        await conn.executemany(sql, params)


_SQL_DEFINITION = "INSERT OR IGNORE INTO definitions VALUES (?, ?, ?, ?, ?)"
_SQL_EXECUTION = (
    "INSERT OR IGNORE INTO executions (id, workflow_id, workflow_name, definition_hash, params, "
    "trigger, parent_id, priority, state, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, "
    "'pending', ?)"
)
_SQL_TASK = (
    "INSERT OR IGNORE INTO task_runs (execution_id, task_id, name, position) VALUES (?, ?, ?, ?)"
)
_SQL_ATTEMPT = (
    "INSERT OR REPLACE INTO task_attempts (execution_id, task_id, attempt, started_at, wait_s, "
    "pid, pgid, proc_start, log_path, command) SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE EXISTS "
    "(SELECT 1 FROM task_runs WHERE execution_id = ? AND task_id = ?)"
)
_SQL_EVENT = "INSERT INTO events (at, kind, execution_id, data) VALUES (?, ?, ?, ?)"
_SQL_METRIC = (
    "INSERT INTO task_metrics (at, execution_id, workflow_id, task_id, name, value) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
_SQL_ALERT = (
    "INSERT INTO alerts VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
    "rule = excluded.rule, severity = excluded.severity, state = excluded.state, "
    "message = excluded.message, source = excluded.source, updated_at = excluded.updated_at"
)
_SQL_SCHEDULE = (
    "INSERT INTO schedule_state (id, last_fire, enabled, last_outcome, updated_at) "
    "VALUES (?, ?, ?, coalesce(?, ''), ?) ON CONFLICT(id) DO UPDATE SET "
    "last_fire = coalesce(excluded.last_fire, last_fire), "
    "enabled = coalesce(excluded.enabled, enabled), "
    "last_outcome = CASE WHEN excluded.last_fire IS NULL THEN last_outcome "
    "ELSE excluded.last_outcome END, updated_at = excluded.updated_at"
)
_SQL_SAMPLE = (
    "INSERT INTO resource_metrics VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(name, bucket) DO UPDATE "
    "SET avg = (avg * n + excluded.avg * excluded.n) / (n + excluded.n), "
    "max = max(max, excluded.max), min = min(min, excluded.min), n = n + excluded.n"
)
_SQL_AUDIT = "INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"


async def _apply(
    conn: aiosqlite.Connection, b: Batch, audit_head: tuple[int, str]
) -> tuple[int, str]:
    """Write a prepared batch inside the caller's transaction; returns the new audit head."""
    if b.definitions:
        await conn.executemany(_SQL_DEFINITION, b.definitions)
    if b.executions:
        await conn.executemany(_SQL_EXECUTION, b.executions)
    if b.task_runs:
        await conn.executemany(_SQL_TASK, b.task_runs)
    if b.attempts:
        await conn.executemany(_SQL_ATTEMPT, b.attempts)
    if b.task_updates:
        await _updates(conn, "task_runs", b.task_updates)
    if b.exec_updates:
        await _updates(conn, "executions", b.exec_updates)
    if b.attempt_updates:
        await _updates(conn, "task_attempts", b.attempt_updates)
    if b.events:
        await conn.executemany(_SQL_EVENT, b.events)
    if b.task_metrics:
        await conn.executemany(_SQL_METRIC, b.task_metrics)
    if b.alerts:
        await conn.executemany(_SQL_ALERT, b.alerts)
    if b.schedules:
        await conn.executemany(_SQL_SCHEDULE, b.schedules)
    if b.samples:
        await conn.executemany(_SQL_SAMPLE, [
            (name, bucket, acc[0] / acc[3], acc[1], acc[2], int(acc[3]))
            for (name, bucket), acc in b.samples.items()
        ])  # fmt: skip
    if b.audit:
        linked = chain(b.audit, *audit_head)
        await conn.executemany(_SQL_AUDIT, [
            (c.seq, c.entry.at, c.entry.actor, c.entry.action, c.entry.target, c.entry.outcome,
             c.entry.detail, c.prev_hash, c.hash) for c in linked
        ])  # fmt: skip
        return linked[-1].seq, linked[-1].hash
    return audit_head

