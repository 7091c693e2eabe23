"""Runtime: builds the bus, resource manager, scheduler, executor and workflow engine, the
store, metrics, alerts, recurring tasks and config watcher; starts what runs in the
background; and is the one object consoles and commands talk to (`RuntimeAPI`).

    async with Runtime(config, state_dir) as rt:
        result = await rt.run_workflow("demo_pipeline")
        await rt.wait(result.execution_id)

Every background task the Runtime starts is owned and cancelled on exit.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Coroutine, Sequence
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any

from l3tui.config.loader import Config
from l3tui.config.schema import DashboardFile, WorkflowDef
from l3tui.coordinator import Coordinator
from l3tui.engine import events as ev
from l3tui.engine.api import (
    ClusterView,
    ExecutionView,
    HealthView,
    OpResult,
    PerformanceView,
    QueueItemView,
    ReservationRequest,
    RuntimeSnapshot,
    WorkflowInfo,
)
from l3tui.engine.bus import EventBus, Subscription
from l3tui.engine.clock import Clock, SystemClock, wake_at
from l3tui.engine.executors.base import SpawnError
from l3tui.engine.executors.local import LocalExecutor
from l3tui.engine.executors.select import ExecutorSet
from l3tui.engine.model import ExecState, Execution, TaskRun, TaskState
from l3tui.engine.resources.manager import ResourceManager
from l3tui.engine.resources.sampler import Sampler
from l3tui.engine.scheduling.queue_report import QueueReport, build_report
from l3tui.engine.scheduling.recurring import (
    RecurringScheduler,
    ScheduleState,
    ScheduleStateStore,
)
from l3tui.engine.scheduling.scheduler import TaskScheduler
from l3tui.engine.scheduling.timing import keep_time
from l3tui.engine.workflow.engine import WorkflowEngine
from l3tui.errors import UsageError
from l3tui.monitor.alerts import Alert, AlertManager
from l3tui.monitor.metrics import MetricsCollector
from l3tui.runtime.actor import current_actor
from l3tui.runtime.health import WORDS, Parts, assess
from l3tui.runtime.reload import ConfigReloader
from l3tui.runtime.resources import ResourceDesk
from l3tui.runtime.views import RuntimeViews, workflow_infos
from l3tui.store import queries
from l3tui.store.recovery import RecoveryReport
from l3tui.store.schedules import SqliteScheduleStore
from l3tui.store.sqlite import Store
from l3tui.store.views import plan_resume, recent_views

log = logging.getLogger(__name__)

FINISHED_TASKS_KEPT = 50_000
"""Tasks of finished executions kept in memory, newest executions first (see
`Runtime._forget_finished`)."""


class _Unrecorded:
    """Recurring-task state when nothing is recorded (`--no-record`): none is read or kept."""

    async def load(self) -> dict[str, ScheduleState]:
        return {}

    async def save(self, schedule_id: str, state: ScheduleState) -> None:
        return None


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
        adopt_orphans: bool = False,
        record: bool = True,
        coordinate: str = "off",
    ) -> None:
        self.config = config
        self.state_dir = state_dir.expanduser().resolve()
        self.clock = clock or SystemClock()
        self.actor = actor or current_actor()
        self.tick_s = tick_s
        self.bus = EventBus()
        sched = config.scheduling
        self.resources = ResourceManager(sched, self.bus, self.clock, self.state_dir,
                                         sampler=sampler, tasks=self._running_runs)  # fmt: skip
        self.scheduler = TaskScheduler(sched, self.clock, self.resources.ledger,
                                       self.resources.reservations)  # fmt: skip
        self.resources.attach(self.scheduler)
        self.executor = LocalExecutor(
            log_cap_bytes=int(sched.execution.log_cap_mb * 1024 * 1024),
            grace_s=sched.execution.grace_period / 1000,
            adopt_orphans=adopt_orphans,
        )
        self.executors = ExecutorSet(self.executor, sched, self._cluster_changed,
                                     f"{socket.gethostname()}:{self.state_dir}")
        """Where each attempt runs: `executor` (local processes) or a Dask cluster."""
        self.engine = WorkflowEngine(config, self.state_dir, self.bus, self.scheduler,
                                     self.executors, self.clock, self.actor)  # fmt: skip
        self.metrics = MetricsCollector(history=sched.sampler.history, now=self.clock.time)
        self.bus.add_listener(self.metrics.on_event, kinds=MetricsCollector.LISTENS)
        self.alerts = AlertManager(self.bus, self.clock.time, config.dashboard.alerts,
                                   self.metrics, hold=record)  # fmt: skip
        self.bus.add_listener(self.alerts.on_event, kinds=AlertManager.LISTENS)
        self.watch_config = watch_config
        self.reloader = ConfigReloader(config, self._apply_config, self.bus, self.clock.time)
        self.engine.on_finished.append(self._on_execution_finished)
        self.record = record
        """False (`l3tui run --no-record`): no store at all, so nothing waits for a disk."""
        self.store = Store(self.state_dir, actor=self.actor, retention=sched.retention,
                           now=self.clock.time)  # fmt: skip
        self.desk = ResourceDesk(self.resources, self.bus, self.clock,
                                 self.store if record else None)  # fmt: skip
        """Reservations and advice (kept in the store)."""
        self.bus.add_listener(self.desk.on_event, kinds=(ev.ExecutionFinished,))  # all it uses
        if schedule_store is None:
            schedule_store = SqliteScheduleStore(self.store) if record else _Unrecorded()
        self.recurring = RecurringScheduler(config, self.clock, self.bus, schedule_store,
                                            self.run_workflow)  # fmt: skip
        self.fire_schedules = fire_schedules
        """Long-lived consoles and daemons fire recurring tasks; `l3tui run` does not."""
        self.coordinator = (Coordinator(self, inbox=coordinate == "all")
                            if record and coordinate in ("all", "out") else None)  # fmt: skip
        """Decisions in (`all`: daemon, console), results and event sinks out (`out` too:
        `l3tui run`); none without the store."""
        self.recovery: RecoveryReport | None = None
        """What the store found and did on start after an unclean stop (None: not opened)."""
        self._tasks: set[asyncio.Task[Any]] = set()
        self.views = RuntimeViews(self.engine, self.scheduler, self.resources, self.metrics,
                                  self.alerts, self.recurring, self.clock)  # fmt: skip
        self.bus.add_listener(self.views.note_change)
        self.started = False
        self.started_at = 0.0
        self._pictures: list[tuple[int, RuntimeSnapshot]] = []
        """Snapshots taken for a `committed` reader, waiting for the store (bus seq)."""
        self._confirmed: RuntimeSnapshot | None = None
        self.loop_lag_s = 0.0
        """How late the event loop woke up last time (health)."""

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Runtime:
        if self.record:
            # Before anything runs: make the state dir private, lock it, open (or refuse) the
            # database, mark what a previous instance left running as interrupted and kill its
            # leftover processes. A state dir or database that cannot record is refused here.
            grace_s = self.config.scheduling.execution.grace_period / 1000
            self.recovery = await self.store.open(self.bus, grace_s=grace_s)
            try:
                (self.state_dir / "runs").mkdir(exist_ok=True)
                self.views.stored_recent = await self.store.read(recent_views, 50)
                # Alerts still active from an earlier run show again, and new ids continue
                # after the stored ones (the alerts recovery raised wait for this).
                active = await self.store.read(queries.active_alerts)
                self.alerts.restore([Alert.from_row(row) for row in active],
                                    await self.store.read(queries.alert_ids))  # fmt: skip
                await self.recurring.load()
                await self.desk.load()
            except BaseException:
                await self.store.close()
                raise
        else:
            try:
                (self.state_dir / "runs").mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                log.warning("task logs cannot be kept under %s: %s", self.state_dir,
                            exc.strerror or exc)  # fmt: skip
            await self.recurring.load()
        self.spawn(keep_time(self.scheduler), "scheduler-timers")
        self.spawn(self.resources.run(), "resource-sampler")
        if self.fire_schedules:
            self.spawn(self.recurring.run(), "recurring-tasks")
        self.spawn(self._ticker(), "metrics-ticker")  # it measures the loop's lag too
        if self.watch_config:
            self.spawn(self.reloader.watch(), "config-watch")
        self._connect_clusters()
        self.started = True
        self.started_at = self.clock.time()
        if self.coordinator is not None:
            try:
                await self.coordinator.start()
            except BaseException:
                await self.close()
                raise
        return self

    def drain(self, reason: str) -> None:
        """Start nothing more (stopping): no task is admitted, no schedule fires, no new
        execution is accepted; what runs goes on until it ends or is cancelled."""
        self.scheduler.draining = reason
        self.scheduler.version += 1
        for task in list(self._tasks):
            if task.get_name() == "recurring-tasks":
                task.cancel()

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
        await self.executors.close()  # what outlived the grace, and what tasks left behind
        if self.coordinator is not None:
            await self.coordinator.close()  # the results and events of what just ended
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self.desk.close()
        if self.record:
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
        """Metrics and alerts every `tick_s`; how late its own sleep wakes is the loop's lag
        (a watcher of its own woke the idle loop twice more a second for the same figure)."""
        loop = asyncio.get_running_loop()
        while True:
            self.metrics.tick(self.clock.time(), self.scheduler.queue_length(),
                              len(self.scheduler.running))  # fmt: skip
            self.alerts.evaluate(self.clock.time())
            # On the loop's grid of whole `tick_s`, as the scheduler's timer loop polls: an
            # idle loop wakes once for both. At least half a tick away: a lag measured after
            # a late wake stays readable that long (health, the top bar).
            due = ((loop.time() + self.tick_s / 2) // self.tick_s + 1) * self.tick_s
            await wake_at(due)
            self.loop_lag_s = max(loop.time() - due, 0.0)

    def health(self, clients: list[str] | None = None) -> HealthView:
        """Every health check and the verdict (`l3tui doctor`, the top bar's one word)."""
        parts = Parts(self.store, self.scheduler, self.resources, self.clock)
        return assess(parts, loop_lag_s=self.loop_lag_s, clients=clients, since=self.started_at)

    def _on_execution_finished(self, execution: Execution) -> None:
        self.views.finished(execution)
        outcome = "success" if execution.state == ExecState.SUCCEEDED else "failure"
        chain = self._after_chain(execution)
        for wf_id, wf in self.config.workflows.workflows.items():
            for trigger in wf.triggers:
                if trigger.after == execution.workflow_id and trigger.on in (outcome, "any"):
                    if wf_id in chain:  # validate refuses loops; a reload must not sneak one in
                        self.alerts.raise_alert(
                            "trigger_loop", wf_id, name="Trigger loop refused", severity="error",
                            message=f"not starting {wf_id}: `after:` triggers loop "
                            f"({' -> '.join([*reversed(chain), wf_id])})",
                            source=f"execution {execution.id}",
                        )  # fmt: skip
                        continue
                    self.spawn(self.run_workflow(wf_id, trigger=f"after:{execution.id}"),
                               f"trigger-{wf_id}")  # fmt: skip
        self._forget_finished()  # after the chain was looked at

    def _forget_finished(self) -> None:
        """Finished executions stay in memory (the console's recent list, details, `after:`
        chains) while their tasks total at most FINISHED_TASKS_KEPT (the newest three always)
        and they are among the views' newest 200; older ones are let go (the store has them):
        a daemon running large workflows all day kept every one's task records before (~7 MB
        per 10,000 tasks)."""
        self.views.trim(FINISHED_TASKS_KEPT)
        recent = {e.id for e in self.views.recent}
        executions = self.engine.executions
        if len(executions) - len(recent) > len(self.engine.active()):
            for exec_id in [i for i, e in executions.items()
                            if e.state.terminal and i not in recent]:  # fmt: skip
                del executions[exec_id]

    def _after_chain(self, execution: Execution) -> list[str]:
        """Workflows of the `after:` chain that ended in `execution`, newest first."""
        chain: list[str] = []
        current: Execution | None = execution
        while current is not None and len(chain) < 1000:
            chain.append(current.workflow_id)
            parent = current.trigger.removeprefix("after:")
            current = self.engine.executions.get(parent) if parent != current.trigger else None
        return chain

    # ------------------------------------------------------------------ commands

    async def run_workflow(
        self,
        workflow_id: str,
        params: dict[str, Any] | None = None,
        *,
        actor: str = "",
        trigger: str = "manual",
        priority: str | int | None = None,
        definition: WorkflowDef | None = None,
    ) -> OpResult:
        """Create and start an execution; the result names it (or says why not).
        `definition` (a decision's task, batch or deadline) replaces the config's."""
        who = actor or self.actor
        try:
            if self.scheduler.draining:
                raise UsageError(f"not started: {self.scheduler.draining}")
            execution = self.engine.create(workflow_id, params, trigger=trigger,
                                           priority=priority, definition=definition)  # fmt: skip
        except UsageError as exc:
            result = OpResult(False, str(exc))
        else:
            # Its tasks are queued once the store has its start: none runs unrecorded.
            self.engine.start(execution)
            await self.engine.dispatched(execution.id)
            result = OpResult(True, f"started {workflow_id} as {execution.id}", execution.id)
        self.bus.publish(ev.OperatorAction(at=self.clock.time(), action="execution.run",
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
            await self.engine.dispatched(execution.id)
            kept = (f"{len(plan.keep)} succeeded task(s) kept: {_listing(plan.keep)}"
                    if plan.keep else "nothing kept")  # fmt: skip
            again = _listing([f"{t} ({why})" for t, why in zip(plan.rerun, plan.why,
                                                               strict=True)])  # fmt: skip
            result = OpResult(True, f"resumed {plan.execution_id} as {execution.id} ({kept}; "
                              f"{len(plan.rerun)} to run, the store never saw them succeed: "
                              f"{again or '-'})", execution.id)  # fmt: skip
        self.bus.publish(ev.OperatorAction(
            at=self.clock.time(), action="execution.resume_interrupted",
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
            at=self.clock.time(), action="schedule.enable" if enabled else "schedule.disable",
            execution_id=None, task_id=None, target=schedule_id, applied=result.applied,
            detail=result.message, actor=actor or self.actor,
        ))  # fmt: skip
        return result

    async def reserve(self, request: ReservationRequest, *, actor: str = "",
                      reservation_id: str | None = None) -> OpResult:  # fmt: skip
        """Hold capacity for a window (`l3tui reserve`, the console's `v`, the daemon, a
        `reserve` decision, which names the id so that acting twice is seen)."""
        return await self.desk.reserve(request, actor or self.actor, reservation_id)

    async def cancel_reservation(self, reservation_id: str, *, actor: str = "") -> OpResult:
        return await self.desk.cancel(reservation_id, actor or self.actor)

    # ------------------------------------------------------------------ clusters

    def _connect_clusters(self) -> None:
        """Connect (in the background) to the default Dask cluster, if there is one, so the
        cluster pane shows it before a task needs it."""
        spec = self.config.scheduling.executor_for()
        if spec.kind == "dask" and spec.address is not None:
            try:
                self.executors.cluster(spec.address)
            except SpawnError as exc:  # the extra is missing: validate says so too
                log.warning("%s", exc)

    def _cluster_changed(self, address: str, state: str, message: str) -> None:
        """A Dask scheduler lost (an alert while it is) or reached again (resolved)."""
        self.bus.publish(ev.SystemNotice(at=self.clock.time(), topic="dask",
                                         message=f"Dask {address}: {state}: {message}",
                                         severity="error" if state == "lost" else "info"))
        if state == "lost":
            self.alerts.raise_alert(
                "dask_scheduler_lost", address, name="Dask scheduler lost", severity="error",
                message=f"{message}; attempts in flight there are lost and retried as their "
                "policy says", source=address, repeat=False,
            )  # fmt: skip
        elif state == "connected":
            self.alerts.resolve("dask_scheduler_lost", address, "reconnected")

    def cluster(self) -> Sequence[ClusterView]:
        return self.executors.views()

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
        self.executors.configure(config.scheduling)
        self._connect_clusters()
        self.scheduler.configure(config.scheduling)
        self.resources.configure(config.scheduling)
        self.recurring.reconfigure(config)
        self.alerts.set_rules(config.dashboard.alerts)
        if self.coordinator is not None:
            self.coordinator.reconfigure(config)

    def dashboards(self) -> DashboardFile:
        return self.config.dashboard

    async def wait(self, execution_id: str) -> ExecState:
        """Until the execution has ended and the store has its end (so a subscriber has
        been handed every event of it)."""
        state = await self.engine.wait(execution_id)
        await self.bus.durable()
        return state

    # ------------------------------------------------------------------ views

    def subscribe(
        self, name: str = "console", maxsize: int = 10_000, *, committed: bool = False
    ) -> Subscription:
        """`committed=True`: each event only once the store has committed it (and all
        before it), in order, so what a reader shows as done is on disk (`l3tui run`'s
        printer). At once when nothing is recorded."""
        return self.bus.subscribe(name, maxsize=maxsize, committed=committed)

    def execution(self, execution_id: str) -> ExecutionView | None:
        return self.views.execution(execution_id)

    def snapshot(self, recent: int = 20, *, committed: bool = False) -> RuntimeSnapshot:
        snapshot = replace(self.views.snapshot(recent), health=WORDS[self.health().verdict],
                           reservations=self.desk.views(), advice=self.desk.advice())
        if not committed or not self.bus.has_durable:
            return snapshot
        # A picture holds states whose events were published before it was taken: it may
        # be shown once the store has everything up to then. Until that, the newest picture
        # that is confirmed stands in (a commit is milliseconds; pictures are ~1 a second).
        through = self.bus.committed_through()
        taken = self.bus.published
        pending = [(seq, snap) for seq, snap in self._pictures if seq > through]
        for seq, snap in self._pictures:
            if seq <= through:
                self._confirmed = snap
        if taken <= through:
            self._confirmed, pending = snapshot, []
        else:
            pending.append((taken, snapshot))
        self._pictures = pending[-8:]
        return self._confirmed if self._confirmed is not None else snapshot

    def queue_slice(self, offset: int, limit: int) -> Sequence[QueueItemView]:
        return self.views.queue_slice(offset, limit)

    def metric_series(self, name: str, window_s: float) -> Sequence[tuple[float, float]]:
        return self.metrics.series(name, window_s)

    def performance(self, window_s: float) -> PerformanceView:
        data = self.metrics.performance(window_s)
        return PerformanceView(**data)  # type: ignore[arg-type]

    def workflows(self) -> Sequence[WorkflowInfo]:
        return workflow_infos(self.config)


def _listing(items: Sequence[str], most: int = 8) -> str:
    shown = ", ".join(items[:most])
    return shown + (f" and {len(items) - most} more" if len(items) > most else "")
