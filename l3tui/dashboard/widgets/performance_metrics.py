"""The `performance_metrics` pane: task duration p50/p95, throughput, error and success
rates, queue wait and utilisation efficiency (the share of declared CPU and memory tasks
used; the machine's CPU while ready tasks waited) over the widget's window, from
`RuntimeAPI.performance()`.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.widgets import Static

from l3tui.config.schema import PerformanceMetricsWidget
from l3tui.dashboard.text import duration
from l3tui.dashboard.widgets.base import PaneBody, RefreshContext
from l3tui.engine.api import PerformanceView

LABELS = {
    "response_time": "response time",
    "throughput": "throughput",
    "error_rate": "error rate",
    "success_rate": "success rate",
    "queue_wait": "queue wait",
}


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f}%"


def seconds(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.2f}s" if value < 10 else duration(value)


class PerformanceMetrics(Static, PaneBody):
    """A few figures, one per line (aggregates over a window: paced like the charts)."""

    paced = True

    COMPONENT_CLASSES: ClassVar[set[str]] = {"perf--label", "perf--good", "perf--bad",
                                             "perf--muted"}  # fmt: skip
    DEFAULT_CSS = """
    PerformanceMetrics { height: 1fr; padding: 0 1; text-wrap: nowrap; text-overflow: ellipsis; }
    """

    def __init__(self, config: PerformanceMetricsWidget, **kwargs: str | None) -> None:
        super().__init__("", **kwargs)  # type: ignore[arg-type]
        self.config = config
        self._shown: PerformanceView | None = None

    def refresh_from(self, ctx: RefreshContext) -> None:
        view = ctx.api.performance(self.config.window / 1000)
        if view != self._shown:
            self._shown = view
            self.update(self.render_view(view), layout=False)

    def render_view(self, view: PerformanceView) -> Text:
        label = self.get_component_rich_style("perf--label", partial=True)
        good = self.get_component_rich_style("perf--good", partial=True)
        bad = self.get_component_rich_style("perf--bad", partial=True)
        muted = self.get_component_rich_style("perf--muted", partial=True)
        text = Text(no_wrap=True, overflow="ellipsis")
        for metric in self.config.metrics:
            text.append(f"{LABELS[metric]:<15}", label)
            if metric == "response_time":
                text.append(f"p50 {seconds(view.p50_s)}   p95 {seconds(view.p95_s)}")
            elif metric == "throughput":
                text.append(f"{view.throughput_per_min:.1f} tasks/min")
            elif metric == "error_rate":
                style = bad if view.error_rate_pct > 0 else good
                text.append(f"{view.error_rate_pct:.1f}%", style)
            elif metric == "success_rate":
                style = good if view.success_rate_pct >= 90 or not view.finished_tasks else bad
                text.append(f"{view.success_rate_pct:.1f}%", style)
            elif metric == "queue_wait":
                text.append(f"p50 {seconds(view.queue_wait_p50_s)}")
            text.append("\n")
        if self.config.efficiency:
            text.append(f"{'efficiency':<15}", label)
            text.append(f"cpu {percent(view.cpu_efficiency_pct)} · mem "
                        f"{percent(view.memory_efficiency_pct)} of declared used\n")
            if view.busy_while_queued_pct is not None:
                idle = 100 - view.busy_while_queued_pct
                text.append(f"{'while queued':<15}", label)
                text.append(f"CPU {idle:.0f}% idle while tasks waited "
                            f"({duration(view.queued_s)})\n",
                            bad if idle >= 50 else muted)  # fmt: skip
        text.append(f"over the last {duration(view.window_s)} · "
                    f"{view.finished_tasks:,} tasks finished", muted)  # fmt: skip
        return text

    def summary(self) -> str:
        return f"window {duration(self.config.window / 1000)}"
