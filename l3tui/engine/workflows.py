"""WorkflowEngine: creates executions from workflow definitions and drives them.

Event-driven, no loop per execution: a task becomes ready when its upstream tasks end,
goes to the scheduler, runs when admitted, retries with backoff, and settles its
dependants. A task's success is durable (the store has committed it) before any dependant
is dispatched. Pause freezes running process groups and stops dispatch; a paused task's
timeout does not tick. Every operator command returns whether it applied and is an event.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from l3tui.config.loader import Config
from l3tui.config.schema import DEFAULT_PRIORITIES, TaskDef, TemplateDef, WorkflowDef
from l3tui.config.suggest import did_you_mean
from l3tui.engine import events as ev
from l3tui.engine.actions import ActionError, ActionRegistry, CommandJob, InProcessJob
from l3tui.engine.api import OpResult
from l3tui.engine.clock import Clock
from l3tui.engine.conditions import judge
from l3tui.engine.dag import ReadyTracker
from l3tui.engine.executors.local import LocalExecutor, LocalProcess, SpawnError
from l3tui.engine.model import (
    TASK_FAILED,
    ExecState,
    Execution,
    TaskRun,
    TaskState,
    new_execution_id,
)
from l3tui.engine.scheduler import QueueEntry, TaskScheduler
from l3tui.engine.templates import instantiate, resolve_params
from l3tui.engine.timers import PausableTimer, resolve_not_before
from l3tui.errors import UsageError

log = logging.getLogger(__name__)


@dataclass(slots=True, eq=False)
class _Attempt:
    """What the engine holds for a task while it is queued or running."""

    entry: QueueEntry
    process: LocalProcess | None = None
    job_task: asyncio.Task[None] | None = None
    timer: PausableTimer | None = None
    timed_out: bool = False
    cancelled: bool = False
    permanent: bool = False
    """The failure will not go away on retry (missing command, bad parameters)."""
    started: bool = False
    """Its coroutine has begun: cancelling the asyncio task now still runs its `finally`."""


@dataclass(slots=True, eq=False)
class _Live:
    """Runtime-only state of an execution."""

    execution: Execution
    definition: WorkflowDef
    tracker: ReadyTracker
    attempts: dict[str, _Attempt] = field(default_factory=dict)
    retry_timers: dict[str, PausableTimer] = field(default_factory=dict)
    deadline_timers: list[asyncio.TimerHandle] = field(default_factory=list)
    done: asyncio.Future[ExecState] | None = None
    keep_results: Mapping[str, TaskState] = field(default_factory=dict)
    task_defs: dict[str, TaskDef] = field(default_factory=dict)
    directory: Path = Path()
    """state/runs/<execution id>: task logs and the `${l3.execution_dir}` of its tasks."""
    context: dict[str, Any] = field(default_factory=dict)
    """The `l3.*` placeholder values shared by all its tasks."""
    unfinished: int = 0
    """Tasks not yet in a terminal state; the execution ends when it reaches 0."""


def definition_hash(definition: WorkflowDef) -> str:
    canonical = json.dumps(definition.model_dump(mode="json", by_alias=True), sort_keys=True,
                           ensure_ascii=False, separators=(",", ":"))  # fmt: skip
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


class WorkflowEngine:
    """Runs executions; the only writer of Execution and TaskRun records."""

    def __init__(
        self,
        config: Config,
        state_dir: Path,
        bus: ev.EventBus,
        scheduler: TaskScheduler,
        executor: LocalExecutor,
        clock: Clock,
        actor: str = "engine",
    ) -> None:
        self.config = config
        self.state_dir = state_dir
        self.bus = bus
        self.scheduler = scheduler
        self.executor = executor
        self.clock = clock
        self.actor = actor
        self.registry = ActionRegistry(config, state_dir)
        self.executions: dict[str, Execution] = {}
        self._live: dict[str, _Live] = {}
        self.on_finished: list[Callable[[Execution], None]] = []
        self.grace_s = config.scheduling.execution.grace_period / 1000
        self._critical = self.critical_level()

    # ------------------------------------------------------------------ config

    def reconfigure(self, config: Config) -> None:
        """New definitions for new executions; running ones keep what they started with."""
        self.config = config
        self.registry = ActionRegistry(config, self.state_dir)
        self._critical = self.critical_level()

    def priority_of(self, value: str | int | None, default: int | None = None) -> int:
        levels = self.config.scheduling.priorities or DEFAULT_PRIORITIES
        if isinstance(value, int):
            return value
        if value is None:
            return default if default is not None else levels.get("medium", 5)
        if value in levels:
            return levels[value]
        ordered = sorted(levels.values())
        return ordered[len(ordered) // 2]  # 'medium' absent from a custom map: the middle

    def critical_level(self) -> int:
        levels = self.config.scheduling.priorities or DEFAULT_PRIORITIES
        return levels.get("critical", max(levels.values()))

    # ------------------------------------------------------------------ create

    def definition_for(
        self, workflow_id: str, params: Mapping[str, Any]
    ) -> tuple[WorkflowDef, dict[str, Any]]:
        wf = self.config.workflows
        if workflow_id in wf.templates:
            return instantiate(workflow_id, wf.templates[workflow_id], params)
        if workflow_id in wf.workflows:
            if params:
                raise UsageError(
                    f"{workflow_id!r} is a workflow, not a template; it takes no params (-p)"
                )
            return wf.workflows[workflow_id], {}
        known = [*wf.workflows, *wf.templates]
        raise UsageError(f"unknown workflow {workflow_id!r}{did_you_mean(workflow_id, known)}")

    def create(
        self,
        workflow_id: str,
        params: Mapping[str, Any] | None = None,
        *,
        trigger: str = "manual",
        definition: WorkflowDef | None = None,
        parent_id: str | None = None,
        keep: Mapping[str, TaskState] | None = None,
        priority: str | int | None = None,
    ) -> Execution:
        """A new pending execution. `definition` and `keep` are for resuming an interrupted
        one: the same definition, with the tasks in `keep` carried over as they ended."""
        params = dict(params or {})
        if definition is None:
            definition, params = self.definition_for(workflow_id, params)
        elif workflow_id in self.config.workflows.templates and params:
            template: TemplateDef = self.config.workflows.templates[workflow_id]
            params = resolve_params(workflow_id, template, params)
        now = self.clock.time()
        exec_id = new_execution_id(now)
        while exec_id in self.executions:
            exec_id = new_execution_id(now)
        base_priority = self.priority_of(priority if priority is not None else definition.priority)
        execution = Execution(
            id=exec_id,
            workflow_id=workflow_id,
            workflow_name=definition.name,
            definition=definition,
            definition_hash=definition_hash(definition),
            params=params,
            trigger=trigger,
            parent_id=parent_id,
            priority=base_priority,
            created_at=now,
        )
        for task in definition.tasks:
            execution.tasks[task.id] = TaskRun(
                execution_id=exec_id,
                task_id=task.id,
                name=task.display_name,
                max_attempts=task.retries + 1,
                priority=self.priority_of(task.priority, base_priority),
            )
        self.executions[exec_id] = execution
        deps = {t.id: list(t.dependencies) for t in definition.tasks}
        live = _Live(
            execution,
            definition,
            ReadyTracker(deps),
            keep_results=dict(keep or {}),
            task_defs={t.id: t for t in definition.tasks},
            unfinished=len(definition.tasks),
        )
        live.done = asyncio.get_running_loop().create_future()
        live.directory = self.state_dir / "runs" / exec_id
        live.context = {
            "l3.state_dir": str(self.state_dir), "l3.execution_id": exec_id,
            "l3.execution_dir": str(live.directory),
            "l3.config_dir": str(self.config.directory), "l3.workflow_id": workflow_id,
        }  # fmt: skip
        self._live[exec_id] = live
        self.bus.publish(ev.ExecutionCreated(
            at=now, execution_id=exec_id, workflow_id=workflow_id,
            workflow_name=definition.name, definition_hash=execution.definition_hash,
            definition=definition.model_dump(mode="json", by_alias=True), params=params,
            trigger=trigger, parent_id=parent_id, priority=base_priority,
            tasks=tuple((t.id, t.display_name) for t in definition.tasks),
        ))  # fmt: skip
        return execution

    # ------------------------------------------------------------------ run

    def start(self, execution: Execution) -> None:
        live = self._live[execution.id]
        now = self.clock.time()
        execution.to(ExecState.RUNNING)
        execution.started_at = now
        self.bus.publish(ev.ExecutionStarted(at=now, execution_id=execution.id))
        self._arm_deadlines(live)
        live.directory.mkdir(parents=True, exist_ok=True)
        ready = live.tracker.initial()
        ready_set = set(ready)
        for task in live.definition.tasks:
            if task.id not in ready_set:
                deps = ", ".join(task.dependencies)
                self._set_state(execution, execution.tasks[task.id], TaskState.WAITING,
                                f"waiting on {deps}")  # fmt: skip
        for task_id in ready:
            self._judge_and_queue(live, task_id)
        self._maybe_finish(live)

    async def wait(self, execution_id: str) -> ExecState:
        live = self._live.get(execution_id)
        if live is None or live.done is None:
            return self.executions[execution_id].state
        return await asyncio.shield(live.done)

    def _set_state(
        self, execution: Execution, run: TaskRun, state: TaskState, reason: str = "",
        *, announce: bool = True,
    ) -> None:
        """Move `run` to `state`; `announce=False` where a richer event follows at once
        (TaskStarted for running, TaskFinished for an ending)."""
        previous = run.to(state)
        run.reason = reason
        if not announce:
            return
        self.bus.publish(ev.TaskStateChanged(
            at=self.clock.time(), execution_id=execution.id, task_id=run.task_id,
            state=state, previous=previous, attempt=run.attempt, reason=reason,
        ))  # fmt: skip

    def _judge_and_queue(self, live: _Live, task_id: str) -> None:
        """All upstream tasks have ended: skip the task or queue it."""
        execution = live.execution
        run = execution.tasks[task_id]
        task = live.task_defs[task_id]
        if execution.cancel_requested:
            self._finish_task(live, run, TaskState.CANCELLED, "execution cancelled")
            return
        carried = live.keep_results.get(task_id)
        if carried is not None:
            # Resuming an interrupted execution: this task already succeeded there. Its
            # state is carried over, not reached by a transition of this execution.
            run.state = carried
            self._finish_task(live, run, carried, "carried over from "
                              f"{execution.parent_id}")  # fmt: skip
            return
        upstream = {dep: execution.tasks[dep].state for dep in task.dependencies}
        ok, why = judge(task.conditions, upstream, execution.params, os.environ,
                        self.registry.cwd)  # fmt: skip
        if not ok:
            self._finish_task(live, run, TaskState.SKIPPED, why)
            return
        self._enqueue(live, run, task)

    def _enqueue(self, live: _Live, run: TaskRun, task: TaskDef) -> None:
        execution = live.execution
        entry = QueueEntry(
            execution_id=execution.id,
            task_id=task.id,
            workflow_id=execution.workflow_id,
            name=run.name,
            priority=run.priority,
            on_admit=self._on_admit,
            critical=run.priority >= self._critical,
            cpu=task.resources.cpu,
            memory_mb=task.resources.memory_mb,
            pools=task.resources.pools,
            deadline=(execution.started_at + task.deadline / 1000)
            if task.deadline and execution.started_at
            else execution.deadline_at,
            not_before=resolve_not_before(task.not_before, execution.started_at or 0.0)
            if task.not_before
            else None,
            group_limit=live.definition.max_parallel,
        )
        live.attempts[task.id] = _Attempt(entry)
        run.queued_at = self.clock.time()
        self._set_state(execution, run, TaskState.QUEUED)
        self.scheduler.submit(entry)

    def _on_admit(self, entry: QueueEntry) -> None:
        live = self._live[entry.execution_id]
        attempt = live.attempts[entry.task_id]
        attempt.job_task = asyncio.get_running_loop().create_task(
            self._run_attempt(live, entry.task_id, attempt),
            name=f"{entry.execution_id}/{entry.task_id}",
        )

    async def _run_attempt(self, live: _Live, task_id: str, attempt: _Attempt) -> None:
        execution = live.execution
        run = execution.tasks[task_id]
        task = live.task_defs[task_id]
        attempt.started = True
        try:
            if attempt.cancelled:  # cancelled between admission and this first step
                outcome, reason, exit_code = TaskState.CANCELLED, "cancelled", None
            else:
                outcome, reason, exit_code = await self._execute(live, run, task, attempt)
        except asyncio.CancelledError:
            if not attempt.cancelled:
                raise  # the runtime is shutting down
            outcome, reason, exit_code = TaskState.CANCELLED, "cancelled", None
        except Exception as exc:  # a bug in our code must fail the task, not hang the run
            log.exception("task %s/%s crashed the engine path", execution.id, task_id)
            outcome, reason, exit_code = TaskState.FAILED, f"internal error: {exc}", None
        finally:
            self.scheduler.release(attempt.entry)
            if attempt.timer is not None:
                attempt.timer.cancel()
        run.exit_code = exit_code
        live.attempts.pop(task_id, None)
        if run.state == TaskState.PAUSED:  # ended while frozen (killed from outside)
            run.state = TaskState.RUNNING
        if (
            outcome in TASK_FAILED
            and run.attempt < run.max_attempts
            and not (attempt.cancelled or attempt.permanent or execution.cancel_requested)
        ):
            self._schedule_retry(live, run, task, reason, outcome)
            return
        await self._complete(live, run, outcome, reason)

    async def _execute(
        self, live: _Live, run: TaskRun, task: TaskDef, attempt: _Attempt
    ) -> tuple[TaskState, str, int | None]:
        execution = live.execution
        run.attempt += 1
        now = self.clock.time()
        wait = now - (run.queued_at or now)
        run.wait_s += wait
        context = {**live.context, "l3.task_id": task.id, "l3.attempt": run.attempt}
        run.started_at = now
        self._set_state(execution, run, TaskState.RUNNING, announce=False)  # TaskStarted
        try:
            job = self.registry.resolve(task, context, execution.params)
        except ActionError as exc:
            attempt.permanent = True
            self._publish_started(execution, run, None, (), wait)
            return TaskState.FAILED, str(exc), None
        if isinstance(job, InProcessJob):
            self._publish_started(execution, run, None, (task.action,), wait)
            return await self._execute_in_process(run, job, attempt)
        return await self._execute_process(live, run, job, attempt, wait, live.directory)

    async def _execute_in_process(
        self, run: TaskRun, job: InProcessJob, attempt: _Attempt
    ) -> tuple[TaskState, str, int | None]:
        # A bare call_later handle costs a third of asyncio.timeout(); this is the hot path
        # of short in-process tasks.
        current = asyncio.current_task()
        assert current is not None

        def expire() -> None:
            attempt.timed_out = True
            current.cancel()

        handle = asyncio.get_running_loop().call_later(job.timeout_s, expire)
        run.start_running(self.clock.time())
        try:
            code = await job.func(job.params)
        except asyncio.CancelledError:
            if not attempt.timed_out:
                raise
            current.uncancel()
            return TaskState.TIMED_OUT, f"timed out after {job.timeout_s:g}s", None
        finally:
            handle.cancel()
            run.stop_running(self.clock.time())
        if code == 0:
            return TaskState.SUCCEEDED, "", 0
        return TaskState.FAILED, f"exit code {code}", code

    def _publish_started(
        self,
        execution: Execution,
        run: TaskRun,
        proc: LocalProcess | None,
        command: tuple[str, ...],
        wait: float,
    ) -> None:
        self.bus.publish(ev.TaskStarted(
            at=self.clock.time(), execution_id=execution.id, task_id=run.task_id,
            attempt=run.attempt, pid=proc.pid if proc else None,
            pgid=proc.pgid if proc else None, proc_start=proc.proc_start if proc else None,
            log_path=run.log_path, command=command, wait_s=wait,
        ))  # fmt: skip

    async def _execute_process(
        self,
        live: _Live,
        run: TaskRun,
        job: CommandJob,
        attempt: _Attempt,
        wait: float,
        execution_dir: Path,
    ) -> tuple[TaskState, str, int | None]:
        execution = live.execution
        log_path = execution_dir / f"{run.task_id}.{run.attempt}.log"
        run.log_path = str(log_path)
        publish = self.bus.publish
        clock = self.clock

        def on_lines(lines: list[str]) -> None:
            run.last_line = lines[-1] if lines[-1] else run.last_line
            publish(
                ev.TaskOutput(
                    at=clock.time(),
                    execution_id=execution.id,
                    task_id=run.task_id,
                    attempt=run.attempt,
                    lines=tuple(lines),
                )
            )

        def on_metric(name: str, value: float) -> None:
            run.metrics[name] = value
            publish(
                ev.TaskMetric(
                    at=clock.time(),
                    execution_id=execution.id,
                    workflow_id=execution.workflow_id,
                    task_id=run.task_id,
                    name=name,
                    value=value,
                )
            )

        try:
            proc = self.executor.spawn(job, log_path, on_lines, on_metric)
        except SpawnError as exc:
            self._publish_started(execution, run, None, job.argv, wait)
            return TaskState.FAILED, str(exc), None
        attempt.process = proc
        run.pid, run.pgid, run.proc_start = proc.pid, proc.pgid, proc.proc_start
        self._publish_started(execution, run, proc, job.argv, wait)
        run.start_running(clock.time())

        def on_timeout() -> None:
            attempt.timed_out = True
            proc.terminate()

        attempt.timer = PausableTimer(job.timeout_s, on_timeout)
        if execution.state == ExecState.PAUSED:  # paused between admission and spawn
            self._freeze(execution, run, attempt)
        try:
            result = await proc.wait()
        except asyncio.CancelledError:
            proc.terminate()
            raise
        run.stop_running(clock.time())
        run.last_line = result.last_line or run.last_line
        if attempt.cancelled or execution.cancel_requested:
            return TaskState.CANCELLED, "cancelled", result.exit_code
        if attempt.timed_out:
            return TaskState.TIMED_OUT, f"timed out after {job.timeout_s:g}s", result.exit_code
        if result.ok:
            return TaskState.SUCCEEDED, "", 0
        return TaskState.FAILED, result.describe(), result.exit_code

    def _schedule_retry(
        self, live: _Live, run: TaskRun, task: TaskDef, error: str, outcome: TaskState
    ) -> None:
        delay_ms = min(task.retry_delay * task.retry_backoff ** (run.attempt - 1),
                       task.retry_max_delay)  # fmt: skip
        delay = delay_ms / 1000
        self._set_state(live.execution, run, TaskState.RETRYING,
                        f"attempt {run.attempt} failed ({error}); retry in {delay:g}s")  # fmt: skip
        self.bus.publish(ev.TaskRetrying(at=self.clock.time(), execution_id=live.execution.id,
                                         task_id=run.task_id, attempt=run.attempt,
                                         delay_s=delay, error=error, state=outcome,
                                         exit_code=run.exit_code))  # fmt: skip

        def requeue() -> None:
            live.retry_timers.pop(run.task_id, None)
            if run.state == TaskState.RETRYING:
                self._enqueue(live, run, task)

        timer = PausableTimer(delay, requeue)
        live.retry_timers[run.task_id] = timer
        if live.execution.state == ExecState.PAUSED:
            timer.pause()

    async def _complete(self, live: _Live, run: TaskRun, state: TaskState, reason: str) -> None:
        self._finish_task(live, run, state, reason, settle=False)
        if state == TaskState.SUCCEEDED and self.bus.has_durable:
            await self.bus.durable()  # success is on disk before a dependant starts
        self._settle(live, run.task_id)

    def _finish_task(
        self, live: _Live, run: TaskRun, state: TaskState, reason: str, settle: bool = True
    ) -> None:
        execution = live.execution
        now = self.clock.time()
        if run.state != state:
            self._set_state(execution, run, state, reason, announce=False)  # TaskFinished
        live.unfinished -= 1
        run.finished_at = now
        self.bus.publish(ev.TaskFinished(
            at=now, execution_id=execution.id, task_id=run.task_id, state=state,
            attempt=run.attempt, exit_code=run.exit_code, duration_s=run.active_s,
            wait_s=run.wait_s, reason=reason, peak_cpu_pct=run.peak_cpu_pct,
            peak_rss=run.peak_rss, avg_cpu_pct=round(run.avg_cpu_pct, 1), avg_rss=run.avg_rss,
        ))  # fmt: skip
        if settle:
            self._settle(live, run.task_id)

    def _settle(self, live: _Live, task_id: str) -> None:
        for child in live.tracker.settle(task_id):
            if not live.execution.tasks[child].state.terminal:
                self._judge_and_queue(live, child)
        self._maybe_finish(live)

    def _maybe_finish(self, live: _Live) -> None:
        execution = live.execution
        if execution.state.terminal or live.unfinished:
            return
        states = [t.state for t in execution.tasks.values()]
        if execution.cancel_requested:
            final, reason = ExecState.CANCELLED, "cancelled"
        elif any(s in TASK_FAILED or s == TaskState.CANCELLED for s in states):
            bad = [
                t.task_id
                for t in execution.tasks.values()
                if t.state in TASK_FAILED or t.state == TaskState.CANCELLED
            ]
            final, reason = ExecState.FAILED, "not succeeded: " + ", ".join(bad)
        else:
            final, reason = ExecState.SUCCEEDED, ""
        if execution.state == ExecState.PAUSED:
            execution.state = ExecState.RUNNING  # the last task ended while paused
        if execution.state == ExecState.PENDING:
            execution.state = ExecState.RUNNING
        execution.to(final)
        execution.reason = reason
        execution.finished_at = self.clock.time()
        for handle in live.deadline_timers:
            handle.cancel()
        duration = execution.finished_at - (execution.started_at or execution.created_at)
        self.bus.publish(ev.ExecutionFinished(
            at=execution.finished_at, execution_id=execution.id,
            workflow_id=execution.workflow_id, state=final, reason=reason,
            duration_s=duration,
        ))  # fmt: skip
        if live.done is not None and not live.done.done():
            live.done.set_result(final)
        del self._live[execution.id]
        for callback in self.on_finished:
            try:
                callback(execution)
            except Exception:
                log.exception("on_finished callback failed")

    # ------------------------------------------------------------------ deadlines

    def _arm_deadlines(self, live: _Live) -> None:
        execution = live.execution
        loop = asyncio.get_running_loop()
        if live.definition.deadline and execution.started_at is not None:
            execution.deadline_at = execution.started_at + live.definition.deadline / 1000
            live.deadline_timers.append(
                loop.call_later(live.definition.deadline / 1000, self._deadline_missed, live, None)
            )
        for task in live.definition.tasks:
            if task.deadline:
                live.deadline_timers.append(
                    loop.call_later(task.deadline / 1000, self._deadline_missed, live, task.id)
                )

    def _deadline_missed(self, live: _Live, task_id: str | None) -> None:
        execution = live.execution
        if task_id is not None and execution.tasks[task_id].state.terminal:
            return
        if execution.state.terminal:
            return
        started = execution.started_at or execution.created_at
        seconds = (
            live.definition.deadline if task_id is None else live.task_defs[task_id].deadline
        ) or 0
        self.bus.publish(
            ev.DeadlineMissed(
                at=self.clock.time(),
                execution_id=execution.id,
                task_id=task_id,
                deadline=started + seconds / 1000,
            )
        )

    # ------------------------------------------------------------------ operator commands

    def _record(self, action: str, exec_id: str | None, task_id: str | None, result: OpResult,
                actor: str | None) -> OpResult:  # fmt: skip
        self.bus.publish(ev.OperatorAction(at=self.clock.time(), action=action,
                                           execution_id=exec_id, task_id=task_id,
                                           applied=result.applied, detail=result.message,
                                           actor=actor or self.actor))  # fmt: skip
        return result

    def _lookup(self, exec_id: str, task_id: str | None) -> tuple[_Live | None, OpResult | None]:
        if exec_id not in self.executions:
            return None, OpResult(False, f"no execution {exec_id}")
        live = self._live.get(exec_id)
        if live is None:
            state = self.executions[exec_id].state
            return None, OpResult(False, f"execution {exec_id} has already ended ({state})")
        if task_id is not None and task_id not in live.execution.tasks:
            return None, OpResult(False, f"execution {exec_id} has no task {task_id!r}")
        return live, None

    def _freeze(self, execution: Execution, run: TaskRun, attempt: _Attempt) -> bool:
        if attempt.process is None or not attempt.process.pause():
            return False
        if attempt.timer is not None:
            attempt.timer.pause()
        run.stop_running(self.clock.time())
        self._set_state(execution, run, TaskState.PAUSED, "paused by operator")
        return True

    def _thaw(self, execution: Execution, run: TaskRun, attempt: _Attempt) -> bool:
        if attempt.process is None or run.state != TaskState.PAUSED:
            return False
        attempt.process.resume()
        if attempt.timer is not None:
            attempt.timer.resume()
        run.start_running(self.clock.time())
        self._set_state(execution, run, TaskState.RUNNING, "resumed")
        return True

    def pause(self, exec_id: str, task_id: str | None = None, actor: str | None = None) -> OpResult:
        live, error = self._lookup(exec_id, task_id)
        if live is None:
            return self._record("pause", exec_id, task_id, _missing(error), actor)
        execution = live.execution
        if task_id is not None:
            run = execution.tasks[task_id]
            attempt = live.attempts.get(task_id)
            if run.state == TaskState.RUNNING and attempt is not None and attempt.process:
                ok = self._freeze(execution, run, attempt)
                result = OpResult(
                    ok, f"task {task_id} paused" if ok else f"task {task_id} could not be stopped"
                )
            elif run.state == TaskState.QUEUED:
                self.scheduler.hold((exec_id, task_id))
                attempt_entry = attempt.entry if attempt else None
                if attempt_entry is not None:
                    attempt_entry.reason = "held by operator"
                result = OpResult(True, f"task {task_id} held in the queue")
            else:
                result = OpResult(False, f"task {task_id} is {run.state}, not running")
            return self._record("pause", exec_id, task_id, result, actor)
        if execution.state != ExecState.RUNNING:
            return self._record(
                "pause", exec_id, None, OpResult(False, f"execution is {execution.state}"), actor
            )
        execution.to(ExecState.PAUSED)
        self.scheduler.hold(exec_id)
        frozen = 0
        for tid, attempt in live.attempts.items():
            run = execution.tasks[tid]
            if run.state == TaskState.RUNNING and self._freeze(execution, run, attempt):
                frozen += 1
        for timer in live.retry_timers.values():
            timer.pause()
        self.bus.publish(ev.ExecutionPaused(at=self.clock.time(), execution_id=exec_id))
        return self._record(
            "pause",
            exec_id,
            None,
            OpResult(True, f"execution paused ({frozen} running task(s) frozen)"),
            actor,
        )

    def resume(
        self, exec_id: str, task_id: str | None = None, actor: str | None = None
    ) -> OpResult:
        live, error = self._lookup(exec_id, task_id)
        if live is None:
            return self._record("resume", exec_id, task_id, _missing(error), actor)
        execution = live.execution
        if task_id is not None:
            run = execution.tasks[task_id]
            attempt = live.attempts.get(task_id)
            if run.state == TaskState.PAUSED and attempt is not None:
                result = OpResult(self._thaw(execution, run, attempt), f"task {task_id} resumed")
            elif run.state == TaskState.QUEUED and (exec_id, task_id) in self.scheduler.held:
                self.scheduler.unhold((exec_id, task_id))
                result = OpResult(True, f"task {task_id} released")
            else:
                result = OpResult(False, f"task {task_id} is {run.state}, not paused")
            return self._record("resume", exec_id, task_id, result, actor)
        if execution.state != ExecState.PAUSED:
            return self._record(
                "resume", exec_id, None, OpResult(False, f"execution is {execution.state}"), actor
            )
        execution.to(ExecState.RUNNING)
        thawed = 0
        for tid, attempt in live.attempts.items():
            if self._thaw(execution, execution.tasks[tid], attempt):
                thawed += 1
        for timer in live.retry_timers.values():
            timer.resume()
        self.bus.publish(ev.ExecutionResumed(at=self.clock.time(), execution_id=exec_id))
        self.scheduler.unhold(exec_id)
        return self._record(
            "resume",
            exec_id,
            None,
            OpResult(True, f"execution resumed ({thawed} task(s) continued)"),
            actor,
        )

    def cancel(
        self, exec_id: str, task_id: str | None = None, actor: str | None = None
    ) -> OpResult:
        live, error = self._lookup(exec_id, task_id)
        if live is None:
            return self._record("cancel", exec_id, task_id, _missing(error), actor)
        execution = live.execution
        if task_id is not None:
            run = execution.tasks[task_id]
            if run.state.terminal:
                result = OpResult(False, f"task {task_id} has already ended ({run.state})")
            else:
                self._cancel_task(live, run)
                result = OpResult(True, f"task {task_id} cancelled")
            return self._record("cancel", exec_id, task_id, result, actor)
        execution.cancel_requested = True
        killed = 0
        for run in list(execution.tasks.values()):
            if not run.state.terminal and self._cancel_task(live, run):
                killed += 1
        if execution.state == ExecState.PAUSED:
            execution.to(ExecState.RUNNING)
        self._maybe_finish(live)
        return self._record(
            "cancel",
            exec_id,
            None,
            OpResult(True, f"execution cancelled ({killed} running task(s) terminated)"),
            actor,
        )

    def _cancel_task(self, live: _Live, run: TaskRun) -> bool:
        """Cancel one task; True if a process had to be terminated."""
        attempt = live.attempts.get(run.task_id)
        if attempt is not None and attempt.entry.admitted:
            attempt.cancelled = True
            if attempt.process is not None:
                attempt.process.terminate()
            elif attempt.job_task is not None and attempt.started:
                # Not started: cancelling would skip its `finally` (the slot release); it
                # sees `cancelled` on its first step instead.
                attempt.job_task.cancel()
            return True  # _run_attempt finishes it as cancelled
        if attempt is not None:
            self.scheduler.withdraw(attempt.entry)
            live.attempts.pop(run.task_id, None)
        timer = live.retry_timers.pop(run.task_id, None)
        if timer is not None:
            timer.cancel()
        self._finish_task(live, run, TaskState.CANCELLED, "cancelled")
        return False

    # ------------------------------------------------------------------ shutdown

    def active(self) -> list[Execution]:
        return [live.execution for live in self._live.values()]

    async def shutdown(self, actor: str = "shutdown") -> None:
        """Cancel every active execution and wait (bounded) until their processes are gone."""
        waits = []
        for live in list(self._live.values()):
            self.cancel(live.execution.id, actor=actor)
            if live.done is not None:
                waits.append(live.done)
        if waits:
            await asyncio.wait(waits, timeout=self.grace_s + 2)


def _missing(error: OpResult | None) -> OpResult:
    # OpResult is falsy when not applied, so `error or default` would drop it.
    return error if error is not None else OpResult(False, "not found")
