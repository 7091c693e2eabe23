"""The Runtime's public face: immutable views, and the commands a console may send.

The dashboard imports this module and nothing else from the engine, so a console attached
to a separate daemon process can later be given an object with the same methods.
Views are frozen snapshots: reading one never races the engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from l3tui.config.schema import DashboardFile
from l3tui.engine.bus import Subscription
from l3tui.engine.events import Event


@dataclass(frozen=True, slots=True)
class OpResult:
    """Outcome of a command: whether it applied, and a sentence for the notification."""

    applied: bool
    message: str
    execution_id: str | None = None
    reservation_id: str | None = None
    """The reservation a `reserve` made or a `cancel_reservation` ended."""

    def __bool__(self) -> bool:
        return self.applied


@dataclass(frozen=True, slots=True)
class TaskView:
    execution_id: str
    task_id: str
    name: str
    state: str
    attempt: int
    max_attempts: int
    priority: int
    reason: str
    dependencies: tuple[str, ...]
    started_at: float | None
    finished_at: float | None
    active_s: float
    """Time run in closed stretches; add `now - running_since` while it runs."""
    wait_s: float
    exit_code: int | None
    last_line: str
    log_path: str | None
    cpu_pct: float = 0.0
    rss: int = 0
    peak_cpu_pct: float = 0.0
    peak_rss: int = 0
    metrics: tuple[tuple[str, float], ...] = ()
    running_since: float | None = None
    """When the current stretch of running began (None while paused or not running)."""

    def elapsed(self, now: float) -> float:
        """Time run so far (paused time excluded), the current stretch included."""
        current = now - self.running_since if self.running_since is not None else 0.0
        return self.active_s + max(current, 0.0)
    pid: int | None = None
    """The running attempt's process (its process group has the same id)."""
    worker: str = ""
    """The Dask worker its attempt runs (or ran) on; empty when it runs here."""


@dataclass(frozen=True, slots=True)
class ExecutionView:
    id: str
    workflow_id: str
    workflow_name: str
    state: str
    trigger: str
    parent_id: str | None
    priority: int
    created_at: float
    started_at: float | None
    finished_at: float | None
    reason: str
    definition_hash: str
    tasks: tuple[TaskView, ...]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for task in self.tasks:
            out[task.state] = out.get(task.state, 0) + 1
        return out

    @property
    def done_tasks(self) -> int:
        return sum(1 for t in self.tasks if t.state in TERMINAL_TASK_STATES)


TERMINAL_TASK_STATES = frozenset(
    {"succeeded", "failed", "timed_out", "cancelled", "skipped", "interrupted"}
)
TERMINAL_EXEC_STATES = frozenset({"succeeded", "failed", "cancelled", "interrupted"})


@dataclass(frozen=True, slots=True)
class QueueItemView:
    """A queued or running task, as the task queue pane shows it."""

    execution_id: str
    task_id: str
    workflow_id: str
    name: str
    priority: int
    state: str
    reason: str
    since: float
    """Enqueued at (queued) or started at (running)."""
    cpu_pct: float = 0.0
    rss: int = 0
    worker: str = ""
    """The Dask worker it runs on; empty when it runs here."""


@dataclass(frozen=True, slots=True)
class WorkerView:
    """One worker of a Dask cluster, as its scheduler last described it."""

    address: str
    name: str
    host: str
    threads: int
    resources: tuple[tuple[str, float], ...]
    """What it declared (`--resources pool=N`): tasks needing a pool land only here."""
    memory: int
    """Bytes its process uses (RSS, as the worker measured it)."""
    memory_limit: int
    running: tuple[str, ...]
    """Our attempts running there (`execution/task/attempt`)."""
    last_seen: float
    """Its last heartbeat (epoch seconds)."""
    cpu_pct: float = 0.0


