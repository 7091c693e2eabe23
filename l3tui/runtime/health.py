"""How a running l3tui is doing (the seed's `maintainSystemHealth`): event-loop lag, store
write latency and backlog, the queue's depth and its oldest waiting task, how fresh the
resource sample is, and who is connected; each check with what to do when it is off.

Read-only: it measures and judges, it never acts.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass

from l3tui.config.durations import format_ms
from l3tui.engine.api import HealthCheck, HealthView
from l3tui.engine.clock import Clock
from l3tui.engine.resources.manager import ResourceManager
from l3tui.engine.scheduling.scheduler import TaskScheduler
from l3tui.store.sqlite import Store


@dataclass(frozen=True, slots=True)
class Parts:
    """What health looks at (the Runtime hands its own)."""

    store: Store
    scheduler: TaskScheduler
    resources: ResourceManager
    clock: Clock

VERDICTS = {"ok": "healthy", "warn": "degraded", "bad": "unhealthy"}
WORDS = {"healthy": "ok", "degraded": "degraded", "unhealthy": "unhealthy"}
"""The one word the console's top bar shows for a verdict."""


def assess(runtime: Parts, *, loop_lag_s: float, clients: list[str] | None = None,
           since: float = 0.0) -> HealthView:  # fmt: skip
    checks = [
        _loop(loop_lag_s),
        *_store(runtime),
        _queue(runtime),
        _sampler(runtime),
    ]
    if clients is not None:
        checks.append(HealthCheck("clients", f"{len(clients)} connected"
                                  + (f": {', '.join(clients[:5])}" if clients else ""), "ok"))
    worst = max((c.state for c in checks), key=("ok", "warn", "bad").index)
    return HealthView(at=time.time(), verdict=VERDICTS[worst], checks=tuple(checks),
                      pid=os.getpid(), host=socket.gethostname(), since=since)  # fmt: skip


def _seconds(value: float) -> str:
    return format_ms(value * 1000)


def _loop(lag_s: float) -> HealthCheck:
    value = f"{lag_s * 1000:.0f} ms"
    if lag_s >= 1.0:
        return HealthCheck("event loop", value, "bad", "something blocks the loop: run with "
                           "PYTHONASYNCIODEBUG=1 and look at daemon.log for slow callbacks")
    if lag_s >= 0.1:
        return HealthCheck("event loop", value, "warn", "the machine is busy or the loop is "
                           "doing too much; check `top` for CPU hogs")
    return HealthCheck("event loop", value, "ok")


def _store(runtime: Parts) -> list[HealthCheck]:
    store = runtime.store
    degraded = store.degraded
    backlog = store.backlog()
    latency = store.last_commit_s
    out = []
    if degraded:
        out.append(HealthCheck("store", f"writes failing: {degraded}", "bad",
                               f"free space or fix permissions on {store.path.parent}; "
                               f"{store.held_events} event(s) wait to be written"))
    else:
        state = "warn" if latency >= 0.5 else "ok"
        out.append(HealthCheck("store latency", f"{latency * 1000:.1f} ms per commit", state,
                               "the disk is slow or busy" if state != "ok" else ""))
    state = "bad" if backlog >= 100_000 else "warn" if backlog >= 10_000 else "ok"
    out.append(HealthCheck("store backlog", f"{backlog} event(s) unwritten", state,
                           "the writer cannot keep up; check disk I/O" if state != "ok" else ""))
    return out


def _queue(runtime: Parts) -> HealthCheck:
    scheduler = runtime.scheduler
    depth = scheduler.queue_length()
    oldest = scheduler.waiting_longer_than(0.0, cap=1)
    if not oldest:
        return HealthCheck("queue", f"{depth} queued", "ok")
    waited = runtime.clock.monotonic() - oldest[0].enqueued_mono
    value = (f"{depth} queued; oldest {oldest[0].workflow_id}/{oldest[0].task_id} waiting "
             f"{_seconds(waited)} ({oldest[0].reason})")  # fmt: skip
    limit = runtime.resources.detector.wait_alert_s
    if waited >= limit:
        return HealthCheck("queue", value, "warn", "see what blocks it in the console's queue "
                           "pane or the queue report; raise a pool or a limit if it lasts")
    return HealthCheck("queue", value, "ok")


def _sampler(runtime: Parts) -> HealthCheck:
    interval = runtime.resources.interval_s
    at = runtime.resources.latest.get("at")
    if not isinstance(at, int | float):
        return HealthCheck("resource sampler", "no sample yet", "ok")
    age = runtime.clock.time() - at
    value = f"last sample {_seconds(age)} ago (every {_seconds(interval)})"
    if age > 10 * interval + 5:
        return HealthCheck("resource sampler", value, "bad", "admission uses stale load "
                           "readings; look for sampling errors in the log")
    if age > 3 * interval + 2:
        return HealthCheck("resource sampler", value, "warn", "sampling is slow; the machine "
                           "may be overloaded")
    return HealthCheck("resource sampler", value, "ok")
