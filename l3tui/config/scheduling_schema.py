"""l3-scheduling.yml: priorities, admission limits, pools, recurring tasks, aging, sampler,
execution settings and retention."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    Field,
    model_validator,
)

from l3tui.config import roots
from l3tui.config.events_schema import EventsSettings
from l3tui.config.fields import (
    CronExpr,
    Identifier,
    Model,
    NonNegativeMs,
    Percent,
    PositiveMs,
    PriorityRef,
    Timezone,
)


def _cleanup_root(value: str) -> str:
    why = roots.entry_refusal(value)
    if why:
        raise ValueError(why)
    return value


CleanupRoot = Annotated[str, AfterValidator(_cleanup_root)]
"""A directory (absolute, `~/...`, or relative to the working dir); never /, a system
directory, the home directory itself, or (once resolved) a symlink."""

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
    cleanup_roots: list[CleanupRoot] = Field(default_factory=list)
    """Directories besides the state dir where cleanup_files and rotate_logs may act."""
    secrets_file: str | None = None
    """File of `NAME=value` lines for `${secret:NAME}` not found in l3tui's environment
    (relative to the config directory); it must be yours and mode 0600."""


class ExecutorSpec(Model):
    """Where tasks run: here (`local`) or on a Dask cluster (`dask`, with its scheduler's
    address)."""

    kind: Literal["local", "dask"] = "local"
    """local: a process on this machine; dask: a process on a worker of the cluster."""
    address: str | None = None
    """The Dask scheduler, e.g. "tcp://127.0.0.1:8786" or "tls://build-01:8786" (kind dask)."""

    @model_validator(mode="before")
    @classmethod
    def _from_kind(cls, value: Any) -> Any:
        """`executor: dask` is `{kind: dask}` (the address then comes from the default)."""
        return {"kind": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _address_fits(self) -> ExecutorSpec:
        if self.kind == "local" and self.address is not None:
            raise ValueError("address is for kind: dask (a local executor has none)")
        if self.address is not None and not re.fullmatch(r"(tcp|tls|inproc|ucx)://\S+",
                                                         self.address):  # fmt: skip
            raise ValueError(f"address {self.address!r} must look like tcp://HOST:PORT "
                             "(or tls://HOST:PORT)")  # fmt: skip
        return self


ExecutorChoice = ExecutorSpec
"""`local`, `dask` (the cluster of scheduling.executor), or {kind, address}: all read as a
spec."""


def executor_spec(choice: ExecutorChoice | None) -> ExecutorSpec | None:
    """`choice` as a spec (None stays None: no choice made here)."""
    return choice


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
    executor: ExecutorChoice = Field(default_factory=ExecutorSpec)
    """Where tasks run unless their workflow or task says: local, or {kind: dask, address:
    "tcp://HOST:8786"} to run them on a Dask cluster (needs the `dask` extra)."""

    def executor_for(self, *choices: ExecutorChoice | None) -> ExecutorSpec:
        """The executor of a task: the first choice made (task, then workflow), else this
        file's default; `dask` without an address takes the default's address."""
        default = executor_spec(self.executor) or ExecutorSpec()
        for choice in choices:
            spec = executor_spec(choice)
            if spec is None:
                continue
            if spec.kind == "dask" and spec.address is None and default.kind == "dask":
                return default
            return spec
        return default

    def priority_level(self, value: str | int | None, default: int | None = None) -> int:
        """The level of a priority name or number; `default` (else 'medium') when unset."""
        levels = self.priorities or DEFAULT_PRIORITIES
        if isinstance(value, int):
            return value
        if value is None:
            return default if default is not None else levels.get("medium", 5)
        if value in levels:
            return levels[value]
        ordered = sorted(levels.values())
        return ordered[len(ordered) // 2]  # 'medium' absent from a custom map: the middle

    def critical_level(self) -> int:
        """At or above this level a task bypasses the measured-load gate."""
        levels = self.priorities or DEFAULT_PRIORITIES
        return levels.get("critical", max(levels.values()))


class SchedulingFile(Model):
    """l3-scheduling.yml"""

    scheduling: Scheduling = Field(default_factory=Scheduling)
    """Priorities, limits, pools and recurring tasks."""
    events: EventsSettings = Field(default_factory=EventsSettings)
    """Where events and results go besides the store: sinks, the outbox, the inbox."""
