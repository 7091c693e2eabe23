"""Pydantic models of the four config files (workflows, scheduling, dashboard, actions).

Every field has a default where the seed allows one and a one-line docstring that
`l3tui validate --explain KEY` prints. Models check one file's shape; checks that span
files (a recurring task naming a workflow, an action binding) live in `crossref.py`.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from l3tui.config.durations import DurationMs

IDENT_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
PLACEHOLDER_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_.]*)(?::-([^}]*))?\}")
"""`${name}` or `${name:-default}`; dotted names (`l3.state_dir`, `env.HOME`) are context."""


def _identifier(value: str) -> str:
    if not IDENT_RE.match(value):
        raise ValueError(f"{value!r} is not a valid id (letters, digits, '_', '.', '-'; no spaces)")
    return value


Identifier = Annotated[str, AfterValidator(_identifier)]


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        from zoneinfo import available_timezones

        from l3tui.config.suggest import closest

        hint = closest(value, available_timezones())
        suggestion = f"did you mean {hint!r}?" if hint else "use an IANA name like 'Asia/Riyadh'"
        raise ValueError(f"unknown timezone {value!r} ({suggestion})") from None
    return value


Timezone = Annotated[str, AfterValidator(_timezone)]


CRON_FIELDS = (
    ("minute", "0-59"), ("hour", "0-23"), ("day", "1-31"), ("month", "1-12 or jan-dec"),
    ("weekday", "0-7 or sun-sat"),
)  # fmt: skip


def _cron(value: str) -> str:
    # imported lazily: ~0.1 s, and only schedules need it
    from croniter import CroniterBadDateError, croniter

    fields = value.split()
    if len(fields) != 5:
        raise ValueError(
            f"cron {value!r} must have 5 fields (minute hour day month weekday), "
            f"found {len(fields)}"
        )
    if not croniter.is_valid(value):
        for index, (name, allowed) in enumerate(CRON_FIELDS):
            probe = ["*"] * 5
            probe[index] = fields[index]
            if not croniter.is_valid(" ".join(probe)):
                raise ValueError(
                    f"invalid cron expression {value!r}: {name} field {fields[index]!r} "
                    f"is not valid ({allowed})"
                )
        raise ValueError(f"invalid cron expression {value!r}")
    try:
        croniter(value, datetime(2000, 1, 1)).get_next(datetime)
    except CroniterBadDateError:
        raise ValueError(f"cron {value!r} never fires (no such date)") from None
    return value


CronExpr = Annotated[str, AfterValidator(_cron)]

PositiveMs = Annotated[DurationMs, Field(gt=0)]
NonNegativeMs = Annotated[DurationMs, Field(ge=0)]
Percent = Annotated[float, Field(gt=0, le=100)]
PriorityRef = str | int
"""A priority by name from `scheduling.priorities` (`high`) or a number (8)."""


class Model(BaseModel):
    """Base of every config model: unknown keys are errors, fields carry docstrings."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        coerce_numbers_to_str=True,
        use_attribute_docstrings=True,
        validate_default=False,
    )


# --------------------------------------------------------------------------- workflows


class WorkflowType(StrEnum):
    """The fifteen kinds of workflow the seed names."""

    FLUTTER_BUILD = "flutter_build"
    FLUTTER_TEST = "flutter_test"
    FLUTTER_DEPLOY = "flutter_deploy"
    CODE_ANALYSIS = "code_analysis"
    CODE_REFACTOR = "code_refactor"
    DEPENDENCY_UPDATE = "dependency_update"
    PERFORMANCE_AUDIT = "performance_audit"
    RESOURCE_OPTIMIZATION = "resource_optimization"
    CACHE_MANAGEMENT = "cache_management"
    ISAR_OPTIMIZATION = "isar_optimization"
    DATA_MIGRATION = "data_migration"
    BACKUP_RESTORE = "backup_restore"
    SYSTEM_CLEANUP = "system_cleanup"
    LOG_ROTATION = "log_rotation"
    HEALTH_CHECK = "health_check"


class UpstreamRule(StrEnum):
    """When a task runs, judged on the outcomes of the tasks it depends on."""

    ALL_SUCCESS = "all_success"
    ALL_DONE = "all_done"
    ONE_FAILED = "one_failed"
    ALWAYS = "always"


