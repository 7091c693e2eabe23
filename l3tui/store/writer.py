"""The store's single writer connection and the SQL that turns a prepared batch into rows.

Everything here runs in the store's own writer thread: a whole batch (mapping, inserts,
coalesced updates, audit chain, commit) is one call from the event loop, so a commit costs
one thread hop rather than one per statement, and the event loop never waits on SQLite or
fsync. bench/store.py measures the difference against aiosqlite on the same batches: equal
throughput, but a one-execution commit takes 1.7 ms here against 2.7 ms, and that commit
stands between a task's success and its dependants' start.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import sqlite3
import threading
from collections.abc import Callable, Container
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

from l3tui.engine import events as ev
from l3tui.store.audit import GENESIS, chain
from l3tui.store.database import BUSY_TIMEOUT_MS
from l3tui.store.rows import Batch, BatchBuilder, Pack

log = logging.getLogger(__name__)
T = TypeVar("T")


class DatabaseReplaced(Exception):
    """The database file was deleted, truncated or replaced under the writer: nothing it
    commits from now on would be kept (or it would corrupt what another file holds)."""

CHECKPOINT_PAGES = 4000
"""Checkpoint the WAL into the database file once it has this many pages (~16 MB), from the
writer between commits (autocheckpoint would run inside a commit that gates a dispatch)."""


class WriterThread:
    """The one thread every writer call runs in, in the order called. A call's result (or
    exception) reaches the event loop through one `call_soon_threadsafe`: no concurrent
    Future (with its condition), work item or chained callbacks per call as with
    `run_in_executor`, which cost ~20 us of the writer's and the loop's CPU per commit
    (a commit per process task). A daemon thread: a commit cut short by the interpreter's
    exit was acknowledged to nobody (SQLite rolls it back), and a store never closed does
    not keep the process alive."""

    def __init__(self, name: str) -> None:
        self._calls: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def call(self, fn: Callable[..., T], *args: Any,
             then: Callable[[T], None] | None = None) -> asyncio.Future[T]:  # fmt: skip
        """`fn(*args)` in the thread; its outcome is the future's. `then(result)`, when
        given, runs on the loop as the result arrives, in the same callback, before the
        future is settled: what it sets going (the store's acknowledgement, which wakes the
        engine) runs a loop turn sooner than what awaits the future."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._calls.put((loop, future, fn, args, then))
        return future

    def shutdown(self) -> None:
        """The thread ends once the calls already made have run."""
        self._calls.put(None)

    def _run(self) -> None:
        calls = self._calls
        while (item := calls.get()) is not None:
            loop, future, fn, args, then = item
            try:
                outcome, failed = fn(*args), False
            except BaseException as exc:  # handed to the caller, as an executor would
                outcome, failed = exc, True
            try:
                loop.call_soon_threadsafe(_settle, future, outcome, failed, then)
            except RuntimeError:  # the loop is closed: nobody waits for this any more
                pass
            del item, future, outcome, then  # nothing kept alive until the next call


def _settle(future: asyncio.Future[Any], outcome: Any, failed: bool,
            then: Callable[[Any], None] | None) -> None:  # fmt: skip
    if then is not None and not failed:
        try:
            then(outcome)
        except Exception as exc:  # the caller hears of it, as of the call's own failure
            outcome, failed = exc, True
    if future.done():  # cancelled (a timeout) meanwhile
        return
    if failed:
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


