"""The Store: one SQLite file in the state dir, written by one batched writer that is a
durable subscriber of the event bus, read through separate connections (WAL: readers never
block the writer).

Group commit: the writer takes everything queued (up to `batch_rows` events), writes it in
one transaction in its own thread, commits, then acknowledges; the engine's
`await bus.durable()` before an attempt acts therefore returns once that attempt's start
(and every success before it) is on disk, and many attempts share one commit.

It refuses to open a state dir or database that cannot take a commit (not a directory, not
writable, full): work that could not be recorded does not start.

Degraded mode (the disk fills up or the file turns read-only while running): a failing
commit is retried a few times within ~0.3 s; if it still fails the store publishes a
SystemNotice (topic "store", severity "error", raising the store alert), keeps the events
in memory in order and *acknowledges them*, so the engine keeps running tasks rather than
stalling, at the price of durability until the disk recovers. Writes are retried with
backoff; once one succeeds, everything held is written in order and a notice (severity
"info") says so. On close it keeps retrying for up to `close_retry_s`.

Recording stops for the rest of the process, loudly (a critical notice, and `unrecorded`
counts what was lost, so `l3tui run` exits 1), when more than `max_held` events would have to
be held (what was held is still written if the disk recovers: history keeps a consistent
prefix, and the next start marks what was running as interrupted), or when the database
file is deleted, truncated or replaced under the writer (checked before each commit).
What was committed before is never touched.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from l3tui.config.schema import Retention
from l3tui.engine import events as ev
from l3tui.engine.bus import EventBus, Subscription
from l3tui.errors import StateError
from l3tui.store.database import (
    connect_readonly,
    db_path,
    ensure_state_dir,
    full_or_io,
    prepare,
)
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
from l3tui.store.writer import DatabaseReplaced, Writer, WriterThread

log = logging.getLogger(__name__)
T = TypeVar("T")

QUICK_RETRIES = (0.02, 0.08, 0.2)
"""Delays before declaring the store degraded: a brief lock or hiccup is not an outage."""
MAX_BACKOFF_S = 5.0
MAX_HELD_EVENTS = 100_000
"""About 50-100 MB of events: past it, recording stops (see the module docstring)."""
CLOSE_RETRY_S = 30.0
"""How long closing waits for a full or read-only disk to take what is held."""
PRUNE_EVERY_S = 3600.0
LAZY_COMMIT_S = 0.05
"""Longest an event waits for its commit when nothing waits for it (`Subscription.wanted`)."""
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
        max_held: int = MAX_HELD_EVENTS,
        close_retry_s: float = CLOSE_RETRY_S,
    ) -> None:
        self.state_dir = state_dir
        self.path = db_path(state_dir)
        self.actor = actor
        self.retention = retention or Retention()
        self.batch_rows = batch_rows
        self.now = now
        self.lock = StateLock(state_dir)
        self.writable = False
        self.max_held = max_held
        self.close_retry_s = close_retry_s
        self.degraded: str | None = None
        """Why writes fail right now, or None."""
        self.stopped: str | None = None
        """Why recording stopped for the rest of this process, or None."""
        self.lost = False
        """The database file was deleted, truncated or replaced under the writer."""
        self.held_events = 0
        self.notes: list[str] = []
        """Warnings found on opening (a state directory that was open to other users)."""
        self.held_peak = 0
        self.unrecorded = 0
        """Events that were acknowledged but will never be written."""
        self.outage_s = 0.0
        """Seconds spent degraded (writes failing) so far."""
        self._outage_started: float | None = None
        self.committed_events = 0
        self.commits = 0
        self.last_commit_s = 0.0
        """How long the newest commit took (health: store write latency)."""
        self._bus: EventBus | None = None
        self._sub: Subscription | None = None
        self._writer = Writer(self.path, actor)
        self._thread: WriterThread | None = None
        self._reader: sqlite3.Connection | None = None
        self._reader_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._held: list[ev.Event] = []
        self._unacked = 0
        """Events of the batch being written not yet acknowledged (see `_ack`)."""
        self._last_prune = 0.0
        self._backoff = 0.5

    # ------------------------------------------------------------------ lifecycle

    async def open(
        self, bus: EventBus, *, grace_s: float = 10.0, recover: bool = True
    ) -> RecoveryReport:
        """Lock the state dir, prepare the database, prove it takes a commit, recover from a
        crash, start writing. Raises LockedError or StateError (one line each) when the store
        cannot be used, or cannot record: nothing may run that would not be recorded."""
        await asyncio.to_thread(ensure_state_dir, self.state_dir)
        # Private before anything is written in it: created 0700, the database 0600.
        note = private_state_dir(self.state_dir)
        self.notes = [note] if note else []
        previous = read_holder(self.lock.path)
        self.lock.acquire()
        try:
            await asyncio.to_thread(private_database, self.path)
            self.writable = await asyncio.to_thread(prepare, self.path)
            if not self.writable:
                raise full_or_io(self.path, sqlite3.OperationalError(
                    "attempt to write a readonly database")) or StateError(str(self.path))
            self._reader = await asyncio.to_thread(connect_readonly, self.path)
            self._thread = WriterThread("l3tui-store")
            try:
                await self._in_writer(self._writer.open)
                await self._in_writer(self._writer.probe)
            except sqlite3.Error as exc:
                raise full_or_io(self.path, exc) or StateError(
                    f"cannot write the state database {self.path}: {exc}") from None
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
        assert self._thread is not None
        return await self._thread.call(fn, *args)

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
        """Write what is queued (waiting at most `wait_s`, plus `close_retry_s` while the
        disk refuses what is held), then close and unlock. What could not be written is
        counted in `unrecorded` (see `problem()`)."""
        if self._sub is not None:
            self._sub.close()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), wait_s + self.close_retry_s)
            except TimeoutError:
                log.error("store: writer did not finish within %.0fs; closing", wait_s)
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self._held:
            self.unrecorded += len(self._held)
            self._held.clear()
        self._end_outage()
        if self.unrecorded:
            log.error("store: %s", self.problem())
        await self._close_connections()
        self.lock.release()

    def problem(self) -> str | None:
        """One line on what this process failed to record, or None when everything was."""
        if not self.unrecorded:
            return None
        why = self.stopped or self.degraded or "the writer stopped"
        return (f"{self.unrecorded} event(s) of this run could not be recorded in {self.path} "
                f"({why}); its history there is incomplete")

    async def _close_connections(self) -> None:
        # Normally the reader first: the last connection to close checkpoints the WAL into
        # the database file, and only the writer can. When the file was deleted or
        # truncated under us, the writer first, so nothing is checkpointed into it (that
        # would leave a malformed file; an empty one with a stale log starts afresh).
        if not self.lost:
            self._close_reader()
        if self._thread is not None:
            try:
                await self._in_writer(self._writer.close, not self.lost)
            except sqlite3.Error as exc:
                log.warning("store: closing %s: %s", self.path, exc)
            thread, self._thread = self._thread, None
            thread.shutdown()
        self._close_reader()

    def _close_reader(self) -> None:
        if self._reader is not None:
            reader, self._reader = self._reader, None
            reader.close()

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
                    if not sub.pending():
                        await sub.get_batch_wait()
                        # One turn of the loop first: what woke us (a success) usually set
                        # going what waits for it (a dependant's start); both then share
                        # this commit. Not for what came during the last commit: what that
                        # set going (the acknowledged attempts' spawns) already ran. Nor for
                        # a creation: its start came with it, and its first tasks wait.
                        # Nor for a lone sample (the idle Runtime's one event a second): it
                        # sets nothing going, and `wanted` below waits for what follows.
                        first = type(sub.peek())
                        if first is not ev.ExecutionCreated and not (
                                first is ev.ResourceSampled and sub.pending() == 1):  # fmt: skip
                            await asyncio.sleep(0)
                    # What nobody waits for yet is committed within LAZY_COMMIT_S, with
                    # whatever follows it: fewer commits, less of the writer holding the GIL.
                    await sub.wanted(LAZY_COMMIT_S, self.batch_rows)
                    events = await sub.get_batch(self.batch_rows)
                else:
                    events = await self._next_while_degraded(sub)
            except StopAsyncIteration:
                break
            self._unacked = len(events)
            try:
                await self._write(events)
            except Exception as exc:  # past _commit's own guard: a bug
                # Loud, and recording stops; the subscription is still acknowledged, so
                # nothing waits forever for a commit that will never come.
                log.error("store: the writer failed", exc_info=exc)
                self.unrecorded += len(events)
                self._stop(f"the store's writer failed: {type(exc).__name__}: {exc} (a bug; "
                           "please report it with the log)")  # fmt: skip
            self._ack()  # unless its commit did (held, stopped, rejected, or a bug)
        await self._last_flush()

    def _ack(self, _: object = None) -> None:
        """Acknowledge the batch being written (once): from the commit's result callback on
        the loop, so the engine waiting for it is woken in that turn, not a turn after
        the writer's coroutine resumes."""
        count, self._unacked = self._unacked, 0
        if count and self._sub is not None:
            self._sub.ack(count)

    async def _write(self, events: list[ev.Event]) -> None:
        """Commit `events`, or hold them (degraded), or count them lost (stopped). A commit
        is acknowledged from its result callback, before the retention prune after it."""
        if self.stopped is not None:
            self.unrecorded += len(events)
            if self._held:  # the prefix held before recording stopped is still written
                await self._flush_held()
            return
        if self.degraded is None and not self._held:
            error = await self._commit_with_retries(events)
            if error is None:
                await self._maybe_prune()
                return
            if self.stopped is not None:  # the file was replaced: nothing more is written
                self.unrecorded += len(events)
                return
            self._enter_degraded(error)
        self._hold(events)
        await self._flush_held()

    async def _next_while_degraded(self, sub: Subscription) -> list[ev.Event]:
        """New events, or an empty list when it is time to retry the held ones."""
        try:
            await asyncio.wait_for(sub.get_batch_wait(), self._backoff)
        except TimeoutError:
            return []
        return sub.drain()

    def _hold(self, events: list[ev.Event]) -> None:
        room = self.max_held - len(self._held)
        if len(events) > room:
            self._held.extend(events[: max(room, 0)])
            self.unrecorded += len(events) - max(room, 0)
            self._stop(f"more than {self.max_held:,} events had to be held in memory while "
                       f"the database could not be written ({self.degraded})")  # fmt: skip
        else:
            self._held.extend(events)
        self.held_events = len(self._held)
        self.held_peak = max(self.held_peak, self.held_events)

    def _stop(self, why: str, *, lost: bool = False) -> None:
        """Record nothing more in this process; say so loudly."""
        if self.stopped is not None:
            return
        self.stopped = why
        self.lost = lost
        if lost:
            self.unrecorded += len(self._held)
            self._held.clear()
            self.held_events = 0
            kept = "nothing more is written there"
        else:
            kept = (f"the {len(self._held):,} held events are still written if it recovers, "
                    "nothing after them")
        self._notice(f"recording stopped: {why}; {kept}; what runs now is not recorded and "
                     "`l3tui run` will exit 1", "critical")  # fmt: skip

    def backlog(self) -> int:
        """Events published but not yet written (queued, or held while degraded)."""
        return (self._sub.pending() if self._sub is not None else 0) + self.held_events

    async def _commit(self, events: list[ev.Event],
                      then: Callable[[None], None] | None = None) -> None:  # fmt: skip
        assert self._thread is not None
        started = time.perf_counter()
        await self._thread.call(self._writer.commit, events, then=then)
        self.last_commit_s = time.perf_counter() - started
        self.committed_events += len(events)
        self.commits += 1

    async def _commit_with_retries(self, events: list[ev.Event]) -> str | None:
        """None when committed; otherwise why it failed (after a few quick retries)."""
        for delay in (*QUICK_RETRIES, None):
            try:
                await self._commit(events, self._ack)
                return None
            except DatabaseReplaced as exc:
                self._stop(str(exc), lost=True)
                return str(exc)
            except _TRANSIENT as exc:
                if delay is None:
                    return str(exc)
                await asyncio.sleep(delay)
            except sqlite3.DatabaseError as exc:
                if not isinstance(exc, sqlite3.IntegrityError | sqlite3.ProgrammingError):
                    return f"{type(exc).__name__}: {exc}"  # malformed pages and the like
                # A bug in how we map events to rows; this batch can never be written.
                self._reject(events, exc)
                return None
            except Exception as exc:  # mapping events to rows failed: a bug
                # Never let it end the writer: the durable subscription would wait forever
                # and every run waiting for a success on disk would hang, not fail.
                self._reject(events, exc)
                return None
        raise AssertionError("unreachable")

    def _reject(self, events: list[ev.Event], exc: Exception) -> None:
        """A batch that can never be written (a bug in how events become rows): said
        loudly, counted as unrecorded (the run exits 1), and the writer goes on."""
        log.error("store: a batch of %d events was rejected", len(events), exc_info=exc)
        self._notice(f"store rejected {len(events)} event(s): {type(exc).__name__}: {exc} "
                     "(a bug; please report it with the log)", "error")  # fmt: skip
        self.unrecorded += len(events)

    def _enter_degraded(self, error: str) -> None:
        self.degraded = error
        self._backoff = 0.5
        self._outage_started = time.monotonic()
        self._notice(f"cannot write the state database {self.path}: {error}; tasks keep "
                     "running, their history is held in memory (in order) and writes are "
                     "retried", "error")  # fmt: skip

    def _end_outage(self) -> None:
        if self._outage_started is not None:
            self.outage_s += time.monotonic() - self._outage_started
            self._outage_started = None

    async def _flush_held(self) -> None:
        """Write held events in order, a chunk per commit; stop at the first failure."""
        while self._held:
            chunk = self._held[: self.batch_rows]
            try:
                if self.degraded is not None and "readonly" in self.degraded.replace(" ", ""):
                    # SQLite decided the file was read-only when it opened it: ask again.
                    await self._in_writer(self._writer.open)
                await self._commit(chunk)
            except DatabaseReplaced as exc:
                self._stop(str(exc), lost=True)
                return
            except (*_TRANSIENT, sqlite3.DatabaseError) as exc:
                self.degraded = str(exc)
                self._backoff = min(self._backoff * 2, MAX_BACKOFF_S)
                return
            del self._held[: len(chunk)]
            self.held_events = len(self._held)
        if self.degraded is not None:
            self.degraded = None
            self._end_outage()
            after = (f"; recording had stopped ({self.stopped}): {self.unrecorded} event(s) "
                     "after those were not kept" if self.stopped else "")  # fmt: skip
            self._notice(f"the state database {self.path} is writable again; the history "
                         f"held in memory is written{after}",
                         "error" if self.stopped else "info")  # fmt: skip

    async def _last_flush(self) -> None:
        """Closing with held events: keep retrying for up to `close_retry_s`."""
        if not self._held:
            return
        deadline = time.monotonic() + self.close_retry_s
        log.warning("store: %d event(s) held in memory; retrying for up to %.0fs to write them "
                    "to %s (%s)", len(self._held), self.close_retry_s, self.path,
                    self.degraded)  # fmt: skip
        while True:
            await self._flush_held()
            left = deadline - time.monotonic()
            if not self._held or left <= 0:
                return
            await asyncio.sleep(min(self._backoff, 1.0, left))  # idle now: retry often

    def _notice(self, message: str, severity: str) -> None:
        level = logging.ERROR if severity in ("error", "critical") else logging.INFO
        log.log(level, "store: %s", message)
        if self._bus is not None:
            self._bus.publish(ev.SystemNotice(at=self.now(), topic="store", message=message,
                                              severity=severity))  # fmt: skip

    async def _maybe_prune(self) -> None:
        """Retention's deletions, hourly (and after the first commit)."""
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

    async def transact(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """`fn(conn)` in one transaction on the writer's thread, in turn with the event
        batches (so what it writes is ordered with them). Raises sqlite3 errors and
        DatabaseReplaced unchanged; nothing is held or retried."""
        if self._thread is None:
            raise sqlite3.OperationalError("the store is not open")
        return await self._in_writer(self._writer.transact, fn)

    async def flush(self) -> None:
        """Return once everything published so far is committed (or held, if degraded)."""
        if self._bus is not None:
            await self._bus.durable()