class Condition(Model):
    """One condition on a task; give exactly one key. A task runs only when all hold."""

    upstream: UpstreamRule | None = None
    """Rule on upstream outcomes: all_success (default), all_done, one_failed, always."""
    path_exists: str | None = None
    """Run only if this path exists (relative to the task's working directory)."""
    path_missing: str | None = None
    """Run only if this path does not exist."""
    env_equals: dict[str, str] | None = None
    """Run only if each named environment variable has exactly this value."""
    param_equals: dict[str, Any] | None = None
    """Run only if each named parameter of the execution has exactly this value."""

    @model_validator(mode="after")
    def _exactly_one(self) -> Condition:
        given = [name for name in type(self).model_fields if getattr(self, name) is not None]
        if len(given) != 1:
            keys = ", ".join(type(self).model_fields)
            got = f"got {', '.join(given)}" if given else "got none"
            raise ValueError(
                f"a condition takes exactly one of: {keys} ({got}; write one condition per "
                "list item)"
            )
        return self


class ResourceNeeds(Model):
    """What a task needs to start: admission waits until these are free."""

    cpu: float = Field(default=0.0, ge=0)
    """CPU cores the task is expected to use (0 = not accounted)."""
    memory_mb: int = Field(default=0, ge=0)
    """Memory in MB the task is expected to use (0 = not accounted)."""
    pools: dict[Identifier, Annotated[int, Field(ge=1)]] = Field(default_factory=dict)
    """Slots taken in named pools from `scheduling.pools`, e.g. {flutter_build: 1}."""


class RLimits(Model):
    """Hard limits applied to the task's process (setrlimit)."""

    address_space_mb: int | None = Field(default=None, gt=0)
    """Virtual memory cap in MB (RLIMIT_AS)."""
    cpu_seconds: int | None = Field(default=None, gt=0)
    """CPU time cap in seconds (RLIMIT_CPU); the process gets SIGXCPU past it."""
    open_files: int | None = Field(default=None, gt=0)
    """Maximum open file descriptors (RLIMIT_NOFILE)."""
    processes: int | None = Field(default=None, gt=0)
    """Maximum processes for the user while the task runs (RLIMIT_NPROC)."""


Executor = Literal["local", "dask"]


class TaskDef(Model):
    """A task of a workflow: one action run once per attempt."""

    id: Identifier
    """Unique id within the workflow; dependencies refer to it."""
    name: str | None = None
    """Display name (often Arabic); defaults to the id."""
    description: str = ""
    """What the task does, for people."""
    type: str = "custom"
    """Category: analysis, optimization, testing, flutter, riverpod, isar, system, quality..."""
    action: str
    """Action name: bound in l3-actions.yml, or a built-in action."""
    parameters: dict[str, Any] = Field(default_factory=dict)
    """Values for the action's `${name}` placeholders or the built-in action's options."""
    dependencies: list[str] = Field(default_factory=list)
    """Ids of tasks that must finish first."""
    timeout: PositiveMs | None = None
    """Time limit per attempt in ms (or '10m'); defaults to the action's, then the global one."""
    retries: int = Field(default=0, ge=0, le=100)
    """Extra attempts after a failure or timeout."""
    retry_delay: NonNegativeMs = 1000
    """Wait before the first retry, in ms."""
    retry_backoff: float = Field(default=2.0, ge=1.0, le=10.0)
    """Each further retry waits this many times longer."""
    retry_max_delay: PositiveMs = 300_000
    """Upper bound of the wait between retries, in ms."""
    conditions: list[Condition] = Field(default_factory=list)
    """When the task runs; a task whose conditions do not hold is skipped."""
    priority: PriorityRef | None = None
    """Overrides the workflow's priority for this task."""
    deadline: PositiveMs | None = None
    """Must finish within this long after the execution starts, else a deadline event."""
    not_before: str | None = None
    """Hold the task until this local time ('02:00') or instant (ISO 8601)."""
    resources: ResourceNeeds = Field(default_factory=ResourceNeeds)
    """CPU, memory and pool slots the task needs to be admitted."""
    rlimits: RLimits | None = None
    """Hard per-process limits (memory, CPU seconds, files, processes)."""
    env: dict[str, str] = Field(default_factory=dict)
    """Extra environment variables for the task's process."""
    executor: Executor | None = None
    """Where it runs: local (default) or dask."""

    @property
    def display_name(self) -> str:
        return self.name or self.id

    @field_validator("not_before")
    @classmethod
    def _not_before(cls, value: str | None) -> str | None:
        if value is None or "${" in value:
            return value
        if re.fullmatch(r"([01]?\d|2[0-3]):[0-5]\d", value):
            return value
        try:
            datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(
                f"not_before {value!r} must be 'HH:MM' or an ISO 8601 instant"
            ) from None
        return value


