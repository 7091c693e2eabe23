"""Typed events: everything that happens in l3tui is one of these, published on the
`EventBus` (bus.py). Frozen, keyword-only, named in the past tense and timestamped;
`to_dict` and `EVENT_TYPES` make them serialisable for the store and a daemon's wire.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any, ClassVar

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True, slots=True)
class Event:
    """Base of every event: `at` is wall-clock epoch seconds."""

    kind: ClassVar[str] = "event"
    at: float

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["kind"] = self.kind
        return data


# ------------------------------------------------------------------ executions


@dataclass(frozen=True, kw_only=True, slots=True)
class ExecutionCreated(Event):
    kind: ClassVar[str] = "execution_created"
    execution_id: str
    workflow_id: str
    workflow_name: str
    definition_hash: str
    definition: dict[str, Any]
    params: dict[str, Any]
    trigger: str
    parent_id: str | None
    priority: int
    tasks: tuple[tuple[str, str], ...]
    """(task id, display name) in definition order."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ExecutionStarted(Event):
    kind: ClassVar[str] = "execution_started"
    execution_id: str


@dataclass(frozen=True, kw_only=True, slots=True)
class ExecutionPaused(Event):
    kind: ClassVar[str] = "execution_paused"
    execution_id: str


@dataclass(frozen=True, kw_only=True, slots=True)
class ExecutionResumed(Event):
    kind: ClassVar[str] = "execution_resumed"
    execution_id: str


@dataclass(frozen=True, kw_only=True, slots=True)
class ExecutionFinished(Event):
    kind: ClassVar[str] = "execution_finished"
    execution_id: str
    workflow_id: str
    state: str
    reason: str
    duration_s: float


# ----------------------------------------------------------------------- tasks


@dataclass(frozen=True, kw_only=True, slots=True)
class TaskStateChanged(Event):
    """A task transition that has no event of its own: waiting, queued, paused, running
    again after a pause, retrying. Starting an attempt is `TaskStarted`; reaching a
    terminal state is `TaskFinished`."""

    kind: ClassVar[str] = "task_state"
    execution_id: str
    task_id: str
    state: str
    previous: str
    attempt: int
    reason: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class AttemptOpened(Event):
    """An attempt's process is about to be spawned. Its record is committed before the
    spawn (with the group commit of whatever else is pending): after a crash an attempt
    recorded as opened, without a pid, is known to have been at most about to start."""

    kind: ClassVar[str] = "attempt_opened"
    execution_id: str
    task_id: str
    attempt: int
    log_path: str | None
    command: tuple[str, ...]
    wait_s: float


@dataclass(frozen=True, kw_only=True, slots=True)
class TaskStarted(Event):
    kind: ClassVar[str] = "task_started"
    execution_id: str
    task_id: str
    attempt: int
    pid: int | None
    pgid: int | None
    proc_start: float | None
    log_path: str | None
    command: tuple[str, ...]
    wait_s: float


@dataclass(frozen=True, kw_only=True, slots=True)
class TaskRetrying(Event):
    kind: ClassVar[str] = "task_retrying"
    execution_id: str
    task_id: str
    attempt: int
    """The attempt that failed."""
    delay_s: float
    error: str
    state: str = "failed"
    """How the attempt ended: failed or timed_out."""
    exit_code: int | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class TaskFinished(Event):
    """A task reached a terminal state (succeeded, failed, timed_out, cancelled, skipped)."""

    kind: ClassVar[str] = "task_finished"
    execution_id: str
    task_id: str
    state: str
    attempt: int
    exit_code: int | None
    duration_s: float
    wait_s: float
    reason: str
    peak_cpu_pct: float = 0.0
    """Highest CPU % of the task's process tree over a sampling interval (100 = one core),
    and never less than its average over the whole run."""
    peak_rss: int = 0
    """Bytes: the tree's summed RSS at the highest sample, or the largest single process's
    high-water mark as the kernel reported it at exit, whichever is larger."""
    avg_cpu_pct: float = 0.0
    """CPU seconds over running time (paused time excluded), in %."""
    avg_rss: int = 0
    cpu_s: float = 0.0
    """CPU seconds used by the task's processes (user + system, all attempts)."""
    declared_cpu: float = 0.0
    """What the task declared in `resources` (0: nothing), for efficiency and right-sizing."""
    declared_memory_mb: int = 0


