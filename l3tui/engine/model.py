"""Execution and task-run records, their states and the transitions allowed between them.

An illegal transition raises `IllegalTransition`: a bug must be loud, not a silently
corrupted history. Records are plain mutable dataclasses owned by the engine; everything
outside the engine sees immutable views (`l3tui.engine.api`).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class ExecState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    PAUSED = "paused"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"

    @property
    def terminal(self) -> bool:
        return self in EXEC_TERMINAL


class TaskState(StrEnum):
    PENDING = "pending"  # execution not started yet
    WAITING = "waiting"  # upstream tasks not finished
    QUEUED = "queued"  # ready, waiting for admission
    RUNNING = "running"
    PAUSED = "paused"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    RETRYING = "retrying"  # between attempts
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"
    INTERRUPTED = "interrupted"  # l3tui died while it ran

    @property
    def terminal(self) -> bool:
        return self in TASK_TERMINAL


EXEC_TERMINAL = frozenset(
    {ExecState.SUCCEEDED, ExecState.FAILED, ExecState.CANCELLED, ExecState.INTERRUPTED}
)
TASK_TERMINAL = frozenset(
    {
        TaskState.SUCCEEDED, TaskState.FAILED, TaskState.TIMED_OUT, TaskState.CANCELLED,
        TaskState.SKIPPED, TaskState.INTERRUPTED,
    }
)  # fmt: skip
TASK_FAILED = frozenset({TaskState.FAILED, TaskState.TIMED_OUT})
TASK_FAILED_OR_LOST = TASK_FAILED | {TaskState.INTERRUPTED}
"""Endings that are retried (an attempt lost with its remote worker is interrupted) and that
fail the execution when no retry is left."""

_E, _T = ExecState, TaskState
EXEC_TRANSITIONS: dict[ExecState, frozenset[ExecState]] = {
    _E.PENDING: frozenset({_E.RUNNING, _E.CANCELLED, _E.INTERRUPTED, _E.FAILED}),
    _E.RUNNING: frozenset({_E.PAUSED, _E.SUCCEEDED, _E.FAILED, _E.CANCELLED, _E.INTERRUPTED}),
    _E.PAUSED: frozenset({_E.RUNNING, _E.CANCELLED, _E.INTERRUPTED}),
    **{state: frozenset() for state in EXEC_TERMINAL},
}
_ENDINGS = {_T.CANCELLED, _T.INTERRUPTED}
TASK_TRANSITIONS: dict[TaskState, frozenset[TaskState]] = {
    _T.PENDING: frozenset({_T.WAITING, _T.QUEUED, _T.SKIPPED, *_ENDINGS}),
    _T.WAITING: frozenset({_T.QUEUED, _T.SKIPPED, *_ENDINGS}),
    _T.QUEUED: frozenset({_T.RUNNING, *_ENDINGS}),
    _T.RUNNING: frozenset(
        {_T.PAUSED, _T.SUCCEEDED, _T.FAILED, _T.TIMED_OUT, _T.RETRYING, *_ENDINGS}
    ),
    _T.PAUSED: frozenset({_T.RUNNING, _T.FAILED, _T.SUCCEEDED, *_ENDINGS}),
    _T.RETRYING: frozenset({_T.QUEUED, *_ENDINGS}),
    **{state: frozenset() for state in TASK_TERMINAL},
}


class IllegalTransition(RuntimeError):
    """A record was asked to move to a state its current state cannot reach."""


def new_execution_id(now: float | None = None) -> str:
    """Sortable, short enough to type: `261125-014900-a3f9` (UTC time + random)."""
    stamp = time.strftime("%y%m%d-%H%M%S", time.gmtime(now if now is not None else time.time()))
    return f"{stamp}-{secrets.token_hex(2)}"


@dataclass(slots=True, eq=False)
class TaskRun:
    """One task of one execution, across its attempts."""

    execution_id: str
    task_id: str
    name: str
    state: TaskState = TaskState.PENDING
    attempt: int = 0
    max_attempts: int = 1
    priority: int = 5
    reason: str = ""
    """Why it waits, or why it ended (for people)."""
    queued_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    exit_code: int | None = None
    pid: int | None = None
    pgid: int | None = None
    proc_start: float | None = None
    """Process start time, so recovery never signals a reused pid."""
    log_path: str | None = None
    last_line: str = ""
    active_s: float = 0.0
    """Time spent running (paused time excluded), over all attempts, up to the current
    stretch of running (see `running_since`)."""
    running_since: float | None = None
    """When the current stretch of running began (None while paused or not running)."""
    wait_s: float = 0.0
    """Time spent queued, over all attempts."""
    metrics: dict[str, float] = field(default_factory=dict)
    cpu_pct: float = 0.0
    rss: int = 0
    peak_cpu_pct: float = 0.0
    peak_rss: int = 0
    avg_cpu_pct: float = 0.0
    avg_rss: int = 0
    usage_samples: int = 0
    """Resource samples taken while it ran (the averages are over these)."""
    cpu_s: float = 0.0
    """CPU seconds of the attempts that ended (see `end_attempt_usage`)."""
    attempt_cpu_s: float = 0.0
    """CPU seconds the sampler saw the current attempt's processes use."""
    declared_cpu: float = 0.0
    declared_memory_mb: int = 0
    worker: str = ""
    """The remote worker its current (or last) attempt runs on; empty when it runs here."""

    def record_usage(self, cpu_pct: float, rss: int, cpu_s: float = 0.0) -> None:
        """One sample of the task's process group (the resource manager calls this)."""
        self.cpu_pct, self.rss = cpu_pct, rss
        self.peak_cpu_pct = max(self.peak_cpu_pct, cpu_pct)
        self.peak_rss = max(self.peak_rss, rss)
        self.attempt_cpu_s += cpu_s
        n = self.usage_samples = self.usage_samples + 1
        self.avg_cpu_pct += (cpu_pct - self.avg_cpu_pct) / n
        self.avg_rss = int(self.avg_rss + (rss - self.avg_rss) / n)

    def end_attempt_usage(self, cpu_s: float | None, max_rss: int | None) -> None:
        """An attempt's process was reaped: the kernel's figures for it and the descendants
        it waited for (exact, where sampling misses a short task) join the sampled ones.
        CPU seconds: the larger of the two counts (the sampler also sees what was not
        waited for); the average is then CPU time over running time, and the peak never
        less than that average."""
        self.cpu_s += max(cpu_s or 0.0, self.attempt_cpu_s)
        self.attempt_cpu_s = 0.0
        if max_rss:
            self.peak_rss = max(self.peak_rss, max_rss)
        if self.active_s > 0 and self.cpu_s > 0:
            self.avg_cpu_pct = 100.0 * self.cpu_s / self.active_s
            self.peak_cpu_pct = max(self.peak_cpu_pct, round(self.avg_cpu_pct, 1))
        if not self.usage_samples:
            self.avg_rss = self.peak_rss  # never sampled: its high-water mark stands for it

    def start_running(self, now: float) -> None:
        self.running_since = now

    def stop_running(self, now: float) -> None:
        """Close the current stretch of running into `active_s`."""
        if self.running_since is not None:
            self.active_s += max(now - self.running_since, 0.0)
            self.running_since = None

    def to(self, state: TaskState) -> TaskState:
        """Move to `state`; returns the previous state."""
        previous = self.state
        if state not in TASK_TRANSITIONS[previous]:
            raise IllegalTransition(
                f"task {self.execution_id}/{self.task_id}: {previous} -> {state} is not allowed"
            )
        self.state = state
        return previous