@dataclass(frozen=True, slots=True)
class ClusterView:
    """A Dask scheduler l3tui sends tasks to, and its workers."""

    address: str
    state: str
    """connecting, connected or lost."""
    message: str
    """What is wrong, or how it is going, in one line."""
    since: float
    """When it reached this state."""
    workers: tuple[WorkerView, ...] = ()
    running: int = 0
    """Our attempts in flight on it."""


@dataclass(frozen=True, slots=True)
class AlertView:
    id: str
    rule: str
    name: str
    severity: str
    state: str
    """raised, acknowledged, snoozed, resolved."""
    message: str
    source: str
    raised_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class ScheduleView:
    id: str
    name: str
    workflow_id: str
    cron: str
    timezone: str
    enabled: bool
    next_fire: float | None
    last_fire: float | None
    last_outcome: str
    catch_up: str
    overlap: str


@dataclass(frozen=True, slots=True)
class WorkflowInfo:
    id: str
    name: str
    description: str
    type: str | None
    is_template: bool
    tasks: int
    params: tuple[ParamInfo, ...] = ()


@dataclass(frozen=True, slots=True)
class ParamInfo:
    name: str
    type: str
    required: bool
    default: Any
    description: str
    choices: tuple[Any, ...] | None


@dataclass(frozen=True, slots=True)
class PerformanceView:
    window_s: float
    finished_tasks: int
    p50_s: float | None
    p95_s: float | None
    throughput_per_min: float
    error_rate_pct: float
    success_rate_pct: float
    queue_wait_p50_s: float | None
    cpu_efficiency_pct: float | None = None
    """CPU seconds tasks used over the CPU seconds they declared (cpu x running time),
    over tasks that declared cpu; None when none did."""
    memory_efficiency_pct: float | None = None
    """The same for memory (average RSS x time over memory_mb x time)."""
    busy_while_queued_pct: float | None = None
    """The machine's mean CPU % while ready tasks waited for admission (None: none did)."""
    queued_s: float = 0.0
    """How long ready tasks waited for admission in the window (any number at once)."""


@dataclass(frozen=True, slots=True)
class ReservationView:
    """Capacity held back from admission for a window (see `RuntimeAPI.reserve`)."""

    id: str
    cpu: float
    memory_mb: int
    pools: tuple[tuple[str, int], ...]
    starts_at: float
    ends_at: float
    reason: str
    actor: str
    state: str
    """scheduled, active, ended or cancelled."""


@dataclass(frozen=True, slots=True)
class ReservationRequest:
    """What to hold, from when (None: now) and for how long."""

    cpu: float = 0.0
    memory_mb: int = 0
    pools: tuple[tuple[str, int], ...] = ()
    starts_at: float | None = None
    duration_s: float = 0.0
    reason: str = ""


@dataclass(frozen=True, slots=True)
class AdviceView:
    """Something the Resource Manager advises, with the evidence it rests on."""

    kind: str
    """rightsizing, upgrade or bottleneck."""
    subject: str
    """What it is about: `build/compile`, `pool flutter_build`, `memory`."""
    severity: str
    summary: str
    suggestion: str
    """`resources: {cpu: 2, memory_mb: 320}`, `raise pools.flutter_build to 2`, ..."""
    evidence: tuple[str, ...] = ()
    since: float = 0.0


@dataclass(frozen=True, slots=True)
class RuntimeSnapshot:
    """Everything the console draws on one refresh."""

    at: float
    executions: tuple[ExecutionView, ...]
    """Active executions first (newest first), then recent finished ones."""
    queue_length: int
    running: tuple[QueueItemView, ...]
    resources: dict[str, Any]
    """The latest resource sample (cpu_usage, memory_usage, per_core, load_avg, ...)."""
    alerts: tuple[AlertView, ...] = ()
    schedules: tuple[ScheduleView, ...] = ()
    queue_version: int = 0
    notices: tuple[str, ...] = field(default_factory=tuple)
    health: str = ""
    """One word for the top bar: ok, degraded or unhealthy (empty: not assessed)."""
    connection: str = ""
    """Empty in the process that runs the work; an attached console's link to the daemon
    ("attached to daemon pid 4242 on build-01 since 08:00", or why it is not)."""
    reservations: tuple[ReservationView, ...] = ()
    """Reservations still to come or in force, earliest first."""
    advice: tuple[AdviceView, ...] = ()
    """Bottlenecks, upgrade advice and right-sizing, most pressing first."""


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """One measured aspect of a running l3tui and what to do when it is off."""

    name: str
    value: str
    state: str
    """ok, warn or bad."""
    advice: str = ""


