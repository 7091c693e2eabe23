"""Typed events: everything that happens in l3tui is one of these, published on the
`EventBus` (bus.py). Named in the past tense and timestamped; `to_dict` and `EVENT_TYPES`
make them serialisable for the store and a daemon's wire. Immutable by convention, hashable
and compared by value, but not `frozen`: a frozen dataclass sets each field through
`object.__setattr__`, and building a TaskFinished cost 3.9 µs frozen against 1.6 µs plain,
a few times per task on the engine's hot path.

Keyword-only, but for the events of every task (`TaskStateChanged`, `TaskStarted`,
`TaskFinished`, a process's `AttemptOpened`), which also take their fields in order (and `at`
of any event): the engine builds them positionally, because a class called with keywords
gets them as a dict to match against its `__init__` (Python 3.11): a TaskFinished cost
0.8 µs with keywords against 0.3 µs positionally. Their field order is thus part of their
interface.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from typing import Any, ClassVar

log = logging.getLogger(__name__)


@dataclass(slots=True, unsafe_hash=True)
class Event:
    """Base of every event: `at` is wall-clock epoch seconds."""

    kind: ClassVar[str] = "event"
    at: float

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["kind"] = self.kind
        return data


# ------------------------------------------------------------------ executions


@dataclass(kw_only=True, slots=True, unsafe_hash=True)
class ExecutionCreated(Event):
    kind: ClassVar[str] = "execution_created"
    execution_id: str
    workflow_id: str
    workflow_name: str
    definition_hash: str
    definition: str
    """The definition as JSON, encoded once (what the store keeps)."""
    params: dict[str, Any]
    trigger: str
    parent_id: str | None
    priority: int
    tasks: tuple[tuple[str, str], ...]
    """(task id, display name) in definition order."""

    def to_dict(self) -> dict[str, Any]:
        data = Event.to_dict(self)
        data["definition"] = json.loads(self.definition)  # shown as the object it is
        return data


@dataclass(kw_only=True, slots=True, unsafe_hash=True)
class ExecutionStarted(Event):
    kind: ClassVar[str] = "execution_started"
    execution_id: str
    waiting: tuple[tuple[str, str], ...] = ()
    """(task id, reason) of each task that now waits on upstream tasks: one event for
    them all rather than a `task_state` event per task."""


@dataclass(kw_only=True, slots=True, unsafe_hash=True)
class ExecutionPaused(Event):
    kind: ClassVar[str] = "execution_paused"
    execution_id: str


@dataclass(kw_only=True, slots=True, unsafe_hash=True)
class ExecutionResumed(Event):
    kind: ClassVar[str] = "execution_resumed"
    execution_id: str


@dataclass(kw_only=True, slots=True, unsafe_hash=True)
class ExecutionFinished(Event):
    kind: ClassVar[str] = "execution_finished"
    execution_id: str
    workflow_id: str
    state: str
    reason: str
    duration_s: float


# ----------------------------------------------------------------------- tasks


@dataclass(slots=True, unsafe_hash=True)  # positional too: see the module's docstring
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


@dataclass(slots=True, unsafe_hash=True)  # positional too: see the module's docstring
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


@dataclass(slots=True, unsafe_hash=True)  # positional too: see the module's docstring
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


@dataclass(kw_only=True, slots=True, unsafe_hash=True)
class TaskPlaced(Event):
    """A remote executor's attempt landed on a worker (kept in the store's events)."""

    kind: ClassVar[str] = "task_placed"
    execution_id: str
    task_id: str
    attempt: int
    worker: str
    pid: int | None = None
    """Its process on that worker (not on this machine: never signalled from here)."""


@dataclass(kw_only=True, slots=True, unsafe_hash=True)
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


@dataclass(slots=True, unsafe_hash=True)  # positional too: see the module's docstring
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


@dataclass(kw_only=True, slots=True, unsafe_hash=True)
class TaskOutput(Event):
    """Lines a task printed (stdout and stderr merged, control sequences removed)."""

    kind: ClassVar[str] = "task_output"
    execution_id: str
    task_id: str
    attempt: int
    lines: tuple[str, ...]


@dataclass(kw_only=True, slots=True, unsafe_hash=True)
class TaskMetric(Event):
    """A figure a task reported by printing `L3METRIC name=value`."""

    kind: ClassVar[str] = "task_metric"
    execution_id: str
    workflow_id: str
    task_id: str
    name: str
    value: float


@dataclass(kw_only=True, slots=True, unsafe_hash=True)
class DeadlineMissed(Event):
    kind: ClassVar[str] = "deadline_missed"
    execution_id: str
    task_id: str | None
    deadline: float


# ---------------------------------------------------------------- operators & system


@dataclass(kw_only=True, slots=True, unsafe_hash=True)
class OperatorAction(Event):
    """A command from a person or a tool (pause, resume, cancel, run...), and its outcome:
    one command, one event, one audit entry."""

    kind: ClassVar[str] = "operator_action"
    action: str
    """`noun.verb`, named after what it acts on, as every audit entry is: execution.run,
    execution.pause, task.pause, execution.resume, task.resume, execution.cancel,
    task.cancel, execution.resume_interrupted, schedule.enable, schedule.disable, alert.ack,
    alert.snooze, config.reload."""
    execution_id: str | None
    task_id: str | None
    applied: bool
    detail: str
    actor: str
    target: str = ""
    """What it acts on when that is not an execution or task (a schedule id, an alert id)."""


@dataclass(kw_only=True, slots=True, unsafe_hash=True)
class ResourceSampled(Event):
    """One resource sample; the payload is the sampler's plain dict."""

    kind: ClassVar[str] = "resource_sampled"
    sample: dict[str, Any]


