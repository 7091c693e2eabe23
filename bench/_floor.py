"""The persistence floor's parts, shared by the benches that measure it (engine_overhead,
subprocess_dag, store, scale through engine_overhead): a writer thread that group-commits
rows into a database with l3tui's own schema, and the rows the store keeps for a run.

What any durable executor must pay and nothing of l3tui's: no events, no bus, no mapping of
events to rows; plain statements into the store's tables, one transaction for everything
handed over since the last commit (a group commit), WAL and synchronous=NORMAL as the store
opens its database. It must not import the engine or the store's writer (only its schema).
"""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path

from l3tui.config.schema import WorkflowDef

Rows = list[tuple[object, ...]]

# A task's rows, whole at its end (an in-process no-op, engine_overhead's and store's floor).
ATTEMPT = ("INSERT INTO task_attempts (execution_id, task_id, attempt, started_at, finished_at, "
           "state, exit_code, wait_s) VALUES (?, ?, 1, ?, ?, 'succeeded', 0, 0.0)")
TASK_DONE = ("UPDATE task_runs SET state = 'succeeded', attempt = 1, exit_code = 0, "
             "started_at = ?, finished_at = ?, duration_s = ?, wait_s = 0.0 "
             "WHERE execution_id = ? AND task_id = ?")  # fmt: skip
# A process task's rows: opened (committed before its spawn), then ended (subprocess_dag).
OPENED = ("INSERT INTO task_attempts (execution_id, task_id, attempt, started_at, state) "
          "VALUES (?, ?, 1, ?, 'starting')")  # fmt: skip
RUNNING = ("UPDATE task_runs SET state = 'running', reason = '', attempt = 1, started_at = ? "
           "WHERE execution_id = ? AND task_id = ?")  # fmt: skip
ATTEMPT_END = ("UPDATE task_attempts SET finished_at = ?, state = 'succeeded', exit_code = 0, "
               "pid = ? WHERE execution_id = ? AND task_id = ? AND attempt = 1")  # fmt: skip
TASK_END = ("UPDATE task_runs SET state = 'succeeded', exit_code = 0, finished_at = ?, "
            "duration_s = ?, pid = ? WHERE execution_id = ? AND task_id = ?")  # fmt: skip
EXECUTION_END = "UPDATE executions SET state = 'succeeded', finished_at = ? WHERE id = ?"


