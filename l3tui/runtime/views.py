"""The immutable views the console reads (`RuntimeAPI.snapshot`, `execution`, `queue_slice`,
`workflows`), built from the live engine, scheduler, metrics and alerts.

Read-only: nothing here changes what runs. Views are cached per execution and rebuilt only
when something they show moved, so a refresh with 1,000 active executions costs lookups.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from l3tui.config.loader import Config
from l3tui.engine import events as ev
from l3tui.engine.api import (
    ExecutionView,
    ParamInfo,
    QueueItemView,
    RuntimeSnapshot,
    TaskView,
    WorkflowInfo,
)
from l3tui.engine.clock import Clock
from l3tui.engine.model import Execution, TaskRun, TaskState
from l3tui.engine.resources.manager import ResourceManager
from l3tui.engine.scheduling.recurring import RecurringScheduler
from l3tui.engine.scheduling.scheduler import QueueEntry, TaskScheduler
from l3tui.engine.workflow.engine import WorkflowEngine
from l3tui.monitor.alerts import AlertManager
from l3tui.monitor.metrics import MetricsCollector

QUEUE_CACHE_MAX = 4096
"""Ordered queue entries kept between `queue_slice` calls (a pane's head and scrolling);
a longer read (a filter over 100,000) is not kept."""


class RuntimeViews:
    """Snapshots of one Runtime's live state, with the caches that keep them cheap."""

    def __init__(
        self,
        engine: WorkflowEngine,
        scheduler: TaskScheduler,
        resources: ResourceManager,
        metrics: MetricsCollector,
        alerts: AlertManager,
        recurring: RecurringScheduler,
        clock: Clock,
    ) -> None:
        self.engine = engine
        self.scheduler = scheduler
        self.resources = resources
        self.metrics = metrics
        self.alerts = alerts
        self.recurring = recurring
        self.clock = clock
        self.recent: deque[Execution] = deque(maxlen=200)
        """Executions this instance saw finish, newest first."""
        self.stored_recent: list[ExecutionView] = []
        """Executions that finished before this instance started, as the store had them."""
        self._queue_cache: tuple[int, list[QueueEntry]] = (-1, [])
        self._changes: dict[str, int] = {}
        """Events seen per execution: its cached view stays good until this moves."""
        self._view_cache: dict[str, tuple[tuple[int, int, int], ExecutionView, bool, bool]] = {}
        self._deps: dict[int, tuple[object, dict[str, tuple[str, ...]]]] = {}

    def note_change(self, event: ev.Event) -> None:
        """A bus listener: an execution's cached view is stale once it has a new event."""
        exec_id = getattr(event, "execution_id", None)
        if exec_id is not None:
            self._changes[exec_id] = self._changes.get(exec_id, 0) + 1

    def finished(self, execution: Execution) -> None:
        self.recent.appendleft(execution)

    def trim(self, most_tasks: int, least: int = 3) -> list[Execution]:
        """Keep the newest finished executions while their tasks total at most `most_tasks`
        (the newest `least` always); returns those let go, and drops what is cached for them."""
        kept, total = 0, 0
        for execution in self.recent:
            total += len(execution.tasks)
            if kept >= least and total > most_tasks:
                break
            kept += 1
        gone = list(self.recent)[kept:]
        for _ in gone:
            self.recent.pop()
        for execution in gone:
            self._view_cache.pop(execution.id, None)
            self._changes.pop(execution.id, None)
        definitions = {id(e.definition) for e in (*self.recent, *self.engine.active())}
        self._deps = {k: v for k, v in self._deps.items() if k in definitions}
        return gone

    # ------------------------------------------------------------------ builders

    def _dependencies(self, execution: Execution) -> dict[str, tuple[str, ...]]:
        """Each task's dependencies, indexed once per definition (a view of a 10,000-task
        execution would otherwise search the task list once per task)."""
        definition = execution.definition
        cached = self._deps.get(id(definition))
        if cached is None or cached[0] is not definition:
            if len(self._deps) > 256:
                self._deps.clear()
            cached = (definition, {t.id: tuple(t.dependencies) for t in definition.tasks})
            self._deps[id(definition)] = cached
        return cached[1]

    def _task_view(self, execution: Execution, run: TaskRun,
                   dependencies: dict[str, tuple[str, ...]]) -> TaskView:  # fmt: skip
        return TaskView(
            execution_id=execution.id, task_id=run.task_id, name=run.name,
            state=run.state.value, attempt=run.attempt, max_attempts=run.max_attempts,
            priority=run.priority, reason=self._reason(run), dependencies=dependencies[run.task_id],
            started_at=run.started_at, finished_at=run.finished_at, active_s=run.active_s,
            wait_s=run.wait_s, exit_code=run.exit_code, last_line=run.last_line,
            log_path=run.log_path, cpu_pct=run.cpu_pct, rss=run.rss, pid=run.pid,
            peak_cpu_pct=run.peak_cpu_pct, peak_rss=run.peak_rss,
            metrics=tuple(run.metrics.items()), running_since=run.running_since,
            worker=run.worker,
        )  # fmt: skip

    def _reason(self, run: TaskRun) -> str:
        """A queued task's reason is the scheduler's, current; others keep the engine's."""
        if run.state == TaskState.QUEUED:
            entry = self.scheduler.entry_for(run.execution_id, run.task_id)
            if entry is not None:
                return entry.reason
        return run.reason

    def _execution_view(self, execution: Execution) -> ExecutionView:
        deps = self._dependencies(execution)
        return ExecutionView(
            id=execution.id, workflow_id=execution.workflow_id,
            workflow_name=execution.workflow_name, state=execution.state.value,
            trigger=execution.trigger, parent_id=execution.parent_id,
            priority=execution.priority, created_at=execution.created_at,
            started_at=execution.started_at, finished_at=execution.finished_at,
            reason=execution.reason, definition_hash=execution.definition_hash,
            tasks=tuple(self._task_view(execution, run, deps) for run in execution.tasks.values()),
        )  # fmt: skip

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

    # ------------------------------------------------------------------ RuntimeAPI

    def execution(self, execution_id: str) -> ExecutionView | None:
        execution = self.engine.executions.get(execution_id)
        if execution is not None:
            return self._execution_view(execution)
        # Finished before this instance started: as the store had it then.
        return next((v for v in self.stored_recent if v.id == execution_id), None)

    def snapshot(self, recent: int = 20) -> RuntimeSnapshot:
        active = sorted(self.engine.active(), key=lambda e: e.created_at, reverse=True)
        live = {id(e) for e in active} if self.recent else set()  # not `in active`: O(n)
        finished = [e for e in list(self.recent)[:recent] if id(e) not in live]
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
                worker=run.worker if run else "",
            ))  # fmt: skip
        running.sort(key=lambda q: (-q.priority, q.since))
        shown = [*active, *finished]
        views = [self._cached_view(e) for e in shown]
        self._prune_views(shown)
        if len(views) < len(active) + recent:  # fill up from the store's history
            known = {v.id for v in views}
            views.extend([v for v in self.stored_recent if v.id not in known]
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
        """Queued tasks `offset`..`offset+limit` in dispatch order. Only the head up to twice
        the slice is ordered, once per queue change; views (and their reasons) are made for
        the slice only, so a pane showing 30 rows of 100,000 pays for 30 (and no ordered copy
        of 100,000 is kept)."""
        version, entries = self._queue_cache
        wanted = offset + limit
        if version != self.scheduler.version or (len(entries) < wanted
                                                 and len(entries) < self.scheduler.queue_length()):
            # the head the pane shows, doubled for scrolling: no ordered copy of the rest
            entries = self.scheduler.queue(limit=max(2 * wanted, 256))
            if len(entries) <= QUEUE_CACHE_MAX:
                self._queue_cache = (self.scheduler.version, entries)
            else:  # a filter reads the whole queue: hold no ordered copy of it afterwards
                self._queue_cache = (-1, [])
        return [
            QueueItemView(execution_id=e.execution_id, task_id=e.task_id,
                          workflow_id=e.workflow_id, name=e.name, priority=e.priority,
                          state="queued", reason=e.reason, since=e.enqueued_at)
            for e in entries[offset : offset + limit]
        ]  # fmt: skip


def workflow_infos(config: Config) -> list[WorkflowInfo]:
    """What the run picker lists: every workflow, then every template with its params."""
    out = []
    wf = config.workflows
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