class Trigger(Model):
    """Starts the workflow on its own: after another workflow ends, or on a cron schedule."""

    after: Identifier | None = None
    """Start when this workflow's execution ends (see `on`)."""
    on: Literal["success", "failure", "any"] = "success"
    """Which outcome of `after` starts this workflow."""
    cron: CronExpr | None = None
    """Start on this schedule (like a recurring task named after the workflow)."""
    timezone: Timezone | None = None
    """Timezone of `cron`; defaults to the scheduling file's."""

    @model_validator(mode="after")
    def _one_kind(self) -> Trigger:
        if (self.after is None) == (self.cron is None):
            raise ValueError("a trigger takes exactly one of: after, cron")
        return self


class WorkflowDef(Model):
    """A workflow: a DAG of tasks with a name people read."""

    name: str
    """Display name (often Arabic)."""
    description: str = ""
    """What the workflow is for (often Arabic)."""
    version: str = "1.0.0"
    """Version of the definition; executions record the exact definition they ran."""
    type: WorkflowType | None = None
    """Kind of workflow, one of the seed's fifteen (flutter_build, health_check, ...)."""
    priority: PriorityRef = "medium"
    """Default priority of its tasks: a name from scheduling.priorities or a number."""
    deadline: PositiveMs | None = None
    """The whole execution should end within this long, else a deadline event."""
    max_parallel: int | None = Field(default=None, ge=1)
    """At most this many of its tasks run at once (besides the global limit)."""
    executor: Executor = "local"
    """Where its tasks run unless a task says otherwise."""
    triggers: list[Trigger] = Field(default_factory=list)
    """Automatic starts: after another workflow, or on a cron schedule."""
    metadata: dict[str, Any] = Field(default_factory=dict)
    """Free-form data (owner, tags, links); shown, never interpreted."""
    tasks: list[TaskDef] = Field(min_length=1)
    """The tasks; order does not matter, dependencies do."""

    def task(self, task_id: str) -> TaskDef:
        for task in self.tasks:
            if task.id == task_id:
                return task
        raise KeyError(task_id)


ParamType = Literal["string", "integer", "number", "boolean", "path"]


class ParamSpec(Model):
    """A declared parameter of a template."""

    type: ParamType = "string"
    """string, integer, number, boolean or path."""
    default: Any = None
    """Value used when none is given."""
    required: bool | None = None
    """Must be given; defaults to true when there is no default."""
    description: str = ""
    """What the parameter means, shown when asking for it."""
    choices: list[Any] | None = None
    """Allowed values, if only some are."""

    @property
    def is_required(self) -> bool:
        return self.required if self.required is not None else self.default is None


class TemplateDef(WorkflowDef):
    """A workflow with declared `params` whose `${param}` placeholders are filled per run."""

    params: dict[Identifier, ParamSpec] = Field(default_factory=dict)
    """The parameters a run must (or may) give."""


class WorkflowsFile(Model):
    """l3-workflows.yml"""

    workflows: dict[Identifier, WorkflowDef] = Field(default_factory=dict)
    """Workflows by id."""
    templates: dict[Identifier, TemplateDef] = Field(default_factory=dict)
    """Templates by id; instantiated with params (`l3tui run TEMPLATE -p key=value`)."""


# -------------------------------------------------------------------------- scheduling

DEFAULT_PRIORITIES = {"critical": 10, "high": 8, "medium": 5, "low": 3, "background": 1}