@dataclass(slots=True, eq=False)
class Execution:
    """One run of one workflow definition."""

    id: str
    workflow_id: str
    workflow_name: str
    definition: Any  # WorkflowDef; Any keeps this module free of pydantic
    definition_hash: str
    params: dict[str, Any]
    trigger: str = "manual"
    parent_id: str | None = None
    """The interrupted execution this one resumes."""
    priority: int = 5
    state: ExecState = ExecState.PENDING
    created_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    deadline_at: float | None = None
    reason: str = ""
    tasks: dict[str, TaskRun] = field(default_factory=dict)
    cancel_requested: bool = False
    cancel_reason: str = ""
    """Why it was cancelled, when that is more than an operator's command (a signal)."""

    def to(self, state: ExecState) -> ExecState:
        previous = self.state
        if state not in EXEC_TRANSITIONS[previous]:
            raise IllegalTransition(f"execution {self.id}: {previous} -> {state} is not allowed")
        self.state = state
        return previous

    def outcome(self) -> tuple[ExecState, str]:
        """How it ends now that every task has: cancelled (by request), failed (some task
        did not succeed, named) or succeeded; and the reason for people."""
        if self.cancel_requested:
            why = self.cancel_reason
            return ExecState.CANCELLED, f"cancelled: {why}" if why else "cancelled"
        bad = [t.task_id for t in self.tasks.values()
               if t.state in TASK_FAILED_OR_LOST or t.state == TaskState.CANCELLED]  # fmt: skip
        if bad:
            return ExecState.FAILED, "not succeeded: " + ", ".join(bad)
        return ExecState.SUCCEEDED, ""

    def counts(self) -> dict[TaskState, int]:
        out: dict[TaskState, int] = {}
        for task in self.tasks.values():
            out[task.state] = out.get(task.state, 0) + 1
        return out