@dataclass(kw_only=True, slots=True, unsafe_hash=True)
class ScheduleFired(Event):
    kind: ClassVar[str] = "schedule_fired"
    schedule_id: str
    workflow_id: str
    fire_time: float
    outcome: str
    """started, skipped (overlap), queued (overlap), missed (catch-up skip), failed (the
    workflow could not be started: unknown workflow, missing params)."""
    execution_id: str | None = None


@dataclass(kw_only=True, slots=True, unsafe_hash=True)
class ScheduleChanged(Event):
    kind: ClassVar[str] = "schedule_changed"
    schedule_id: str
    enabled: bool


@dataclass(kw_only=True, slots=True, unsafe_hash=True)
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


@dataclass(kw_only=True, slots=True, unsafe_hash=True)
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


@dataclass(kw_only=True, slots=True, unsafe_hash=True)
class AlertChanged(Event):
    kind: ClassVar[str] = "alert_changed"
    alert_id: str
    rule: str
    state: str
    """raised, acknowledged, snoozed, resolved."""
    severity: str
    message: str
    source: str
    key: str = ""
    """What tells repeats of one problem apart within the rule (a workflow id, a metric)."""
    name: str = ""
    count: int = 1
    """How many times the problem occurred while the alert stayed active."""
    snoozed_until: float | None = None


@dataclass(kw_only=True, slots=True, unsafe_hash=True)
class SystemNotice(Event):
    """Something an operator should know that is not about one execution (store errors,
    recovery after a crash, config reloads)."""

    kind: ClassVar[str] = "system_notice"
    topic: str
    message: str
    severity: str = "info"


# ------------------------------------------------------------------ coordinator


@dataclass(kw_only=True, slots=True, unsafe_hash=True)
class DecisionReceived(Event):
    """A decision from another program is recorded in the store (before anything acts on
    it), or was a repeat of one already recorded (`duplicate`: nothing more happens)."""

    kind: ClassVar[str] = "decision_received"
    decision_id: str
    decision_kind: str
    source: str
    via: str
    """Where it came in: `inbox:NAME`, or `socket` and the client."""
    duplicate: bool = False
    not_before: float | None = None
    """It waits until then before it acts."""


@dataclass(kw_only=True, slots=True, unsafe_hash=True)
class DecisionRejected(Event):
    """A decision refused before it was recorded (malformed, oversized, unknown kind, not a
    regular file, a bad id, a target that does not exist, an id reused for other content)."""

    kind: ClassVar[str] = "decision_rejected"
    decision_id: str | None
    via: str
    reason: str


@dataclass(kw_only=True, slots=True, unsafe_hash=True)
class DecisionActed(Event):
    """A recorded decision was acted on; `applied` False says it could not be, and why."""

    kind: ClassVar[str] = "decision_acted"
    decision_id: str
    decision_kind: str
    applied: bool
    message: str
    execution_ids: tuple[str, ...] = ()


@dataclass(kw_only=True, slots=True, unsafe_hash=True)
class ResultReported(Event):
    """A finished execution's result line is in the outbox, written and fsync'd."""

    kind: ClassVar[str] = "result_reported"
    execution_id: str
    decision_id: str | None
    outcome: str


@dataclass(kw_only=True, slots=True, unsafe_hash=True)
class SinkDropped(Event):
    """An event sink fell behind: events it never got since the last report, and in all."""

    kind: ClassVar[str] = "sink_dropped"
    sink: str
    dropped: int
    total: int


EVENT_TYPES: dict[str, type[Event]] = {
    cls.kind: cls
    for cls in (
        ExecutionCreated, ExecutionStarted, ExecutionPaused, ExecutionResumed,
        ExecutionFinished, TaskStateChanged, AttemptOpened, TaskStarted, TaskRetrying,
        TaskFinished, TaskPlaced,
        TaskOutput, TaskMetric, DeadlineMissed, OperatorAction, ResourceSampled,
        ScheduleFired, ScheduleChanged, AlertChanged, SystemNotice, BottleneckChanged,
        ReservationChanged,
        DecisionReceived, DecisionRejected, DecisionActed, ResultReported, SinkDropped,
    )
}  # fmt: skip