class ResourceLimits(Model):
    """Admission limits: a task starts only while all of these have room."""

    max_concurrent_tasks: int = Field(default=20, ge=1)
    """Tasks running at once, over all executions."""
    max_cpu_usage: Percent = 80
    """Measured CPU % of the machine above which non-critical tasks wait."""
    max_memory_usage: Percent = 75
    """Measured memory % above which non-critical tasks wait."""
    hysteresis: float = Field(default=5, ge=0, lt=50)
    """Once over a limit, tasks wait until usage is this many points under it."""
    cpu_cores: float | None = Field(default=None, gt=0)
    """Cores the ledger may allocate to declared task needs; defaults to the machine's."""
    memory_mb: int | None = Field(default=None, gt=0)
    """Memory (MB) the ledger may allocate; defaults to the machine's total."""


class RecurringTask(Model):
    """A workflow started on a cron schedule."""

    id: Identifier
    """Unique id; its last fire time is persisted under it."""
    name: str | None = None
    """Display name (often Arabic)."""
    description: str = ""
    """What it is for."""
    cron: CronExpr
    """Five-field cron expression, e.g. "0 2 * * *" (quote it: a leading * is YAML syntax)."""
    workflow: Identifier
    """Workflow (or template) to start."""
    params: dict[str, Any] = Field(default_factory=dict)
    """Params when `workflow` is a template."""
    enabled: bool = True
    """Disabled schedules never fire (toggle at run time with `s` in the console)."""
    timezone: Timezone | None = None
    """IANA timezone of the cron fields; defaults to scheduling.timezone, then the machine's."""
    catch_up: Literal["skip", "run_once"] = "run_once"
    """After downtime: run_once fires once for all missed times; skip fires none."""
    overlap: Literal["skip", "queue_one", "allow"] = "skip"
    """If the previous run is still going: skip, queue one run after it, or allow both."""
    priority: PriorityRef | None = None
    """Overrides the workflow's priority."""


class Aging(Model):
    """Starvation guard: waiting raises a task's effective priority."""

    interval: PositiveMs = 60_000
    """Each this-long wait adds `step` to the effective priority."""
    step: int = Field(default=1, ge=0)
    """Priority points added per interval waited (0 disables aging)."""
    max_boost: int = Field(default=9, ge=0)
    """Aging never adds more than this."""


class SamplerSettings(Model):
    """The resource sampler (psutil)."""

    interval: PositiveMs = 1000
    """Time between samples."""
    history: int = Field(default=3600, ge=10)
    """Samples kept in memory for charts (3600 at 1 s is an hour)."""


class ExecutionSettings(Model):
    """How tasks are run."""

    grace_period: NonNegativeMs = 10_000
    """After SIGTERM (cancel, timeout), wait this long before SIGKILL."""
    default_timeout: PositiveMs = 3_600_000
    """Time limit for tasks that set none (and whose action sets none)."""
    log_cap_mb: float = Field(default=10, gt=0)
    """Per-task log file cap; output past it is counted, not kept."""
    wait_alert_after: PositiveMs = 600_000
    """A task waiting for resources longer than this is reported as a bottleneck."""
    cleanup_roots: list[str] = Field(default_factory=list)
    """Directories, besides the state dir, the temp dir and the working dir, under which
    cleanup actions may delete files."""


class Retention(Model):
    """How long the store keeps history."""

    metrics_days: float = Field(default=7, gt=0)
    """Downsampled resource metrics older than this are deleted."""
    events_days: float = Field(default=30, gt=0)
    """Events of finished executions older than this are deleted."""


class Scheduling(Model):
    """The `scheduling:` section."""

    priorities: dict[Identifier, int] = Field(default_factory=lambda: dict(DEFAULT_PRIORITIES))
    """Priority names and their levels (higher runs first)."""
    resource_limits: ResourceLimits = Field(default_factory=ResourceLimits)
    """Admission limits."""
    recurring_tasks: list[RecurringTask] = Field(default_factory=list)
    """Workflows started on cron schedules."""
    pools: dict[Identifier, Annotated[int, Field(ge=1)]] = Field(default_factory=dict)
    """Named slot pools, e.g. {flutter_build: 1} so one build runs at a time."""
    timezone: Timezone | None = None
    """Default timezone of cron schedules; defaults to the machine's."""
    aging: Aging = Field(default_factory=Aging)
    """Starvation guard."""
    sampler: SamplerSettings = Field(default_factory=SamplerSettings)
    """Resource sampling."""
    execution: ExecutionSettings = Field(default_factory=ExecutionSettings)
    """Grace period, default timeout, log cap."""
    retention: Retention = Field(default_factory=Retention)
    """History kept in the store."""