@dataclass(frozen=True, slots=True)
class HealthView:
    """The seed's `maintainSystemHealth`: every check, and the verdict they add up to."""

    at: float
    verdict: str
    """healthy (all ok), degraded (a warning) or unhealthy (something bad)."""
    checks: tuple[HealthCheck, ...]
    pid: int = 0
    host: str = ""
    since: float = 0.0


class RuntimeAPI(Protocol):
    """What a console may ask of the Runtime (in-process today, a daemon client later)."""

    def snapshot(self, recent: int = 20, *, committed: bool = False) -> RuntimeSnapshot:
        """`committed`: a picture whose every state the store has (what a console shows as
        done is on disk); it may be a few milliseconds older than the live one."""
        ...

    def subscribe(
        self, name: str = "console", maxsize: int = 10_000, *, committed: bool = False
    ) -> Subscription:
        """`committed`: each event once the store has it (and everything before it)."""
        ...

    def queue_slice(self, offset: int, limit: int) -> Sequence[QueueItemView]: ...

    def metric_series(self, name: str, window_s: float) -> Sequence[tuple[float, float]]: ...

    def performance(self, window_s: float) -> PerformanceView: ...

    def workflows(self) -> Sequence[WorkflowInfo]: ...

    def execution(self, execution_id: str) -> ExecutionView | None: ...

    def cluster(self) -> Sequence[ClusterView]:
        """The Dask clusters in use or configured (none when everything runs here)."""
        ...

    async def run_workflow(
        self, workflow_id: str, params: dict[str, Any] | None = None, *, actor: str = ""
    ) -> OpResult: ...

    async def pause(
        self, execution_id: str, task_id: str | None = None, *, actor: str = ""
    ) -> OpResult: ...

    async def resume(
        self, execution_id: str, task_id: str | None = None, *, actor: str = ""
    ) -> OpResult: ...

    async def cancel(
        self, execution_id: str, task_id: str | None = None, *, actor: str = ""
    ) -> OpResult: ...

    async def resume_interrupted(self, execution_id: str, *, actor: str = "") -> OpResult: ...

    async def ack_alert(self, alert_id: str, *, actor: str = "") -> OpResult: ...

    async def snooze_alert(self, alert_id: str, seconds: float, *, actor: str = "") -> OpResult: ...

    async def set_schedule_enabled(
        self, schedule_id: str, enabled: bool, *, actor: str = ""
    ) -> OpResult: ...

    async def reload_config(self, *, actor: str = "") -> OpResult: ...

    async def reserve(self, request: ReservationRequest, *, actor: str = "") -> OpResult:
        """Hold capacity for a window; the result names the reservation or says in one
        line why it was refused."""
        ...

    async def cancel_reservation(self, reservation_id: str, *, actor: str = "") -> OpResult: ...

    def dashboards(self) -> DashboardFile:
        """The dashboard file in force (it changes when the config is reloaded)."""
        ...


__all__ = [
    "AdviceView", "AlertView", "ClusterView", "Event", "ExecutionView", "HealthCheck",
    "HealthView", "OpResult", "ParamInfo", "PerformanceView", "QueueItemView",
    "ReservationRequest", "ReservationView", "RuntimeAPI", "RuntimeSnapshot", "ScheduleView",
    "Subscription", "TaskView", "WorkerView", "WorkflowInfo",
]  # fmt: skip
