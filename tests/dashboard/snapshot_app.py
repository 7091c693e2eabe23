"""A fixed-data RuntimeAPI for snapshot tests only: a fixed clock, injected resource
readings, and executions, queue, alerts and schedules in known states, so every SVG is the
same on every run. Everything else in the suite drives the real Runtime.

`build_app(...)` returns the real ConsoleApp on top of it.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from l3tui.config import load_config
from l3tui.config.schema import DashboardFile
from l3tui.dashboard.app import ConsoleApp
from l3tui.engine.api import (
    AdviceView,
    AlertView,
    ExecutionView,
    OpResult,
    ParamInfo,
    PerformanceView,
    QueueItemView,
    ReservationRequest,
    ReservationView,
    RuntimeSnapshot,
    ScheduleView,
    TaskView,
    WorkflowInfo,
)
from l3tui.engine.bus import EventBus, Subscription

REPO = Path(__file__).resolve().parents[2]
BUNDLED = REPO / "config"
LOG_SOURCE = REPO / "tests" / "data" / "console"
LOG_DIR = Path("/tmp/l3tui-snapshot-logs")
"""Task logs are shown with their path: copied to a fixed place so the snapshots do not
depend on where the repository is checked out."""
NOW = 1_790_000_000.0
"""2026-09-21 14:13:20 UTC: every time on screen is relative to this."""


def _task(exec_id: str, task_id: str, name: str, state: str, *, started: float | None = None,
          finished: float | None = None, attempt: int = 1, max_attempts: int = 1,
          reason: str = "", exit_code: int | None = None, last_line: str = "",
          deps: tuple[str, ...] = (), pid: int | None = None, cpu: float = 0.0, rss: int = 0,
          log: str | None = None) -> TaskView:  # fmt: skip
    active = ((finished or NOW) - started) if started else 0.0
    return TaskView(
        execution_id=exec_id, task_id=task_id, name=name, state=state,
        attempt=attempt if started else 0, max_attempts=max_attempts, priority=5,
        reason=reason, dependencies=deps, started_at=started, finished_at=finished,
        active_s=active, wait_s=2.0 if started else 0.0, exit_code=exit_code,
        last_line=last_line, log_path=str(LOG_DIR / log) if log else None, cpu_pct=cpu,
        rss=rss, peak_cpu_pct=cpu * 1.4, peak_rss=int(rss * 1.2), pid=pid,
    )  # fmt: skip


def _executions() -> tuple[ExecutionView, ...]:
    demo = "260921-141000-a1b2"
    flutter = "260921-140500-c3d4"
    health = "260921-130000-e5f6"
    river = "260921-120000-0a0b"
    return (
        ExecutionView(
            id=demo, workflow_id="demo_pipeline", workflow_name="خط تجريبي", state="running",
            trigger="manual", parent_id=None, priority=5, created_at=NOW - 200,
            started_at=NOW - 200, finished_at=None, reason="", definition_hash="784af395e534",
            tasks=(
                _task(demo, "checkout", "جلب الشيفرة", "succeeded", started=NOW - 200,
                      finished=NOW - 180, exit_code=0),
                _task(demo, "lint", "فحص الأسلوب", "running", started=NOW - 175,
                      last_line="lint: step 3/4 (3 issues)", deps=("checkout",), pid=4242,
                      cpu=37.5, rss=48 * 1024 * 1024, log="lint.log"),
                _task(demo, "unit_tests", "اختبارات الوحدات", "running", started=NOW - 170,
                      attempt=2, max_attempts=3, last_line="unit tests: 88/120 passed",
                      deps=("checkout",), pid=4250, cpu=91.0, rss=212 * 1024 * 1024),
                _task(demo, "widget_tests", "اختبارات الويدجت", "queued",
                      reason="concurrency 2/2", deps=("checkout",)),
                _task(demo, "docs", "توليد التوثيق", "queued", reason="pool device 1/1",
                      deps=("checkout",)),
                _task(demo, "package", "التحزيم", "waiting",
                      reason="waiting on lint, unit_tests, widget_tests, docs",
                      deps=("lint", "unit_tests", "widget_tests", "docs")),
            ),
        ),
        ExecutionView(
            id=flutter, workflow_id="flutter_optimization",
            workflow_name="Flutter Performance Optimization", state="paused", trigger="cron",
            parent_id=None, priority=5, created_at=NOW - 500, started_at=NOW - 500,
            finished_at=None, reason="paused by operator", definition_hash="5d0e2c11a9b7",
            tasks=(
                _task(flutter, "analyze_performance", "تحليل الأداء", "paused",
                      started=NOW - 480, reason="paused by operator", pid=4100, cpu=0.0,
                      rss=96 * 1024 * 1024),
                _task(flutter, "optimize_widgets", "تحسين الويدجت", "pending",
                      deps=("analyze_performance",)),
                _task(flutter, "run_tests", "تشغيل الاختبارات", "pending",
                      deps=("optimize_widgets",)),
            ),
        ),
        ExecutionView(
            id=health, workflow_id="system_health_check", workflow_name="فحص صحة النظام",
            state="failed", trigger="schedule:daily_health_check", parent_id=None, priority=8,
            created_at=NOW - 4000, started_at=NOW - 4000, finished_at=NOW - 3990,
            reason="check_disk failed", definition_hash="9f1c02aa7e30",
            tasks=(
                _task(health, "check_disk", "فحص القرص", "failed", started=NOW - 4000,
                      finished=NOW - 3998, exit_code=1, reason="disk 96% > 90%"),
                _task(health, "check_memory", "فحص الذاكرة", "succeeded", started=NOW - 4000,
                      finished=NOW - 3999, exit_code=0),
                _task(health, "check_load", "فحص الحمل", "succeeded", started=NOW - 4000,
                      finished=NOW - 3999, exit_code=0),
                _task(health, "disk_report", "تقرير المساحة", "succeeded", started=NOW - 3998,
                      finished=NOW - 3990, exit_code=0),
            ),
        ),
        ExecutionView(
            id=river, workflow_id="riverpod_optimization",
            workflow_name="Riverpod State Management Optimization", state="succeeded",
            trigger="manual", parent_id=None, priority=5, created_at=NOW - 7200,
            started_at=NOW - 7200, finished_at=NOW - 7080, reason="",
            definition_hash="c0ffee123456",
            tasks=(
                _task(river, "analyze_providers", "تحليل الموفرين", "succeeded",
                      started=NOW - 7200, finished=NOW - 7150, exit_code=0),
                _task(river, "optimize_rebuilds", "تحسين إعادة البناء", "succeeded",
                      started=NOW - 7150, finished=NOW - 7080, exit_code=0),
            ),
        ),
    )


def _queue(count: int) -> list[QueueItemView]:
    names = [("flutter_build", "build_apk", "بناء APK"), ("flutter_test", "unit", "اختبار"),
             ("code_analysis", "analyze", "تحليل"), ("log_rotation", "rotate", "تدوير")]  # fmt: skip
    out = []
    for n in range(count):
        workflow, task, name = names[n % len(names)]
        priority = (10, 8, 5, 3, 1)[(n // 7) % 5]
        out.append(QueueItemView(
            execution_id=f"260921-1400{n // 60:02d}-{n:04x}", task_id=f"{task}_{n}",
            workflow_id=workflow, name=f"{name} {n}", priority=priority, state="queued",
            reason="concurrency 2/2" if n % 3 else f"pool {workflow} 1/1",
            since=NOW - 5 * n - 3,
        ))  # fmt: skip
    out.sort(key=lambda q: (-q.priority, q.since))
    return out


def _series(name: str, window_s: float) -> list[tuple[float, float]]:
    shapes = {
        "cpu_usage": (45, 30, 9), "memory_usage": (63, 4, 31), "disk_usage": (71, 0.5, 50),
        "load_avg": (1.6, 0.8, 13), "throughput": (12, 5, 17), "queue_depth": (25, 10, 23),
        "running_tasks": (2, 1, 11), "net_in": (250_000, 200_000, 7),
        "net_out": (90_000, 50_000, 5), "error_rate": (4, 3, 19),
    }  # fmt: skip
    if name not in shapes:
        return []
    base, swing, period = shapes[name]
    points = []
    step = 5.0
    count = int(min(window_s, 600) // step)
    for n in range(count):
        at = NOW - (count - 1 - n) * step
        value = base + swing * math.sin(n / period * 2 * math.pi) * (0.6 + 0.4 * math.cos(n / 7))
        points.append((at, round(max(value, 0.0), 2)))
    return points


def _schedules() -> tuple[ScheduleView, ...]:
    # next fires as the cron fields give them in Asia/Riyadh (UTC+3) from NOW (Mon 17:13)
    rows = [
        ("daily_health_check", "فحص صحة النظام اليومي", "system_health_check", "0 2 * * *",
         True, 31_600, "failed"),
        ("weekly_optimization", "تحسين أسبوعي", "flutter_optimization", "0 3 * * 0", True,
         467_200, "succeeded"),
        ("hourly_log_rotation", "تدوير السجلات كل ساعة", "log_rotation", "0 * * * *", True,
         2_800, "succeeded"),
        ("nightly_backup", "نسخ احتياطي ليلي", "backup_state", "30 3 * * *", False, None, ""),
        ("weekly_cleanup", "تنظيف أسبوعي", "system_cleanup", "0 4 * * 6", True, 384_400,
         "skipped (overlap)"),
    ]  # fmt: skip
    return tuple(
        ScheduleView(id=sid, name=name, workflow_id=wf, cron=cron, timezone="Asia/Riyadh",
                     enabled=on, next_fire=(NOW + nxt) if nxt else None,
                     last_fire=NOW - 3600 if last else None, last_outcome=last,
                     catch_up="run_once", overlap="skip")
        for sid, name, wf, cron, on, nxt, last in rows
    )  # fmt: skip


ALERTS = (
    AlertView(id="disk_full-3", rule="disk_full", name="القرص شبه ممتلئ", severity="critical",
              state="raised", message="disk_usage 96 > 95", source="metric disk_usage",
              raised_at=NOW - 95, updated_at=NOW - 95),
    AlertView(id="execution_failed-2", rule="execution_failed", name="Execution failed",
              severity="warning", state="acknowledged",
              message="system_health_check 260921-130000-e5f6 failed: check_disk failed",
              source="execution 260921-130000-e5f6", raised_at=NOW - 3990,
              updated_at=NOW - 3000),
    AlertView(id="cpu_high-1", rule="cpu_high", name="استخدام المعالج مرتفع",
              severity="warning", state="resolved",
              message="cpu_usage 93 > 90 for 2m — resolved: cpu_usage 41 back within > 90",
              source="metric cpu_usage", raised_at=NOW - 900, updated_at=NOW - 240),
)  # fmt: skip


RESERVATIONS = (
    ReservationView(id="r3f2a91", cpu=4.0, memory_mb=8192, pools=(("flutter_build", 1),),
                    starts_at=NOW - 1800, ends_at=NOW + 5400, reason="بناء الإصدار",
                    actor="alice@pts/3", state="active"),
    ReservationView(id="r77c0de", cpu=0.0, memory_mb=0, pools=(("flutter_build", 1),),
                    starts_at=NOW + 6 * 3600, ends_at=NOW + 8 * 3600, reason="nightly backup",
                    actor="bob@pts/1", state="scheduled"),
)  # fmt: skip
ADVICE = (
    AdviceView(kind="upgrade", subject="pool flutter_build", severity="info",
               summary="pool flutter_build (1 slot(s)) is a bottleneck",
               suggestion="raise pools.flutter_build to 2 if the resource allows",
               evidence=("tasks waited 3.2 h for pool flutter_build in the last 24 h",),
               since=NOW - 7200),
    AdviceView(kind="rightsizing", subject="flutter_build_apk/build_apk", severity="warning",
               summary="under-declared: admission lets the machine overcommit: peaks at "
               "3100 MB (p95) but declares memory_mb 2048",
               suggestion="resources: {cpu: 2, memory_mb: 3904}",
               evidence=("8 measured run(s) from 2026-09-14 02:00 to 2026-09-21 02:00",
                         "RSS peak p95 3100 MB (max 3260 MB); declared 2048 MB")),
)  # fmt: skip


class FixedRuntime:
    """RuntimeAPI over fixed data; commands are recorded and answered, nothing runs."""

    def __init__(self, queued: int = 25, dashboards: DashboardFile | None = None) -> None:
        config = load_config(BUNDLED)
        self.config = config
        self.dashboard_file = dashboards or config.dashboard
        self.bus = EventBus()
        self.queue = _queue(queued)
        self.execs = _executions()
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def dashboards(self) -> DashboardFile:
        return self.dashboard_file

    def snapshot(self, recent: int = 20, *, committed: bool = False) -> RuntimeSnapshot:
        running = []
        for view in self.execs:
            for task in view.tasks:
                if task.state in ("running", "paused"):
                    running.append(QueueItemView(
                        execution_id=view.id, task_id=task.task_id,
                        workflow_id=view.workflow_id, name=task.name, priority=task.priority,
                        state=task.state, reason=task.reason, since=task.started_at or NOW,
                        cpu_pct=task.cpu_pct, rss=task.rss,
                    ))  # fmt: skip
        return RuntimeSnapshot(
            at=NOW, executions=self.execs, queue_length=len(self.queue),
            running=tuple(running),
            resources={name: _series(name, 600)[-1][1]
                       for name in ("cpu_usage", "memory_usage", "disk_usage")}
            | {"per_core": [38.0, 44.0], "at": NOW},  # one sample, however often drawn
            alerts=ALERTS, schedules=_schedules(), queue_version=1,
            reservations=RESERVATIONS, advice=ADVICE,
        )  # fmt: skip

    def subscribe(self, name: str = "console", maxsize: int = 10_000, *,
                  committed: bool = False) -> Subscription:  # fmt: skip
        return self.bus.subscribe(name, maxsize=maxsize)

    def queue_slice(self, offset: int, limit: int) -> Sequence[QueueItemView]:
        return self.queue[offset : offset + limit]

    def metric_series(self, name: str, window_s: float) -> Sequence[tuple[float, float]]:
        return _series(name, window_s)

    def performance(self, window_s: float) -> PerformanceView:
        return PerformanceView(window_s=window_s, finished_tasks=240, p50_s=1.42, p95_s=7.8,
                               throughput_per_min=4.0, error_rate_pct=3.3,
                               success_rate_pct=96.7, queue_wait_p50_s=0.8,
                               cpu_efficiency_pct=38.0, memory_efficiency_pct=61.0,
                               busy_while_queued_pct=42.0, queued_s=1260.0)  # fmt: skip

    def workflows(self) -> Sequence[WorkflowInfo]:
        wf = self.config.workflows
        out = [WorkflowInfo(k, d.name, d.description, d.type, False, len(d.tasks))
               for k, d in wf.workflows.items()]  # fmt: skip
        for k, t in wf.templates.items():
            params = tuple(ParamInfo(n, s.type, s.is_required, s.default, s.description,
                                     tuple(s.choices) if s.choices is not None else None)
                           for n, s in t.params.items())  # fmt: skip
            out.append(WorkflowInfo(k, t.name, t.description, t.type, True, len(t.tasks), params))
        return out

    def execution(self, execution_id: str) -> ExecutionView | None:
        return next((e for e in self.execs if e.id == execution_id), None)

    async def _record(self, name: str, *args: Any) -> OpResult:
        self.calls.append((name, args))
        return OpResult(True, f"{name} {' '.join(str(a) for a in args if a is not None)}")

    async def run_workflow(self, workflow_id: str, params: dict[str, Any] | None = None, *,
                           actor: str = "") -> OpResult:  # fmt: skip
        return await self._record("run_workflow", workflow_id, params)

    async def pause(self, execution_id: str, task_id: str | None = None, *,
                    actor: str = "") -> OpResult:  # fmt: skip
        return await self._record("pause", execution_id, task_id)

    async def resume(self, execution_id: str, task_id: str | None = None, *,
                     actor: str = "") -> OpResult:  # fmt: skip
        return await self._record("resume", execution_id, task_id)

    async def cancel(self, execution_id: str, task_id: str | None = None, *,
                     actor: str = "") -> OpResult:  # fmt: skip
        return await self._record("cancel", execution_id, task_id)

    async def resume_interrupted(self, execution_id: str, *, actor: str = "") -> OpResult:
        return await self._record("resume_interrupted", execution_id)

    async def ack_alert(self, alert_id: str, *, actor: str = "") -> OpResult:
        return await self._record("ack_alert", alert_id)

    async def snooze_alert(self, alert_id: str, seconds: float, *, actor: str = "") -> OpResult:
        return await self._record("snooze_alert", alert_id, seconds)

    async def set_schedule_enabled(self, schedule_id: str, enabled: bool, *,
                                   actor: str = "") -> OpResult:  # fmt: skip
        return await self._record("set_schedule_enabled", schedule_id, enabled)

    async def reload_config(self, *, actor: str = "") -> OpResult:
        return await self._record("reload_config")

    async def reserve(self, request: ReservationRequest, *, actor: str = "") -> OpResult:
        return await self._record("reserve", request)

    async def cancel_reservation(self, reservation_id: str, *, actor: str = "") -> OpResult:
        return await self._record("cancel_reservation", reservation_id)


def build_app(*, theme: str = "l3-dark", bidi: bool = True, queued: int = 25,
              dashboards: DashboardFile | None = None) -> ConsoleApp:  # fmt: skip
    """The real console on fixed data (no SSH slow-down, fixed clock)."""
    shutil.copytree(LOG_SOURCE, LOG_DIR, dirs_exist_ok=True)
    return ConsoleApp(FixedRuntime(queued, dashboards), theme=theme, bidi=bidi, ssh=False,
                      clock=lambda: NOW)  # fmt: skip


def screen_text(app: ConsoleApp) -> str:
    """What the terminal shows now, as plain text (for assertions and for looking)."""
    import io

    from rich.console import Console

    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True,
                      color_system="truecolor", record=True, legacy_windows=False)  # fmt: skip
    console.print(app.screen._compositor.render_update(
        full=True, screen_stack=app._background_screens, simplify=True))  # fmt: skip
    return console.export_text(styles=False)
