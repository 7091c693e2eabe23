"""Recovery after l3tui died without closing (kill -9, power loss, OOM): executions recorded
as running become `interrupted`, and process groups their tasks left behind are terminated,
then killed. A process is only touched when it is provably ours: the recorded pid with the
recorded start time (a reused pid never matches), or a process whose environment names one
of the interrupted executions under this state directory.

Reads the database and /proc; writes nothing itself: it returns the events that record
what happened, and the store's writer commits them like any other.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from l3tui.engine import events as ev
from l3tui.engine.executors.procs import process_start_time, scan_processes

ACTIVE_EXEC_STATES = ("pending", "running", "paused")
TERMINAL_TASK_STATES = frozenset(
    {"succeeded", "failed", "timed_out", "cancelled", "skipped", "interrupted"}
)
START_TIME_TOLERANCE_S = 0.05


@dataclass(frozen=True, slots=True)
class InterruptedExecution:
    execution_id: str
    workflow_id: str
    state: str
    created_at: float
    started_at: float | None
    last_seen: float
    """Time of its last recorded event: about when l3tui died."""
    open_tasks: tuple[tuple[str, str, int], ...]
    """(task id, recorded state, attempt) of every task that had not ended; the state is
    `starting` when its last attempt was recorded as opened but not as started."""


@dataclass(frozen=True, slots=True)
class RecordedProcess:
    execution_id: str
    task_id: str
    pid: int
    pgid: int
    proc_start: float | None


@dataclass(slots=True)
class RecoveryReport:
    interrupted: list[InterruptedExecution] = field(default_factory=list)
    killed_groups: list[int] = field(default_factory=list)
    killed_pids: list[int] = field(default_factory=list)
    survivors: list[int] = field(default_factory=list)
    """Processes still alive after SIGKILL (should never happen; reported if it does)."""
    previous_holder: str = ""

    @property
    def needed(self) -> bool:
        return bool(self.interrupted or self.killed_pids)

    def message(self) -> str:
        who = f"l3tui {self.previous_holder}" if self.previous_holder else "the previous l3tui"
        ids = ", ".join(i.execution_id for i in self.interrupted[:5])
        more = f" and {len(self.interrupted) - 5} more" if len(self.interrupted) > 5 else ""
        if self.interrupted:
            text = (f"{who} stopped without closing: {len(self.interrupted)} execution(s) "
                    f"marked interrupted ({ids}{more})")  # fmt: skip
        else:
            # Nothing was left running in the database: that l3tui may well have closed,
            # and these processes escaped it (or it died before recording anything).
            text = f"found task processes {who} left behind"
        if self.killed_pids:
            text += f"; terminated {len(self.killed_pids)} leftover task process(es)"
        if self.survivors:
            text += f"; {len(self.survivors)} could not be killed: {self.survivors}"
        if self.interrupted:
            text += f"; continue with `l3tui resume {self.interrupted[0].execution_id}`"
        return text


def find_interrupted(conn: sqlite3.Connection) -> list[InterruptedExecution]:
    marks = ",".join("?" for _ in ACTIVE_EXEC_STATES)
    rows = conn.execute(
        f"SELECT id, workflow_id, state, created_at, started_at FROM executions "
        f"WHERE state IN ({marks}) ORDER BY created_at", ACTIVE_EXEC_STATES,
    ).fetchall()  # fmt: skip
    out = []
    for exec_id, workflow_id, state, created_at, started_at in rows:
        tasks = conn.execute(
            "SELECT task_id, state, attempt FROM task_runs WHERE execution_id = ? "
            "ORDER BY position", (exec_id,),
        ).fetchall()  # fmt: skip
        # An attempt recorded as opened but never as started was at most about to spawn its
        # process (a process spawned in that window is found by its environment).
        starting = {t for (t,) in conn.execute(
            "SELECT task_id FROM task_attempts WHERE execution_id = ? AND state = 'starting' "
            "AND finished_at IS NULL", (exec_id,))}  # fmt: skip
        open_tasks = tuple((t, "starting" if t in starting else s, a) for t, s, a in tasks
                           if s not in TERMINAL_TASK_STATES)  # fmt: skip
        (last_seen,) = conn.execute(
            "SELECT max(at) FROM events WHERE execution_id = ?", (exec_id,)
        ).fetchone()
        out.append(InterruptedExecution(exec_id, workflow_id, state, created_at, started_at,
                                        last_seen or created_at, open_tasks))  # fmt: skip
    return out


def recorded_processes(conn: sqlite3.Connection, exec_ids: list[str]) -> list[RecordedProcess]:
    """Every attempt with a process whose end was never recorded."""
    out: list[RecordedProcess] = []
    for exec_id in exec_ids:
        rows = conn.execute(
            "SELECT task_id, pid, pgid, proc_start FROM task_attempts "
            "WHERE execution_id = ? AND finished_at IS NULL AND pid IS NOT NULL", (exec_id,),
        ).fetchall()  # fmt: skip
        out.extend(RecordedProcess(exec_id, t, pid, pgid or pid, start)
                   for t, pid, pgid, start in rows)  # fmt: skip
    return out


def _same_process(proc: psutil.Process, started: float | None) -> bool:
    if started is None:
        return False  # without a start time we cannot tell a reused pid apart
    # The executor records the start with this same function (seconds since boot, immune
    # to wall-clock changes), so the comparison is like for like.
    now_started = process_start_time(proc.pid)
    return now_started is not None and abs(now_started - started) <= START_TIME_TOLERANCE_S


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def find_survivors(recorded: list[RecordedProcess], runs_dir: Path) -> dict[int, list[int]]:
    """Process groups to end, each with its live member pids. Blocking: run in a thread.

    Called while holding the state dir's lock, before this instance starts any task: so
    every process whose environment names an execution under this state dir was left by a
    previous instance, whether or not that execution made it into the database."""
    me, my_group = os.getpid(), os.getpgrp()
    groups: dict[int, set[int]] = {}
    for rec in recorded:
        try:
            proc = psutil.Process(rec.pid)
        except psutil.Error:
            continue
        if _alive(proc) and _same_process(proc, rec.proc_start):
            groups.setdefault(rec.pgid, set()).add(rec.pid)
    # Processes started but not yet recorded when l3tui died, and grandchildren that left
    # their task's group: their environment names the execution dir (set by the executor).
    prefix = str(runs_dir) + os.sep
    for proc in psutil.process_iter(["pid", "status"]):
        if proc.pid == me or proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        try:
            env = proc.environ()
        except psutil.Error:
            continue
        if env.get("L3_EXECUTION_ID") and env.get("L3_EXECUTION_DIR", "").startswith(prefix):
            try:
                pgid = os.getpgid(proc.pid)
            except OSError:
                continue
            groups.setdefault(pgid, set()).add(proc.pid)
    groups.pop(my_group, None)  # never signal our own group (a test runner, a shell)
    return {pgid: sorted(pids) for pgid, pids in groups.items()}


def _group_members(pgids: set[int]) -> list[int]:
    """Live (non-zombie) processes in any of `pgids`."""
    return [pid for pid, state, _, pgrp in scan_processes() if state != b"Z" and pgrp in pgids]


def _signal_all(groups: dict[int, list[int]], sig: int) -> None:
    for pgid, pids in groups.items():
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            for pid in pids:  # the group is gone or not ours; the recorded pids still count
                try:
                    os.kill(pid, sig)
                except (ProcessLookupError, PermissionError):
                    pass


async def terminate_groups(groups: dict[int, list[int]], grace_s: float) -> list[int]:
    """SIGTERM (and SIGCONT, for frozen groups), wait up to `grace_s`, SIGKILL the rest.
    Returns pids still alive at the end (empty unless something is badly wrong)."""
    if not groups:
        return []
    pgids = set(groups)
    _signal_all(groups, signal.SIGTERM)
    _signal_all(groups, signal.SIGCONT)
    deadline = time.monotonic() + grace_s
    delay = 0.01
    while await asyncio.to_thread(_group_members, pgids):
        if time.monotonic() >= deadline:
            _signal_all(groups, signal.SIGKILL)
            break
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.2)
    for _ in range(50):
        left = await asyncio.to_thread(_group_members, pgids)
        if not left:
            return []
        await asyncio.sleep(0.05)
    return left


def recovery_events(
    report: RecoveryReport, now: float, why: str
) -> list[ev.Event]:
    """The events that record the recovery: each open task and each execution becomes
    interrupted, then one notice says what happened."""
    out: list[ev.Event] = []
    for item in report.interrupted:
        for task_id, state, attempt in item.open_tasks:
            if state == "starting":
                reason = f"stopped while starting attempt {attempt}: {why}"
            elif state in ("running", "paused", "retrying"):
                reason = why
            else:
                reason = "never started: " + why
            out.append(ev.TaskStateChanged(at=now, execution_id=item.execution_id,
                                           task_id=task_id, state="interrupted",
                                           previous=state, attempt=attempt,
                                           reason=reason))  # fmt: skip
        started = item.started_at or item.created_at
        out.append(ev.ExecutionFinished(at=now, execution_id=item.execution_id,
                                        workflow_id=item.workflow_id, state="interrupted",
                                        reason=why,
                                        duration_s=max(item.last_seen - started, 0.0)))  # fmt: skip
    out.append(ev.SystemNotice(at=now, topic="recovery", message=report.message(),
                               severity="warning"))  # fmt: skip
    return out