class Writer:
    """Owns the writer connection; every method is called from the writer thread only."""

    def __init__(self, path: Path, actor: str) -> None:
        self.path = path
        self.builder = BatchBuilder(actor)
        self.conn: sqlite3.Connection | None = None
        self.audit_head: tuple[int, str] = (0, GENESIS)
        self.wal_pages = 0
        self.identity: tuple[int, int] | None = None
        """(device, inode) of the file opened; checked before each commit."""
        self.size_seen = 0
        """The largest size seen: SQLite never shrinks the file (no VACUUM here)."""

    def open(self) -> None:
        """WAL lets readers run beside the writer. synchronous=NORMAL: a commit is in the WAL
        before it returns, so it survives the process being killed (kill -9, OOM); after an
        OS crash or power loss the database is intact but may lack the last commits. FULL
        (an fsync per commit) measured 0.7 ms more per commit on this kind of machine, on
        the path from a task's success to its dependants' start."""
        self.close()
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=True,
                               timeout=BUSY_TIMEOUT_MS / 1000)  # fmt: skip
        for pragma in ("journal_mode = WAL", "synchronous = NORMAL", "foreign_keys = ON",
                       f"busy_timeout = {BUSY_TIMEOUT_MS}", "wal_autocheckpoint = 0"):  # fmt: skip
            try:
                conn.execute(f"PRAGMA {pragma}")
            except sqlite3.OperationalError as exc:  # a read-only file keeps its journal mode
                log.warning("store: PRAGMA %s failed on %s: %s", pragma, self.path, exc)
        row = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        self.audit_head = (int(row[0]), str(row[1])) if row else (0, GENESIS)
        self.conn = conn
        st = os.stat(self.path)
        if self.identity is None:
            self.identity = (st.st_dev, st.st_ino)
        self.size_seen = max(self.size_seen, st.st_size)

    def probe(self) -> None:
        """Prove the file takes a commit now (a full disk or read-only file raises): the same
        schema version written again, one page in the write-ahead log."""
        assert self.conn is not None
        conn = self.conn
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(f"PRAGMA user_version = {version}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def check_file(self) -> None:
        """Raise DatabaseReplaced when the file at our path is no longer the one we write."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            raise DatabaseReplaced(f"{self.path} was deleted while l3tui was writing it") from None
        if self.identity is not None and (st.st_dev, st.st_ino) != self.identity:
            raise DatabaseReplaced(f"{self.path} was replaced by another file while l3tui was "
                                   "writing it")  # fmt: skip
        if st.st_size < self.size_seen:
            raise DatabaseReplaced(f"{self.path} was truncated ({self.size_seen:,} -> "
                                   f"{st.st_size:,} bytes) while l3tui was writing it")
        self.size_seen = st.st_size

    def close(self, checkpoint: bool = True) -> None:
        """`checkpoint=False` when the file is no longer ours (see DatabaseReplaced)."""
        conn, self.conn = self.conn, None
        if conn is None:
            return
        if checkpoint:
            try:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:
                log.info("store: final checkpoint skipped: %s", exc)
        conn.close()

    def commit(self, events: list[ev.Event]) -> None:
        """Map and write `events` in one transaction. Raises sqlite3 errors unchanged, and
        DatabaseReplaced when the file is not the one opened."""
        conn = self.conn
        if conn is None:
            raise sqlite3.OperationalError("the writer connection is closed")
        self.check_file()
        batch = self.builder.build(events)
        conn.execute("BEGIN IMMEDIATE")
        try:
            head = apply(conn, batch, self.audit_head)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error as exc:
                    log.warning("store: rollback failed: %s", exc)
            raise
        self.audit_head = head
        self.builder.committed(batch)
        self.wal_pages += 1 + len(events) // 20  # a rough count; the checkpoint says exactly
        if self.wal_pages >= CHECKPOINT_PAGES:
            self.checkpoint()

    def checkpoint(self) -> None:
        assert self.conn is not None
        try:
            busy, frames, _done = self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:
            log.warning("store: checkpoint failed: %s", exc)
            return
        self.wal_pages = 0 if not busy else frames // 2

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        """One statement in its own transaction (schedule state, pruning)."""
        if self.conn is None:
            raise sqlite3.OperationalError("the writer connection is closed")
        self.conn.execute(sql, params)

    def transact(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """`fn(conn)` inside one transaction (the coordinator's records): committed when
        it returns, rolled back when it raises."""
        conn = self.conn
        if conn is None:
            raise sqlite3.OperationalError("the writer connection is closed")
        self.check_file()
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(conn)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return result

    def prune(self, metrics_cutoff: float, events_cutoff: float) -> None:
        assert self.conn is not None
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("DELETE FROM resource_metrics WHERE bucket < ?", (metrics_cutoff,))
            conn.execute("DELETE FROM blocked_time WHERE bucket < ?", (metrics_cutoff,))
            conn.execute(
                "DELETE FROM events WHERE at < ? AND (execution_id IS NULL OR execution_id "
                "NOT IN (SELECT id FROM executions WHERE state IN ('pending', 'running', "
                "'paused')))", (events_cutoff,),
            )  # fmt: skip
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise


_UPDATE_SQL: dict[tuple[str, tuple[str, ...]], str] = {}
_KEYS = {
    "executions": ("id",),
    "task_runs": ("execution_id", "task_id"),
    "task_attempts": ("execution_id", "task_id", "attempt"),
}


def _updates(conn: sqlite3.Connection, table: str, updates: dict[Any, dict[str, Any]]
                   ) -> None:  # fmt: skip
    groups: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
    for key, values in updates.items():  # a row per task of the batch: no list made per row
        columns = tuple(values)
        row = (*values.values(), *key) if type(key) is tuple else (*values.values(), key)
        group = groups.get(columns)
        if group is None:
            groups[columns] = [row]
        else:
            group.append(row)
    for columns, params in groups.items():
        sql = _UPDATE_SQL.get((table, columns))
        if sql is None:
            where = " AND ".join(f"{k} = ?" for k in _KEYS[table])
            sets = ", ".join(f"{c} = ?" for c in columns)
            sql = _UPDATE_SQL[(table, columns)] = f"UPDATE {table} SET {sets} WHERE {where}"
        conn.executemany(sql, params)


def _inserts(conn: sqlite3.Connection, rows: dict[Any, dict[str, Any]],
             sql_for: Callable[[tuple[str, ...]], str], keys: tuple[str, ...] = ()
             ) -> None:  # fmt: skip
    """Insert rows that name different columns: one `executemany` per set of columns (a
    batch's rows mostly share one). `keys`: columns repeated after the values (for the
    statement's WHERE)."""
    groups: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
    for row in rows.values():
        params = (*row.values(), *[row[k] for k in keys]) if keys else tuple(row.values())
        columns = tuple(row)
        group = groups.get(columns)
        if group is None:
            groups[columns] = [params]
        else:
            group.append(params)
    for columns, params_list in groups.items():
        conn.executemany(sql_for(columns), params_list)


@lru_cache(maxsize=64)
def _sql_task(columns: tuple[str, ...]) -> str:
    return (f"INSERT OR IGNORE INTO task_runs ({', '.join(columns)}) VALUES "
            f"({', '.join('?' for _ in columns)})")  # fmt: skip


@lru_cache(maxsize=64)
def _sql_attempt(columns: tuple[str, ...]) -> str:
    """Inserted whole (replacing the row an AttemptOpened wrote), for an execution whose
    creation this writer committed: its task rows exist, no lookup of each first (~1 us
    per attempt)."""
    return (f"INSERT OR REPLACE INTO task_attempts ({', '.join(columns)}) VALUES "
            f"({', '.join('?' for _ in columns)})")  # fmt: skip


@lru_cache(maxsize=64)
def _sql_attempt_guarded(columns: tuple[str, ...]) -> str:
    """The same, for any other execution: only if its task row exists."""
    return (f"INSERT OR REPLACE INTO task_attempts ({', '.join(columns)}) SELECT "
            f"{', '.join('?' for _ in columns)} WHERE EXISTS (SELECT 1 FROM task_runs WHERE "
            "execution_id = ? AND task_id = ?)")  # fmt: skip


def _attempts(conn: sqlite3.Connection, rows: dict[Any, dict[str, Any]],
              recorded: Container[str]) -> None:  # fmt: skip
    other = {key: row for key, row in rows.items() if row["execution_id"] not in recorded}
    if other:
        rows = {key: row for key, row in rows.items() if key not in other}
        _inserts(conn, other, _sql_attempt_guarded, ("execution_id", "task_id"))
    if rows:
        _inserts(conn, rows, _sql_attempt)


_SQL_DEFINITION = "INSERT OR IGNORE INTO definitions VALUES (?, ?, ?, ?, ?)"
_SQL_EXECUTION = (
    "INSERT OR IGNORE INTO executions (id, workflow_id, workflow_name, definition_hash, params, "
    "trigger, parent_id, priority, state, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, "
    "'pending', ?)"
)
_SQL_OPENED = (
    "INSERT OR REPLACE INTO task_attempts (execution_id, task_id, attempt, started_at, wait_s, "
    "log_path, command, state) SELECT ?, ?, ?, ?, ?, ?, ?, 'starting' WHERE EXISTS "
    "(SELECT 1 FROM task_runs WHERE execution_id = ? AND task_id = ?)"
)
_SQL_EVENT = "INSERT INTO events (at, kind, execution_id, data) VALUES (?, ?, ?, ?)"
# A pack takes the next n sequence numbers: its id is the last of them (see rows.Pack).
_SQL_PACK = (
    "INSERT INTO events (id, at, kind, execution_id, data, n, times) VALUES "
    "((SELECT coalesce(max(id), 0) FROM events) + ?5, ?1, ?2, ?3, ?4, ?5, ?6)"
)
_SQL_METRIC = (
    "INSERT INTO task_metrics (at, execution_id, workflow_id, task_id, name, value) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
_SQL_ALERT = (  # raised_at and first_message stay as the alert was raised
    "INSERT INTO alerts (id, rule, severity, state, message, source, raised_at, updated_at, "
    "alert_key, name, count, snoozed_until, first_message) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
    "rule = excluded.rule, severity = excluded.severity, state = excluded.state, "
    "message = excluded.message, source = excluded.source, updated_at = excluded.updated_at, "
    "alert_key = excluded.alert_key, name = excluded.name, count = excluded.count, "
    "snoozed_until = excluded.snoozed_until"
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
_SQL_BLOCKED = (
    "INSERT INTO blocked_time VALUES (?, ?, ?) ON CONFLICT(cause, bucket) DO UPDATE "
    "SET seconds = seconds + excluded.seconds"
)
_SQL_RESERVATION = (
    "INSERT OR IGNORE INTO reservations (id, cpu, memory_mb, pools, starts_at, ends_at, reason, "
    "actor, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_SQL_RESERVATION_END = (
    "UPDATE reservations SET state = ?, ended_at = ?, ended_by = ? "
    "WHERE id = ? AND state IN ('scheduled', 'active')"
)
# One row per kind: raised again after it was resolved, it is reopened and counted.
_SQL_FINDING = (
    "INSERT INTO findings (kind, state, severity, summary, evidence, suggestion, first_seen, "
    "last_seen) VALUES (?, 'active', ?, ?, ?, ?, ?, ?) ON CONFLICT(kind) DO UPDATE SET "
    "times = times + (state = 'resolved'), "
    "first_seen = CASE WHEN state = 'resolved' THEN excluded.first_seen ELSE first_seen END, "
    "state = 'active', severity = excluded.severity, summary = excluded.summary, "
    "evidence = excluded.evidence, suggestion = excluded.suggestion, "
    "last_seen = excluded.last_seen, resolved_at = NULL"
)
_SQL_FINDING_RESOLVED = (
    "UPDATE findings SET state = 'resolved', resolved_at = ?, last_seen = ? "
    "WHERE kind = ? AND state = 'active'"
)


# Only the columns given: the others take the schema's defaults (binding all 22 columns of
# 1,000 rows took 7 ms of a creation commit, these take 2).
_SQL_TASK_PENDING = (
    "INSERT OR IGNORE INTO task_runs (execution_id, task_id, name, position) VALUES (?, ?, ?, ?)"
)
_SQL_TASK_WAITING = (
    "INSERT OR IGNORE INTO task_runs (execution_id, task_id, name, position, state, reason) "
    "VALUES (?, ?, ?, ?, 'waiting', ?)"
)


def _created(conn: sqlite3.Connection,
             created: dict[str, tuple[tuple[tuple[str, str], ...], dict[str, str]]]) -> None:
    """The task rows of the executions created in the batch, pending or waiting."""
    for eid, (tasks, reasons) in created.items():
        pending: list[tuple[Any, ...]] = []
        waiting: list[tuple[Any, ...]] = []
        for position, (task_id, name) in enumerate(tasks):
            reason = reasons.get(task_id)
            if reason is None:
                pending.append((eid, task_id, name, position))
            else:
                waiting.append((eid, task_id, name, position, reason))
        if pending:
            conn.executemany(_SQL_TASK_PENDING, pending)
        if waiting:
            conn.executemany(_SQL_TASK_WAITING, waiting)


def _events(conn: sqlite3.Connection, rows: list[tuple[Any, ...] | Pack]) -> None:
    """Event rows and packs in their order (each takes the sequence numbers after those
    before it)."""
    start = 0
    for i, row in enumerate(rows):
        if type(row) is Pack:
            if start < i:
                conn.executemany(_SQL_EVENT, rows[start:i])  # type: ignore[arg-type]
            conn.execute(_SQL_PACK, row.row())
            start = i + 1
    if start < len(rows):
        conn.executemany(_SQL_EVENT, rows[start:] if start else rows)  # type: ignore[arg-type]


def apply(
    conn: sqlite3.Connection, b: Batch, audit_head: tuple[int, str]
) -> tuple[int, str]:
    """Write a prepared batch inside the caller's transaction; returns the new audit head."""
    if b.definitions:
        conn.executemany(_SQL_DEFINITION, b.definitions)
    if b.executions:
        conn.executemany(_SQL_EXECUTION, b.executions)
    if b.created:
        _created(conn, b.created)
    if b.task_runs:
        _inserts(conn, b.task_runs, _sql_task)
    if b.opened:
        conn.executemany(_SQL_OPENED, b.opened)
    if b.attempts:
        _attempts(conn, b.attempts, b.recorded)
    if b.task_updates:
        _updates(conn, "task_runs", b.task_updates)
    if b.exec_updates:
        _updates(conn, "executions", b.exec_updates)
    if b.attempt_updates:
        _updates(conn, "task_attempts", b.attempt_updates)
    if b.events:
        _events(conn, b.events)
    if b.task_metrics:
        conn.executemany(_SQL_METRIC, b.task_metrics)
    if b.alerts:
        conn.executemany(_SQL_ALERT, b.alerts)
    if b.schedules:
        conn.executemany(_SQL_SCHEDULE, b.schedules)
    if b.blocked:
        conn.executemany(_SQL_BLOCKED, [(cause, bucket, seconds)
                                        for (cause, bucket), seconds in b.blocked.items()])
    if b.reservations:
        conn.executemany(_SQL_RESERVATION, b.reservations)
    if b.reservation_ends:
        conn.executemany(_SQL_RESERVATION_END, b.reservation_ends)
    for raised, row in b.findings:  # in event order: raised then resolved ends resolved
        conn.execute(_SQL_FINDING if raised else _SQL_FINDING_RESOLVED, row)
    if b.samples:
        conn.executemany(_SQL_SAMPLE, [
            (name, bucket, acc[0] / acc[3], acc[1], acc[2], int(acc[3]))
            for (name, bucket), acc in b.samples.items()
        ])  # fmt: skip
    if b.audit:
        linked = chain(b.audit, *audit_head)
        conn.executemany(_SQL_AUDIT, [
            (c.seq, c.entry.at, c.entry.actor, c.entry.action, c.entry.target, c.entry.outcome,
             c.entry.detail, c.prev_hash, c.hash) for c in linked
        ])  # fmt: skip
        return linked[-1].seq, linked[-1].hash
    return audit_head

