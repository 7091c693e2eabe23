"""Pydantic models of the four config files: the workflows and actions files here, the
scheduling and dashboard files in `scheduling_schema` and `dashboard_schema`, re-exported so
that `l3tui.config.schema` names every model.

Every field has a default where the seed allows one and a one-line docstring that
`l3tui validate --explain KEY` prints. Models check one file's shape; checks that span
files (a recurring task naming a workflow, an action binding) live in `crossref.py`.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from l3tui.config.dashboard_schema import (
    AdviceWidget,
    AlertRule,
    AlertsWidget,
    ClusterWidget,
    Dashboard,
    DashboardFile,
    LogViewWidget,
    MetricsChartWidget,
    PerformanceMetricsWidget,
    ResourceSparklinesWidget,
    SchedulesWidget,
    TaskQueueWidget,
    WorkflowStatusWidget,
)
from l3tui.config.fields import (
    PLACEHOLDER_RE,
    CronExpr,
    Identifier,
    Model,
    NonNegativeMs,
    Percent,
    PositiveMs,
    PriorityRef,
    Timezone,
)
from l3tui.config.scheduling_schema import (
    DEFAULT_PRIORITIES,
    ExecutorChoice,
    ExecutorSpec,
    RecurringTask,
    Retention,
    Scheduling,
    SchedulingFile,
)


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
"""Kept for readers of older code: an executor named by its kind alone."""


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
    executor: ExecutorChoice | None = None
    """Where it runs: local, dask, or {kind: dask, address: ...}; defaults to the workflow's."""

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


class OnAnalysis(Model):
    """Start when an `analysis_update` decision on this topic arrives and `when` holds."""

    topic: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:*?\[\]!-]+$")
    """The update's topic, or a glob of topics (`lint`, `metrics.*`)."""
    when: list[Condition] = Field(default_factory=list)
    """Conditions on the update's payload: `param_equals` on its keys (nested keys dotted:
    `coverage.total`), `env_equals`, `path_exists`, `path_missing`; all must hold."""

    @field_validator("when")
    @classmethod
    def _no_upstream(cls, value: list[Condition]) -> list[Condition]:
        if any(c.upstream is not None for c in value):
            raise ValueError("`upstream` does not apply to an analysis update (it has no "
                             "upstream tasks); use param_equals on the payload")
        return value


class Trigger(Model):
    """Starts the workflow on its own: after another workflow ends, on a cron schedule, or
    when an analysis update arrives."""

    after: Identifier | None = None
    """Start when this workflow's execution ends (see `on`)."""
    on: Literal["success", "failure", "any"] = "success"
    """Which outcome of `after` starts this workflow."""
    cron: CronExpr | None = None
    """Start on this schedule (like a recurring task named after the workflow)."""
    timezone: Timezone | None = None
    """Timezone of `cron`; defaults to the scheduling file's."""
    on_analysis: OnAnalysis | None = None
    """Start when an `analysis_update` decision on `topic` arrives and `when` holds."""

    @model_validator(mode="after")
    def _one_kind(self) -> Trigger:
        given = [k for k in ("after", "cron", "on_analysis") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("a trigger takes exactly one of: after, cron, on_analysis")
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
    executor: ExecutorChoice | None = None
    """Where its tasks run unless a task says otherwise; defaults to scheduling.executor."""
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


__all__ = [
    "DEFAULT_PRIORITIES",
    "PLACEHOLDER_RE",
    "ActionDef",
    "ActionsFile",
    "AdviceWidget",
    "AlertRule",
    "AlertsWidget",
    "ClusterWidget",
    "Condition",
    "Dashboard",
    "DashboardFile",
    "Executor",
    "ExecutorChoice",
    "ExecutorSpec",
    "LogViewWidget",
    "MetricsChartWidget",
    "Model",
    "OnAnalysis",
    "ParamSpec",
    "ParamType",
    "Percent",
    "PerformanceMetricsWidget",
    "RLimits",
    "RecurringTask",
    "ResourceNeeds",
    "ResourceSparklinesWidget",
    "Retention",
    "SchedulesWidget",
    "Scheduling",
    "SchedulingFile",
    "TaskDef",
    "TaskQueueWidget",
    "TemplateDef",
    "Trigger",
    "UpstreamRule",
    "WorkflowDef",
    "WorkflowStatusWidget",
    "WorkflowType",
    "WorkflowsFile",
]