class SchedulingFile(Model):
    """l3-scheduling.yml"""

    scheduling: Scheduling = Field(default_factory=Scheduling)
    """Priorities, limits, pools and recurring tasks."""


# --------------------------------------------------------------------------- dashboard

SYSTEM_METRICS = (
    "cpu_usage", "memory_usage", "swap_usage", "disk_usage", "load_avg", "disk_iops",
    "net_in", "net_out", "net_connections", "queue_depth", "running_tasks", "throughput",
    "response_time", "error_rate", "success_rate", "queue_wait",
)  # fmt: skip
"""Metrics the runtime produces; tasks add `task.NAME` by printing `L3METRIC NAME=VALUE`."""

PERFORMANCE_METRICS = ("response_time", "throughput", "error_rate", "success_rate", "queue_wait")

TASK_METRIC_RE = re.compile(r"^task\.[A-Za-z_][A-Za-z0-9_.]*$")


def _metric(value: str) -> str:
    if value in SYSTEM_METRICS or TASK_METRIC_RE.match(value):
        return value
    from l3tui.config.suggest import closest

    hint = closest(value, SYSTEM_METRICS)
    suffix = f" (did you mean {hint!r}?)" if hint else " (or task.NAME for task-reported ones)"
    raise ValueError(f"unknown metric {value!r}{suffix}")


def _perf_metric(value: str) -> str:
    if value in PERFORMANCE_METRICS:
        return value
    from l3tui.config.suggest import closest

    hint = closest(value, PERFORMANCE_METRICS)
    choices = ", ".join(PERFORMANCE_METRICS)
    suffix = f" (did you mean {hint!r}?)" if hint else f" (one of {choices})"
    raise ValueError(f"unknown performance metric {value!r}{suffix}")


MetricName = Annotated[str, AfterValidator(_metric)]
PerfMetricName = Annotated[str, AfterValidator(_perf_metric)]


class WidgetBase(Model):
    """Keys every widget takes."""

    title: str = ""
    """Pane title (often Arabic)."""
    span: int = Field(default=1, ge=1, le=12)
    """Grid columns the pane spans."""
    row_span: int = Field(default=1, ge=1, le=12)
    """Grid rows the pane spans."""


class MetricsChartWidget(WidgetBase):
    """Line or bar chart of metrics over time."""

    type: Literal["metrics_chart"]
    metrics: list[MetricName] = Field(min_length=1)
    """Metrics to plot, e.g. [cpu_usage, memory_usage, disk_usage]."""
    chart_type: Literal["line", "bar"] = "line"
    """line or bar."""
    window: PositiveMs = 600_000
    """Time span shown."""


class TaskQueueWidget(WidgetBase):
    """Queued and running tasks in dispatch order, with why each waits."""

    type: Literal["task_queue"]
    show_completed: bool = False
    """Also list recently finished tasks."""
    max_items: int | None = Field(default=None, ge=1)
    """Show at most this many rows (none: all, scrolled)."""


class WorkflowStatusWidget(WidgetBase):
    """Tree of executions and their tasks."""

    type: Literal["workflow_status"]
    show_active: bool = True
    """Show running, paused and pending executions."""
    show_recent: int = Field(default=10, ge=0)
    """Also show this many recently finished executions."""


class PerformanceMetricsWidget(WidgetBase):
    """Task duration percentiles, throughput and error rate over a window."""

    type: Literal["performance_metrics"]
    metrics: list[PerfMetricName] = Field(
        default_factory=lambda: ["response_time", "throughput", "error_rate"]
    )
    """Which figures: response_time, throughput, error_rate, success_rate, queue_wait."""
    window: PositiveMs = 3_600_000
    """Time span the figures cover."""


class AlertsWidget(WidgetBase):
    """Active alerts; `a` acknowledges."""

    type: Literal["alerts"]
    max_items: int = Field(default=50, ge=1)
    """Show at most this many alerts."""
    show_resolved: bool = True
    """Keep resolved alerts visible (dimmed) for a while."""


class ResourceSparklinesWidget(WidgetBase):
    """Compact sparklines with current values."""

    type: Literal["resource_sparklines"]
    metrics: list[MetricName] = Field(
        default_factory=lambda: ["cpu_usage", "memory_usage", "disk_usage", "load_avg"]
    )
    """Metrics to show, one line each."""
    per_core: bool = False
    """Add one sparkline per CPU core."""


