"""Runtime: the composition root. Builds the bus, scheduler, executor and engine (and, as
they land, the store, resource manager, recurring tasks and alerts), starts what runs in
the background, and is the one object consoles and commands talk to (`RuntimeAPI`).

    async with Runtime(config, state_dir) as rt:
        result = await rt.run_workflow("demo_pipeline")
        await rt.wait(result.execution_id)

Every background task the Runtime starts is owned and cancelled on exit.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Coroutine, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from l3tui.config.loader import Config
from l3tui.config.schema import DashboardFile, WorkflowDef
from l3tui.engine import events as ev
from l3tui.engine.api import (
    ExecutionView,
    OpResult,
    ParamInfo,
    PerformanceView,
    QueueItemView,
    RuntimeSnapshot,
    TaskView,
    WorkflowInfo,
)
from l3tui.engine.clock import Clock, SystemClock
from l3tui.engine.executors.local import LocalExecutor
from l3tui.engine.model import ExecState, Execution, TaskRun, TaskState
from l3tui.engine.resources.manager import ResourceManager
from l3tui.engine.resources.sampler import Sampler
from l3tui.engine.scheduling.queue_report import QueueReport, build_report
from l3tui.engine.scheduling.recurring import RecurringScheduler, ScheduleStateStore
from l3tui.engine.scheduling.scheduler import QueueEntry, TaskScheduler
from l3tui.engine.workflow.engine import WorkflowEngine
from l3tui.errors import UsageError
from l3tui.monitor.alerts import AlertManager
from l3tui.monitor.metrics import MetricsCollector
from l3tui.runtime.actor import current_actor
from l3tui.runtime.reload import ConfigReloader
from l3tui.store.recovery import RecoveryReport
from l3tui.store.schedules import SqliteScheduleStore
from l3tui.store.sqlite import Store
from l3tui.store.views import plan_resume, recent_views

log = logging.getLogger(__name__)


class Runtime:
    """One l3tui instance: config in, executions out, everything observable."""

    def __init__(
        self,
        config: Config,
        state_dir: Path,
        *,
        clock: Clock | None = None,
        actor: str | None = None,
        tick_s: float = 1.0,
        watch_config: bool = False,
        sampler: Sampler | None = None,
        schedule_store: ScheduleStateStore | None = None,
        fire_schedules: bool = False,
    ) -> None:
        self.config = config
        self.state_dir = state_dir.expanduser().resolve()
        self.clock = clock or SystemClock()
        self.actor = actor or current_actor()
        self.tick_s = tick_s
        self.bus = ev.EventBus()
        sched = config.scheduling
        self.resources = ResourceManager(sched, self.bus, self.clock, self.state_dir,
                                         sampler=sampler, tasks=self._running_runs)  # fmt: skip
        self.scheduler = TaskScheduler(sched, self.clock, self.resources.ledger)
        self.resources.attach(self.scheduler)
        self.executor = LocalExecutor(
            log_cap_bytes=int(sched.execution.log_cap_mb * 1024 * 1024),
            grace_s=sched.execution.grace_period / 1000,
        )
        self.engine = WorkflowEngine(config, self.state_dir, self.bus, self.scheduler,
                                     self.executor, self.clock, self.actor)  # fmt: skip
        self.metrics = MetricsCollector(history=sched.sampler.history, now=self.clock.time)
        self.bus.add_listener(self.metrics.on_event)
        self.alerts = AlertManager(self.bus, self.clock.time, config.dashboard.alerts,
                                   self.metrics)  # fmt: skip
        self.bus.add_listener(self.alerts.on_event)
        self.watch_config = watch_config
        self.reloader = ConfigReloader(config, self._apply_config, self.bus, self.clock.time)
        self.engine.on_finished.append(self._on_execution_finished)
        self.store = Store(self.state_dir, actor=self.actor, retention=sched.retention,
                           now=self.clock.time)  # fmt: skip
        self.recurring = RecurringScheduler(
            config, self.clock, self.bus, schedule_store or SqliteScheduleStore(self.store),
            self.run_workflow,
        )  # fmt: skip
        self.fire_schedules = fire_schedules
        """Long-lived consoles and daemons fire recurring tasks; `l3tui run` does not."""
        self.recent: deque[Execution] = deque(maxlen=200)
        self.recovery: RecoveryReport | None = None
        """What the store found and did on start after an unclean stop (None: not opened)."""
        self._stored_recent: list[ExecutionView] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._queue_cache: tuple[int, list[QueueEntry]] = (-1, [])
        self._changes: dict[str, int] = {}
        """Events seen per execution: its cached view stays good until this moves."""
        self._view_cache: dict[str, tuple[tuple[int, int, int], ExecutionView, bool, bool]] = {}
        self.bus.add_listener(self._note_change)
        self.started = False

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Runtime:
        (self.state_dir / "runs").mkdir(parents=True, exist_ok=True)
        # Before anything runs: lock the state dir, open (or refuse) the database, mark what
        # a previous instance left running as interrupted and kill its leftover processes.
        grace_s = self.config.scheduling.execution.grace_period / 1000
        self.recovery = await self.store.open(self.bus, grace_s=grace_s)
        try:
            self._stored_recent = await self.store.read(recent_views, 50)
            await self.recurring.load()
        except BaseException:
            await self.store.close()
            raise
        self.spawn(self.scheduler.run(), "scheduler-timers")
        self.spawn(self.resources.run(), "resource-sampler")
        if self.fire_schedules:
            self.spawn(self.recurring.run(), "recurring-tasks")
        self.spawn(self._ticker(), "metrics-ticker")
        if self.watch_config:
            self.spawn(self.reloader.watch(), "config-watch")
        self.started = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if not self.started:
            return
        self.started = False
        await self.engine.shutdown(actor=f"{self.actor} (shutdown)")
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self.store.close()

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Start a background task the Runtime owns (cancelled on close; errors logged)."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task %s failed", task.get_name(), exc_info=task.exception())
            self.bus.publish(
                ev.SystemNotice(
                    at=self.clock.time(),
                    topic="runtime",
                    message=f"{task.get_name()} failed: {task.exception()}",
                    severity="error",
                )
            )

    async def _ticker(self) -> None:
        while True:
            self.metrics.tick(self.clock.time(), self.scheduler.queue_length(),
                              len(self.scheduler.running))  # fmt: skip
            self.alerts.evaluate(self.clock.time())
            await asyncio.sleep(self.tick_s)

    def _on_execution_finished(self, execution: Execution) -> None:
        self.recent.appendleft(execution)
        outcome = "success" if execution.state == ExecState.SUCCEEDED else "failure"
        for wf_id, wf in self.config.workflows.workflows.items():
            for trigger in wf.triggers:
                if trigger.after == execution.workflow_id and trigger.on in (outcome, "any"):
                    self.spawn(self.run_workflow(wf_id, trigger=f"after:{execution.id}"),
                               f"trigger-{wf_id}")  # fmt: skip

    # ------------------------------------------------------------------ commands

    async def run_workflow(
        self,
        workflow_id: str,
        params: dict[str, Any] | None = None,
        *,
        actor: str = "",
        trigger: str = "manual",
        priority: str | int | None = None,
    ) -> OpResult:
        """Create and start an execution; the result names it (or says why not)."""
        who = actor or self.actor
        try:
            execution = self.engine.create(workflow_id, params, trigger=trigger,
                                           priority=priority)  # fmt: skip
        except UsageError as exc:
            result = OpResult(False, str(exc))
        else:
            self.engine.start(execution)
            result = OpResult(True, f"started {workflow_id} as {execution.id}", execution.id)
        self.bus.publish(ev.OperatorAction(at=self.clock.time(), action="run",
                                           execution_id=result.execution_id, task_id=None,
                                           applied=result.applied, detail=result.message,
                                           actor=who))  # fmt: skip
        return result

    async def pause(
        self, execution_id: str, task_id: str | None = None, *, actor: str = ""
    ) -> OpResult:
        return self.engine.pause(execution_id, task_id, actor or self.actor)

    async def resume(
        self, execution_id: str, task_id: str | None = None, *, actor: str = ""
    ) -> OpResult:
        return self.engine.resume(execution_id, task_id, actor or self.actor)

    async def cancel(
        self, execution_id: str, task_id: str | None = None, *, actor: str = ""
    ) -> OpResult:
        return self.engine.cancel(execution_id, task_id, actor or self.actor)

    async def resume_interrupted(self, execution_id: str, *, actor: str = "") -> OpResult:
        """A new execution of the stored definition `execution_id` ran (a unique prefix is
        enough): its succeeded tasks are carried over, the rest run; linked as parent."""
        try:
            plan = await self.store.read(plan_resume, execution_id)
            if any(e.id == plan.execution_id for e in self.engine.active()):
                raise UsageError(f"execution {plan.execution_id} is still running")
            try:
                definition = WorkflowDef.model_validate(plan.definition)
            except ValueError as exc:
                raise UsageError(f"the stored definition of {plan.execution_id} no longer "
                                 f"loads: {exc}") from None  # fmt: skip
            execution = self.engine.create(
                plan.workflow_id, plan.params, trigger=f"resume:{plan.execution_id}",
                definition=definition, parent_id=plan.execution_id,
                keep={task_id: TaskState.SUCCEEDED for task_id in plan.keep},
            )  # fmt: skip
        except UsageError as exc:
            result = OpResult(False, str(exc))
        else:
            self.engine.start(execution)
            kept = f"{len(plan.keep)} succeeded task(s) kept" if plan.keep else "nothing kept"
            result = OpResult(True, f"resumed {plan.execution_id} as {execution.id} ({kept}, "
                              f"{len(plan.rerun)} to run)", execution.id)  # fmt: skip
        self.bus.publish(ev.OperatorAction(
            at=self.clock.time(), action="resume-interrupted",
            execution_id=result.execution_id or execution_id, task_id=None,
            applied=result.applied, detail=result.message, actor=actor or self.actor,
        ))  # fmt: skip
        return result

    async def ack_alert(self, alert_id: str, *, actor: str = "") -> OpResult:
        return self.alerts.ack(alert_id, actor or self.actor)

    async def snooze_alert(self, alert_id: str, seconds: float, *, actor: str = "") -> OpResult:
        return self.alerts.snooze(alert_id, seconds, actor or self.actor)

    async def set_schedule_enabled(
        self, schedule_id: str, enabled: bool, *, actor: str = ""
    ) -> OpResult:
        result = await self.recurring.set_enabled(schedule_id, enabled)
        self.bus.publish(ev.OperatorAction(
            at=self.clock.time(), action="enable-schedule" if enabled else "disable-schedule",
            execution_id=None, task_id=schedule_id, applied=result.applied,
            detail=result.message, actor=actor or self.actor,
        ))  # fmt: skip
        return result

    def queue_report(self) -> QueueReport:
        """What blocks the queue and what would unblock it (`optimizeSchedule`)."""
        return build_report(self.scheduler, self.resources.findings())

    def _running_runs(self) -> list[TaskRun]:
        runs = []
        for entry in self.scheduler.running:
            execution = self.engine.executions.get(entry.execution_id)
            if execution is not None and entry.task_id in execution.tasks:
                runs.append(execution.tasks[entry.task_id])
        return runs

    async def reload_config(self, *, actor: str = "") -> OpResult:
        return await self.reloader.reload(actor=actor or self.actor)

    def _apply_config(self, config: Config) -> None:
        """A reloaded, valid config: new executions, alert rules and dashboards use it."""
        self.config = config
        self.engine.reconfigure(config)
        self.scheduler.configure(config.scheduling)
        self.resources.configure(config.scheduling)
        self.recurring.reconfigure(config)
        self.alerts.set_rules(config.dashboard.alerts)

    def dashboards(self) -> DashboardFile:
        return self.config.dashboard

    async def wait(self, execution_id: str) -> ExecState:
        return await self.engine.wait(execution_id)

    # ------------------------------------------------------------------ views

    def subscribe(self, name: str = "console", maxsize: int = 10_000) -> ev.Subscription:
        return self.bus.subscribe(name, maxsize=maxsize)

    def _task_view(self, execution: Execution, run: TaskRun) -> TaskView:
        task = execution.definition.task(run.task_id)
        return TaskView(
            execution_id=execution.id, task_id=run.task_id, name=run.name,
            state=run.state.value, attempt=run.attempt, max_attempts=run.max_attempts,
            priority=run.priority, reason=self._reason(run), dependencies=tuple(task.dependencies),
            started_at=run.started_at, finished_at=run.finished_at, active_s=run.active_s,
            wait_s=run.wait_s, exit_code=run.exit_code, last_line=run.last_line,
            log_path=run.log_path, cpu_pct=run.cpu_pct, rss=run.rss, pid=run.pid,
            peak_cpu_pct=run.peak_cpu_pct, peak_rss=run.peak_rss,
            metrics=tuple(run.metrics.items()), running_since=run.running_since,
        )  # fmt: skip

    def _reason(self, run: TaskRun) -> str:
        """A queued task's reason is the scheduler's, current; others keep the engine's."""
        if run.state == TaskState.QUEUED:
            entry = self.scheduler.entry_for(run.execution_id, run.task_id)
            if entry is not None:
                return entry.reason
        return run.reason

    def _execution_view(self, execution: Execution) -> ExecutionView:
        return ExecutionView(
            id=execution.id, workflow_id=execution.workflow_id,
            workflow_name=execution.workflow_name, state=execution.state.value,
            trigger=execution.trigger, parent_id=execution.parent_id,
            priority=execution.priority, created_at=execution.created_at,
            started_at=execution.started_at, finished_at=execution.finished_at,
            reason=execution.reason, definition_hash=execution.definition_hash,
            tasks=tuple(self._task_view(execution, run) for run in execution.tasks.values()),
        )  # fmt: skip

    def _note_change(self, event: ev.Event) -> None:
        exec_id = getattr(event, "execution_id", None)
        if exec_id is not None:
            self._changes[exec_id] = self._changes.get(exec_id, 0) + 1

    def _cached_view(self, execution: Execution) -> ExecutionView:
        """The execution's view, rebuilt only when it had an event since, or when what it
        shows without events moved: queued tasks' reasons (the scheduler's version) and
        running tasks' CPU/RSS (a new resource sample). A refresh with 1,000 active
        executions then costs dictionary lookups, not 1,000 view builds."""
        key = (self._changes.get(execution.id, 0), self.scheduler.version, self.resources.samples)
        cached = self._view_cache.get(execution.id)
        if cached is not None:
            (changes, version, samples), view, queued, live = cached
            if (changes == key[0] and (not queued or version == key[1])
                    and (not live or samples == key[2])):  # fmt: skip
                return view
        view = self._execution_view(execution)
        queued = any(t.state == "queued" for t in view.tasks)
        live = any(t.state in ("running", "paused") for t in view.tasks)
        self._view_cache[execution.id] = (key, view, queued, live)
        return view

    def _prune_views(self, keep: list[Execution]) -> None:
        if len(self._view_cache) > 2 * len(keep) + 256:
            ids = {e.id for e in keep}
            self._view_cache = {k: v for k, v in self._view_cache.items() if k in ids}
            self._changes = {k: v for k, v in self._changes.items()
                             if k in ids or k in self.engine.executions}  # fmt: skip

    def execution(self, execution_id: str) -> ExecutionView | None:
        execution = self.engine.executions.get(execution_id)
        if execution is not None:
            return self._execution_view(execution)
        # Finished before this instance started: as the store had it then.
        return next((v for v in self._stored_recent if v.id == execution_id), None)

    def snapshot(self, recent: int = 20) -> RuntimeSnapshot:
        active = sorted(self.engine.active(), key=lambda e: e.created_at, reverse=True)
        finished = [e for e in list(self.recent)[:recent] if e not in active]
        running = []
        for entry in self.scheduler.running:
            execution = self.engine.executions.get(entry.execution_id)
            run = execution.tasks.get(entry.task_id) if execution else None
            running.append(QueueItemView(
                execution_id=entry.execution_id, task_id=entry.task_id,
                workflow_id=entry.workflow_id, name=entry.name, priority=entry.priority,
                state=run.state.value if run else "running", reason="",
                since=(run.started_at or entry.enqueued_at) if run else entry.enqueued_at,
                cpu_pct=run.cpu_pct if run else 0.0, rss=run.rss if run else 0,
            ))  # fmt: skip
        running.sort(key=lambda q: (-q.priority, q.since))
        shown = [*active, *finished]
        views = [self._cached_view(e) for e in shown]
        self._prune_views(shown)
        if len(views) < len(active) + recent:  # fill up from the store's history
            known = {v.id for v in views}
            views.extend([v for v in self._stored_recent if v.id not in known]
                         [: len(active) + recent - len(views)])  # fmt: skip
        return RuntimeSnapshot(
            at=self.clock.time(),
            executions=tuple(views),
            queue_length=self.scheduler.queue_length(),
            running=tuple(running),
            resources=dict(self.metrics.latest_sample),
            alerts=self.alerts.views(),
            schedules=tuple(self.recurring.views()),
            queue_version=self.scheduler.version,
        )

    def queue_slice(self, offset: int, limit: int) -> Sequence[QueueItemView]:
        """Queued tasks `offset`..`offset+limit` in dispatch order. The order is sorted once
        per queue change; views (and their reasons) are made for the slice only, so a pane
        showing 30 rows of 100,000 pays for 30."""
        version, entries = self._queue_cache
        if version != self.scheduler.version:
            entries = self.scheduler.queue()
            self._queue_cache = (self.scheduler.version, entries)
        return [
            QueueItemView(execution_id=e.execution_id, task_id=e.task_id,
                          workflow_id=e.workflow_id, name=e.name, priority=e.priority,
                          state="queued", reason=e.reason, since=e.enqueued_at)
            for e in entries[offset : offset + limit]
        ]  # fmt: skip

    def metric_series(self, name: str, window_s: float) -> Sequence[tuple[float, float]]:
        return self.metrics.series(name, window_s)

    def performance(self, window_s: float) -> PerformanceView:
        data = self.metrics.performance(window_s)
        return PerformanceView(**data)  # type: ignore[arg-type]

    def workflows(self) -> Sequence[WorkflowInfo]:
        out = []
        wf = self.config.workflows
        for wf_id, definition in wf.workflows.items():
            out.append(WorkflowInfo(wf_id, definition.name, definition.description,
                                    definition.type, False, len(definition.tasks)))  # fmt: skip
        for wf_id, template in wf.templates.items():
            params = tuple(
                ParamInfo(name, spec.type, spec.is_required, spec.default, spec.description,
                          tuple(spec.choices) if spec.choices is not None else None)
                for name, spec in template.params.items()
            )  # fmt: skip
            out.append(WorkflowInfo(wf_id, template.name, template.description, template.type,
                                    True, len(template.tasks), params))  # fmt: skip
        return out
