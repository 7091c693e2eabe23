"""Time series for charts and the performance pane, kept in memory from events.

A bus listener (cheap, synchronous) records task endings, task-reported metrics and
resource samples; `tick()` adds queue depth and running counts once a second. Series are
bounded ring buffers; the store keeps the long history. A window of a series is found by
bisection and copied from its end: the console and the alert rules ask for the last minutes
of hour-long series several times a second.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from collections.abc import Callable
from itertools import islice
from operator import itemgetter

from l3tui.engine import events as ev
from l3tui.engine.resources.usage import task_efficiency, total

FAILED_STATES = frozenset({"failed", "timed_out"})
_AT = itemgetter(0)


class MetricsCollector:
    """Series by metric name: cpu_usage, memory_usage, ..., queue_depth, task.NAME."""

    def __init__(self, history: int = 3600, now: Callable[[], float] | None = None) -> None:
        self.history = history
        self._series: dict[str, deque[tuple[float, float]]] = {}
        self._disordered: set[str] = set()
        """Series that got a point older than their newest (a wall clock stepped back, task
        metrics of several tasks): their windows are found by a scan, not by bisection."""
        self._finished: deque[ev.TaskFinished] = deque(maxlen=50_000)
        """The events themselves (immutable by convention): a copy of the eight fields used
        cost ~1 us per task to build; the events take ~70 bytes more each (~3.5 MB full)."""
        self.latest_sample: dict[str, object] = {}
        import time

        self._now = now or time.time

    # ------------------------------------------------------------------ input

    def record(self, name: str, at: float, value: float) -> None:
        series = self._series.get(name)
        if series is None:
            series = self._series[name] = deque(maxlen=self.history)
        elif at < series[-1][0]:
            self._disordered.add(name)
        series.append((at, value))

    LISTENS = (ev.TaskFinished, ev.TaskMetric, ev.ResourceSampled)
    """The events `on_event` looks at (`EventBus.add_listener(..., kinds=LISTENS)`)."""

    def on_event(self, event: ev.Event) -> None:
        if isinstance(event, ev.TaskFinished):
            self._finished.append(event)
        elif isinstance(event, ev.TaskMetric):
            self.record(f"task.{event.name}", event.at, event.value)
        elif isinstance(event, ev.ResourceSampled):
            self.latest_sample = event.sample
            for name in ("cpu_usage", "memory_usage", "swap_usage", "disk_usage", "load_avg",
                         "disk_iops", "net_in", "net_out", "net_connections"):  # fmt: skip
                value = event.sample.get(name)
                if isinstance(value, int | float):
                    self.record(name, event.at, float(value))
            busy = event.sample.get("busy_while_queued")
            if isinstance(busy, int | float):  # only while ready tasks waited
                self.record("busy_while_queued", event.at, float(busy))
                self.record("queued_interval_s", event.at,
                            float(event.sample.get("queued_interval_s") or 0.0))  # fmt: skip

    def tick(self, at: float, queue_depth: int, running: int) -> None:
        """Once a second: engine figures that are states, not events."""
        self.record("queue_depth", at, float(queue_depth))
        self.record("running_tasks", at, float(running))
        perf = _rates(self._ran(60.0, at), 60.0)  # no usage figures: this runs every second
        self.record("throughput", at, perf["throughput_per_min"] or 0.0)
        self.record("error_rate", at, perf["error_rate_pct"] or 0.0)
        self.record("success_rate", at, perf["success_rate_pct"] or 0.0)
        if perf["p50_s"] is not None:
            self.record("response_time", at, perf["p50_s"])
        if perf["queue_wait_p50_s"] is not None:
            self.record("queue_wait", at, perf["queue_wait_p50_s"])

    # ------------------------------------------------------------------ output

    def names(self) -> list[str]:
        return sorted(self._series)

    def series(
        self, name: str, window_s: float, now: float | None = None
    ) -> list[tuple[float, float]]:
        data = self._series.get(name)
        if not data:
            return []
        cutoff = (now if now is not None else self._now()) - window_s
        if data[0][0] >= cutoff:
            return list(data)
        if name in self._disordered:
            return [point for point in data if point[0] >= cutoff]
        # Points in time order: the window is the tail from the first point inside it (an
        # hour-long series scanned whole for its last ten minutes took ~75 us a call).
        inside = len(data) - bisect_left(data, cutoff, key=_AT)
        tail = list(islice(reversed(data), inside))
        tail.reverse()
        return tail

    def latest(self, name: str) -> float | None:
        data = self._series.get(name)
        return data[-1][1] if data else None

    def _ran(self, window_s: float, now: float) -> list[ev.TaskFinished]:
        """Tasks that ran (neither skipped nor cancelled) and finished within the window."""
        cutoff = now - window_s
        return [f for f in self._finished
                if f.at >= cutoff and f.state not in ("skipped", "cancelled")]  # fmt: skip

    def performance(
        self, window_s: float, now: float | None = None
    ) -> dict[str, float | int | None]:
        now = now if now is not None else self._now()
        cutoff = now - window_s
        ran = self._ran(window_s, now)
        # Only tasks that declared something allocate (task_efficiency of the others is
        # zero): 30,000 tasks that declared nothing took ~120 ms to add up as zeros.
        used = total(task_efficiency(f.declared_cpu, f.declared_memory_mb, f.duration_s,
                                     f.cpu_s, f.avg_rss)
                     for f in ran if f.declared_cpu or f.declared_memory_mb)  # fmt: skip
        busy = [v for t, v in self.series("busy_while_queued", window_s, now) if t >= cutoff]
        queued = sum(v for t, v in self.series("queued_interval_s", window_s, now)
                     if t >= cutoff)  # fmt: skip
        return {
            "window_s": window_s,
            **_rates(ran, window_s),
            "cpu_efficiency_pct": used.cpu_pct,
            "memory_efficiency_pct": used.memory_pct,
            "busy_while_queued_pct": sum(busy) / len(busy) if busy else None,
            "queued_s": queued,
        }


def _rates(ran: list[ev.TaskFinished], window_s: float) -> dict[str, float | int | None]:
    """Counts, rates and quantiles of the tasks that ran in a window."""
    durations = sorted([f.duration_s for f in ran])
    waits = sorted([f.wait_s for f in ran])
    failed = ok = 0
    for f in ran:
        if f.state == "succeeded":
            ok += 1
        elif f.state in FAILED_STATES:
            failed += 1
    return {
        "finished_tasks": len(ran),
        "p50_s": _quantile(durations, 0.5),
        "p95_s": _quantile(durations, 0.95),
        "throughput_per_min": len(ran) / (window_s / 60) if window_s else 0.0,
        "error_rate_pct": 100.0 * failed / len(ran) if ran else 0.0,
        "success_rate_pct": 100.0 * ok / len(ran) if ran else 0.0,
        "queue_wait_p50_s": _quantile(waits, 0.5),
    }


def _quantile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    if len(sorted_values) == 1:
        return sorted_values[0]
    # statistics.quantiles(n=100, method="inclusive")[i - 1], the one cut point computed
    # with its formula (it sorted again and made all 99: ~2 ms at 30,000 values)
    n, i = len(sorted_values), round(q * 100)
    j, delta = divmod(i * (n - 1), 100)
    return (sorted_values[j] * (100 - delta) + sorted_values[j + 1] * delta) / 100