class GroupWriter:
    """One writer thread, one connection: it takes every statement handed over since its
    last commit, writes them in one transaction, commits, then runs their callbacks on the
    loop. The loop side gathers rows for a whole turn and hands them over once."""

    def __init__(self, path: Path, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.path = path
        self.gathered: dict[str, Rows] = {}
        self.gathered_callbacks: list[Callable[[], None]] = []
        self.handing_over = False
        self.pending: list[tuple[dict[str, Rows], list[Callable[[], None]]]] = []
        self.wake = threading.Condition()
        self.closing = False
        self.commits = 0
        self.opened = threading.Event()
        """Set once the connection is open (a bench whose contestant has its database open
        before its clock starts waits for it)."""
        self.thread = threading.Thread(target=self._run, name="floor-writer", daemon=True)
        self.thread.start()

    def add(self, sql: str, rows: Rows, then: Callable[[], None] | None = None) -> None:
        rows_of = self.gathered.get(sql)
        if rows_of is None:
            self.gathered[sql] = rows
        else:
            rows_of.extend(rows)
        if then is not None:
            self.gathered_callbacks.append(then)
        if not self.handing_over:
            self.handing_over = True
            self.loop.call_soon(self._hand_over)

    def hold(self, sql: str, rows: Rows) -> None:
        """Rows nobody waits for: they go with the next rows handed over (and so are
        committed before anything that waits for a later commit goes)."""
        rows_of = self.gathered.get(sql)
        if rows_of is None:
            self.gathered[sql] = rows
        else:
            rows_of.extend(rows)

    def commit(self, sql: str, rows: Rows) -> asyncio.Future[None]:
        """`add`, and a future done once these rows (and all handed over before) are
        committed."""
        done: asyncio.Future[None] = self.loop.create_future()
        self.add(sql, rows, partial(done.set_result, None))
        return done

    def _hand_over(self) -> None:
        self.handing_over = False
        batch, self.gathered = self.gathered, {}
        callbacks, self.gathered_callbacks = self.gathered_callbacks, []
        with self.wake:
            self.pending.append((batch, callbacks))
            self.wake.notify()

    def close(self) -> None:
        with self.wake:
            self.closing = True
            self.wake.notify()
        self.thread.join()

    def _run(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None)
        for pragma in ("journal_mode = WAL", "synchronous = NORMAL", "foreign_keys = ON"):
            conn.execute(f"PRAGMA {pragma}")
        self.opened.set()
        while True:
            with self.wake:
                while not self.pending and not self.closing:
                    self.wake.wait()
                if not self.pending:
                    break
                handed, self.pending = self.pending, []
            conn.execute("BEGIN IMMEDIATE")
            for batch, _ in handed:
                for sql, rows in batch.items():
                    conn.executemany(sql, rows)
            conn.execute("COMMIT")
            self.commits += 1
            self.loop.call_soon_threadsafe(_run_all, [c for _, cs in handed for c in cs])
        conn.close()


def _run_all(callbacks: list[Callable[[], None]]) -> None:
    for callback in callbacks:
        callback()


class LoopWriter(GroupWriter):
    """The same group commit made on the event loop itself, at the end of the turn in which
    someone asked for it: no writer thread, no hand-over between threads (what a design
    without l3tui's writer thread could do, the loop blocked for each commit)."""

    def __init__(self, path: Path, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.path = path
        self.gathered = {}
        self.gathered_callbacks = []
        self.handing_over = False
        self.commits = 0
        self.conn = sqlite3.connect(path, isolation_level=None)
        for pragma in ("journal_mode = WAL", "synchronous = NORMAL", "foreign_keys = ON"):
            self.conn.execute(f"PRAGMA {pragma}")
        self.opened = threading.Event()
        self.opened.set()

    def _hand_over(self) -> None:
        self.handing_over = False
        batch, self.gathered = self.gathered, {}
        callbacks, self.gathered_callbacks = self.gathered_callbacks, []
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        for sql, rows in batch.items():
            conn.executemany(sql, rows)
        conn.execute("COMMIT")
        self.commits += 1
        _run_all(callbacks)

    def close(self) -> None:
        self.conn.close()


def floor_db() -> Path:
    """A fresh database file with l3tui's schema (its own migrations), in a new temp dir
    (the caller removes `path.parent`)."""
    from l3tui.store.schema import LATEST, apply_migrations

    path = Path(tempfile.mkdtemp(prefix="l3bench-floor-")) / "floor.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    apply_migrations(conn, 0, LATEST)
    conn.close()
    return path


def add_creation(writer: GroupWriter, definition: WorkflowDef, exec_id: str, text: str,
                 now: float, then: Callable[[], None], waiting: bool = False) -> None:  # fmt: skip
    """The rows of an execution's creation and start: its definition's JSON `text`, the
    execution (running), one task_runs row per task; `then` once they are committed.
    `waiting`: the tasks with upstreams inserted `waiting` with their reason, as the store
    does (engine_overhead's floor inserts them all pending, as it always has)."""
    writer.add("INSERT INTO definitions VALUES (?, ?, ?, ?, ?)",
               [(exec_id, "bench", definition.name, text, now)])  # fmt: skip
    writer.add("INSERT INTO executions (id, workflow_id, workflow_name, definition_hash, "
               "params, trigger, priority, state, created_at, started_at) VALUES "
               "(?, 'bench', ?, ?, '{}', 'bench', 5, 'running', ?, ?)",
               [(exec_id, definition.name, exec_id, now, now)])  # fmt: skip
    if not waiting:
        writer.add("INSERT INTO task_runs (execution_id, task_id, name, position) "
                   "VALUES (?,?,?,?)",
                   [(exec_id, t.id, t.display_name, i) for i, t in enumerate(definition.tasks)],
                   then)  # fmt: skip
        return
    writer.add("INSERT INTO task_runs (execution_id, task_id, name, position, state, reason) "
               "VALUES (?, ?, ?, ?, ?, ?)",
               [(exec_id, t.id, t.display_name, i, "waiting" if t.dependencies else "pending",
                 f"waiting on {', '.join(t.dependencies)}" if t.dependencies else "")
                for i, t in enumerate(definition.tasks)], then)  # fmt: skip