@dataclass(frozen=True, kw_only=True, slots=True)
class TaskOutput(Event):
    """Lines a task printed (stdout and stderr merged, control sequences removed)."""

    kind: ClassVar[str] = "task_output"
    execution_id: str
    task_id: str
    attempt: int
    lines: tuple[str, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class TaskMetric(Event):
    """A figure a task reported by printing `L3METRIC name=value`."""

    kind: ClassVar[str] = "task_metric"
    execution_id: str
    workflow_id: str
    task_id: str
    name: str
    value: float


@dataclass(frozen=True, kw_only=True, slots=True)
class DeadlineMissed(Event):
    kind: ClassVar[str] = "deadline_missed"
    execution_id: str
    task_id: str | None
    deadline: float


# ---------------------------------------------------------------- operators & system


@dataclass(frozen=True, kw_only=True, slots=True)
class OperatorAction(Event):
    """A command from a person or a tool (pause, resume, cancel, run...), and its outcome."""

    kind: ClassVar[str] = "operator_action"
    action: str
    execution_id: str | None
    task_id: str | None
    applied: bool
    detail: str
    actor: str


@dataclass(frozen=True, kw_only=True, slots=True)
class ResourceSampled(Event):
    """One resource sample; the payload is the sampler's plain dict."""

    kind: ClassVar[str] = "resource_sampled"
    sample: dict[str, Any]


@dataclass(frozen=True, kw_only=True, slots=True)
class ScheduleFired(Event):
    kind: ClassVar[str] = "schedule_fired"
    schedule_id: str
    workflow_id: str
    fire_time: float
    outcome: str
    """started, skipped (overlap), queued (overlap), missed (catch-up skip), failed (the
    workflow could not be started: unknown workflow, missing params)."""
    execution_id: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ScheduleChanged(Event):
    kind: ClassVar[str] = "schedule_changed"
    schedule_id: str
    enabled: bool


@dataclass(frozen=True, kw_only=True, slots=True)
class BottleneckChanged(Event):
    """The resource manager found a bottleneck or an upgrade worth making (`active`), or a
    bottleneck it reported has cleared (`active=False`). Evidence is the numbers behind it."""

    kind: ClassVar[str] = "bottleneck"
    finding: str
    """cpu_sustained, memory_sustained, disk_nearly_full, swap_activity, long_wait,
    upgrade_memory, upgrade_cpu, upgrade_pool_NAME, upgrade_concurrency."""
    active: bool
    severity: str
    summary: str
    evidence: tuple[str, ...]
    suggestion: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class ReservationChanged(Event):
    """A reservation was made, started (its time came), ended (its time was up) or was
    cancelled. Carries the whole reservation, so the store and a console need nothing else."""

    kind: ClassVar[str] = "reservation"
    reservation_id: str
    change: str
    """made, started, ended, cancelled."""
    cpu: float
    memory_mb: int
    pools: tuple[tuple[str, int], ...]
    starts_at: float
    ends_at: float
    reason: str
    actor: str
    """Who made it (or cancelled it, for `cancelled`)."""
    created_at: float


@dataclass(frozen=True, kw_only=True, slots=True)
class AlertChanged(Event):
    kind: ClassVar[str] = "alert_changed"
    alert_id: str
    rule: str
    state: str
    """raised, acknowledged, snoozed, resolved."""
    severity: str
    message: str
    source: str


@dataclass(frozen=True, kw_only=True, slots=True)
class SystemNotice(Event):
    """Something an operator should know that is not about one execution (store errors,
    recovery after a crash, config reloads)."""

    kind: ClassVar[str] = "system_notice"
    topic: str
    message: str
    severity: str = "info"


EVENT_TYPES: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (
        ExecutionCreated, ExecutionStarted, ExecutionPaused, ExecutionResumed,
        ExecutionFinished, TaskStateChanged, AttemptOpened, TaskStarted, TaskRetrying,
        TaskFinished,
        TaskOutput, TaskMetric, DeadlineMissed, OperatorAction, ResourceSampled,
        ScheduleFired, ScheduleChanged, AlertChanged, SystemNotice, BottleneckChanged,
        ReservationChanged,
    )
}  # fmt: skip
