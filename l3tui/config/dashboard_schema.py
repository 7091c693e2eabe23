"""l3-dashboard.yml: dashboards (layout, refresh, widgets of nine types, each with its options)
and alert rules; the metric names widgets and rules may use."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
)

from l3tui.config.fields import (
    Identifier,
    Model,
    NonNegativeMs,
    PositiveMs,
)

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
    efficiency: bool = True
    """Also show utilisation efficiency: the share of the CPU and memory tasks declared that
    they used, and how busy the machine was while ready tasks waited for admission."""


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


AdviceKind = Literal["bottleneck", "upgrade", "rightsizing"]
ADVICE_KINDS: tuple[AdviceKind, ...] = ("bottleneck", "upgrade", "rightsizing")


class AdviceWidget(WidgetBase):
    """What the Resource Manager advises: reservations, bottlenecks, upgrades, right-sizing."""

    type: Literal["advice"]
    show_reservations: bool = True
    """List reservations to come and in force first (`x` cancels the highlighted one)."""
    kinds: list[AdviceKind] = Field(default_factory=lambda: list(ADVICE_KINDS))
    """Which advice: bottleneck (now), upgrade (from the last day's waits), rightsizing
    (declared resources against measured peaks)."""
    evidence: bool = True
    """Show each piece of advice's evidence under it."""
    max_items: int = Field(default=30, ge=1)
    """Show at most this many pieces of advice."""


class LogViewWidget(WidgetBase):
    """Output of the selected task, following."""

    type: Literal["log_view"]
    max_lines: int = Field(default=5000, ge=100)
    """Lines kept in the view; older ones are dropped (and counted)."""


class ClusterWidget(WidgetBase):
    """The Dask clusters tasks run on: each worker with its resources, memory, our tasks
    running there and its last heartbeat."""

    type: Literal["cluster"]


Widget = Annotated[
    MetricsChartWidget
    | TaskQueueWidget
    | WorkflowStatusWidget
    | PerformanceMetricsWidget
    | AlertsWidget
    | ResourceSparklinesWidget
    | SchedulesWidget
    | LogViewWidget
    | AdviceWidget
    | ClusterWidget,
    Field(discriminator="type"),
]

WIDGET_TYPES = (
    "metrics_chart", "task_queue", "workflow_status", "performance_metrics", "alerts",
    "resource_sparklines", "schedules", "log_view", "advice", "cluster",
)  # fmt: skip


class Permissions(Model):
    """What the dashboard lets its user do."""

    read_only: bool = False
    """Refuse pause, resume, cancel, run, ack, snooze and schedule on/off here (keys dimmed)."""


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
    """How often history charts redraw (ms; floor, slower over SSH); live figures: every 1 s."""
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