class SchedulesWidget(WidgetBase):
    """Recurring tasks: cron, timezone, next fire, last outcome, enabled."""

    type: Literal["schedules"]


class LogViewWidget(WidgetBase):
    """Output of the selected task, following."""

    type: Literal["log_view"]
    max_lines: int = Field(default=5000, ge=100)
    """Lines kept in the view; older ones are dropped (and counted)."""


Widget = Annotated[
    MetricsChartWidget
    | TaskQueueWidget
    | WorkflowStatusWidget
    | PerformanceMetricsWidget
    | AlertsWidget
    | ResourceSparklinesWidget
    | SchedulesWidget
    | LogViewWidget,
    Field(discriminator="type"),
]

WIDGET_TYPES = (
    "metrics_chart", "task_queue", "workflow_status", "performance_metrics", "alerts",
    "resource_sparklines", "schedules", "log_view",
)  # fmt: skip


class Permissions(Model):
    """What the dashboard lets its user do."""

    read_only: bool = False
    """Hide pause, resume, cancel and run on this dashboard."""


class Dashboard(Model):
    """One console screen."""

    name: str
    """Screen title (often Arabic)."""
    description: str = ""
    """What the screen is for."""
    layout: Literal["grid", "rows", "columns"] = "grid"
    """grid: widgets fill `columns` columns in order; rows/columns: one line of panes."""
    columns: int = Field(default=2, ge=1, le=6)
    """Grid columns."""
    refresh_interval: PositiveMs = 1000
    """How often panes redraw (ms); the console applies a floor and slows down over SSH."""
    permissions: Permissions = Field(default_factory=Permissions)
    """What its user may do."""
    widgets: list[Widget] = Field(min_length=1)
    """Panes, in order."""


class AlertRule(Model):
    """Raise an alert when a metric crosses a threshold for a while."""

    id: Identifier
    """Unique id."""
    name: str | None = None
    """Display name."""
    metric: MetricName
    """Metric to watch (cpu_usage, memory_usage, error_rate, task.NAME...)."""
    op: Literal[">", ">=", "<", "<="] = ">"
    """Comparison with the threshold."""
    threshold: float
    """Value the metric is compared with."""
    for_: NonNegativeMs = Field(default=0, alias="for")
    """The condition must hold this long before the alert is raised."""
    severity: Literal["info", "warning", "critical"] = "warning"
    """info, warning or critical."""
    description: str = ""
    """What to do about it."""

    model_config = ConfigDict(populate_by_name=True)


class DashboardFile(Model):
    """l3-dashboard.yml"""

    dashboards: dict[Identifier, Dashboard] = Field(default_factory=dict)
    """Screens by id; number keys switch between them in this order."""
    alerts: list[AlertRule] = Field(default_factory=list)
    """Alert rules on metrics (built-in alerts need none)."""


# ----------------------------------------------------------------------------- actions


class ActionDef(Model):
    """What an action name runs."""

    shell: bool = False
    """Run `command[0]` with /bin/sh -c; parameters arrive as environment variables."""
    command: list[str] = Field(min_length=1)
    """Argument list; elements may hold `${param}` placeholders from the task's parameters."""
    env: dict[str, str] = Field(default_factory=dict)
    """Extra environment variables (values may hold placeholders)."""
    cwd: str | None = None
    """Working directory (may hold placeholders); relative to where l3tui was started."""
    timeout: PositiveMs | None = None
    """Default time limit for tasks using this action."""
    description: str = ""
    """What the action does."""

    @field_validator("command")
    @classmethod
    def _shell_takes_one_script(cls, value: list[str], info: ValidationInfo) -> list[str]:
        # `shell` is declared first so that it is known here, and the error names `command`.
        if info.data.get("shell") and len(value) != 1:
            raise ValueError(
                f"with shell: true, command must be one script string, got {len(value)} "
                "elements (join them, or drop shell: true to run an argument list)"
            )
        return value


class ActionsFile(Model):
    """l3-actions.yml"""

    actions: dict[str, ActionDef] = Field(default_factory=dict)
    """Action names and the commands they run."""
