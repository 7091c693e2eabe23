"""MetricsCollector: the performance figures from the task endings it kept, and the series
its once-a-second tick records from them."""

from __future__ import annotations

import statistics

from l3tui.engine import events as ev
from l3tui.engine.bus import EventBus
from l3tui.monitor.metrics import MetricsCollector

NOW = 1_000_000.0


def finished(at: float, state: str = "succeeded", duration: float = 1.0, wait: float = 0.5,
             cpu: float = 0.0, memory_mb: int = 0, cpu_s: float = 0.0, rss: int = 0
             ) -> ev.TaskFinished:  # fmt: skip
    return ev.TaskFinished(at=at, execution_id="e", task_id=f"t{at}", state=state, attempt=1,
                           exit_code=0, duration_s=duration, wait_s=wait, reason="",
                           peak_cpu_pct=0.0, peak_rss=rss, avg_cpu_pct=0.0, avg_rss=rss,
                           cpu_s=cpu_s, declared_cpu=cpu, declared_memory_mb=memory_mb)


def test_performance_counts_the_window_and_only_what_declared_allocates() -> None:
    bus = EventBus()
    metrics = MetricsCollector(now=lambda: NOW)
    bus.add_listener(metrics.on_event, kinds=MetricsCollector.LISTENS)
    durations = [0.1 * (i + 1) for i in range(40)]
    for i, duration in enumerate(durations):  # every fourth declared 2 cores and used 1
        declared = 2.0 if i % 4 == 0 else 0.0
        bus.publish(finished(NOW - 30, duration=duration, wait=duration / 2, cpu=declared,
                             cpu_s=duration if declared else 5.0))  # fmt: skip
    bus.publish(finished(NOW - 30, state="failed", duration=9.0))
    bus.publish(finished(NOW - 30, state="skipped", duration=99.0))  # did not run
    bus.publish(finished(NOW - 120, duration=99.0))  # before the window
    bus.publish(ev.TaskStateChanged(at=NOW, execution_id="e", task_id="x", state="queued",
                                    previous="waiting", attempt=0))  # not a listened kind
    perf = metrics.performance(60.0)
    ran = sorted([*durations, 9.0])
    assert perf["finished_tasks"] == 41
    assert perf["p50_s"] == statistics.quantiles(ran, n=100, method="inclusive")[49]
    assert perf["p95_s"] == statistics.quantiles(ran, n=100, method="inclusive")[94]
    assert perf["error_rate_pct"] == 100.0 / 41
    assert perf["success_rate_pct"] == 100.0 * 40 / 41
    assert perf["cpu_efficiency_pct"] == 50.0  # used 1 of the 2 declared cores
    assert perf["memory_efficiency_pct"] is None  # nothing declared memory
    metrics.tick(NOW, queue_depth=3, running=2)
    assert metrics.latest("throughput") == 41.0
    assert metrics.latest("response_time") == perf["p50_s"]
    assert metrics.latest("queue_wait") == perf["queue_wait_p50_s"]
    assert metrics.latest("error_rate") == perf["error_rate_pct"]


def test_a_window_is_the_points_inside_it_in_time_order_or_not() -> None:
    """The window of a series in time order is found by bisection, of one with a point older
    than its newest (a wall clock stepped back) by a scan: both are every point inside it,
    in the order recorded, points on the edge included."""
    metrics = MetricsCollector(history=100, now=lambda: NOW)
    for i in range(150):  # the ring keeps the last 100: NOW-99 .. NOW
        metrics.record("cpu_usage", NOW - 149 + i, float(i))
    assert metrics.series("cpu_usage", 10.0) == [(NOW - 10 + k, 139.0 + k) for k in range(11)]
    assert len(metrics.series("cpu_usage", 1000.0)) == 100
    assert metrics.series("cpu_usage", 0.0) == [(NOW, 149.0)]
    assert metrics.series("cpu_usage", 10.0, now=NOW + 100) == []
    assert metrics.series("unknown", 10.0) == []
    # the clock steps back 50 s: a point far outside the window sits after ones inside it
    metrics.record("cpu_usage", NOW - 50, -1.0)
    assert metrics.series("cpu_usage", 10.0) == [
        *[(NOW - 10 + k, 139.0 + k) for k in range(11)]]  # the late point is not inside
    assert metrics.series("cpu_usage", 60.0)[-1] == (NOW - 50, -1.0)
    assert metrics.series("cpu_usage", 60.0)[0] == (NOW - 60, 89.0)
