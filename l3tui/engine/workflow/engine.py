"""WorkflowEngine: creates executions from workflow definitions and drives them.

Event-driven, no loop per execution: a task becomes ready when its upstream tasks end,
goes to the scheduler, runs when admitted, retries with backoff, and settles its
dependants. Nothing acts before the store has it: an execution's first tasks are queued
once its start is committed, and each process attempt waits for the commit of its own start
(which covers every upstream success too) before it is spawned; many share one commit.
Pause freezes running process groups and stops dispatch; a paused task's timeout does not
tick. Every operator command returns whether it applied and is an event.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any

from l3tui.config.loader import Config
from l3tui.config.schema import TaskDef, TemplateDef, WorkflowDef
from l3tui.engine import events as ev
from l3tui.engine.actions.registry import ActionRegistry
from l3tui.engine.bus import EventBus
from l3tui.engine.clock import Clock
from l3tui.engine.executors.base import Executor
from l3tui.engine.model import (
    TASK_FAILED_OR_LOST,
    TASK_TERMINAL,
    TASK_TRANSITIONS,
    ExecState,
    Execution,
    TaskRun,
    TaskState,
    new_execution_id,
)
from l3tui.engine.scheduling.scheduler import QueueEntry, TaskScheduler
from l3tui.engine.workflow.attempts import AttemptRunner, Outcome, crashed
from l3tui.engine.workflow.conditions import judge
from l3tui.engine.workflow.deadlines import arm_deadlines
from l3tui.engine.workflow.launch import Launcher
from l3tui.engine.workflow.live import Attempt, GcFreeze, LiveExecution, TaskTransitions, shape_of
from l3tui.engine.workflow.operations import OperatorCommands
from l3tui.engine.workflow.templates import definition_for, encode_definition, resolve_params
from l3tui.engine.workflow.timers import resolve_not_before

log = logging.getLogger(__name__)
# Members as module constants: `TaskState.QUEUED` goes through the enum's class attribute
# look-up (~70 ns in Python 3.11, against ~6 for a global), several times per task.
_QUEUED, _SUCCEEDED, _PAUSED, _RUNNING = (TaskState.QUEUED, TaskState.SUCCEEDED,
                                          TaskState.PAUSED, TaskState.RUNNING)  # fmt: skip


class WorkflowEngine:
    """Runs executions; the only writer of Execution and TaskRun records. Its parts: an
    `AttemptRunner` (one attempt's run), `OperatorCommands` (pause, resume, cancel) and
    `TaskTransitions` (a task's state change and its event), each handed what it uses."""

    def __init__(
        self,
        config: Config,
        state_dir: Path,
        bus: EventBus,
        scheduler: TaskScheduler,
        executor: Executor,
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
        self._live: dict[str, LiveExecution] = {}
        self.on_finished: list[Callable[[Execution], None]] = []
        self.grace_s = config.scheduling.execution.grace_period / 1000
        self._critical = config.scheduling.critical_level()
        self.gc_freeze = GcFreeze()
        self.transitions = TaskTransitions(bus, clock)
        self.attempts = AttemptRunner(bus, clock, executor, self.registry, self.transitions)
        self.launcher = Launcher(self._begin_attempt, self._live)
        self._admit = self.launcher.admit  # one bound method, not one per queued entry
        self.commands = OperatorCommands(bus, clock, scheduler, self.attempts, self.executions,
                                         self._live, self._finish_task, self._maybe_finish,
                                         actor)  # fmt: skip
        # The operator commands (pause, resume, cancel) as the engine's own: each returns
        # whether it applied, and is an event.
        self.pause, self.resume, self.cancel = (self.commands.pause, self.commands.resume,
                                                self.commands.cancel)  # fmt: skip

    # ------------------------------------------------------------------ config

    def reconfigure(self, config: Config) -> None:
        """New definitions for new executions; running ones keep what they started with."""
        self.config = config
        self.registry = ActionRegistry(config, self.state_dir)
        self.attempts.registry = self.registry
        self._critical = config.scheduling.critical_level()

    # ------------------------------------------------------------------ create

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
            definition, params = definition_for(self.config, workflow_id, params)
        elif workflow_id in self.config.workflows.templates and params:
            template: TemplateDef = self.config.workflows.templates[workflow_id]
            params = resolve_params(workflow_id, template, params)
        now = self.clock.time()
        exec_id = new_execution_id(now)
        while exec_id in self.executions:
            exec_id = new_execution_id(now)
        levels = self.config.scheduling
        base_priority = levels.priority_level(priority if priority is not None
                                              else definition.priority)  # fmt: skip
        # Out of the collector before its records are made (no collection walks the new
        # definition while they are), and again once they are made (none walks them later).
        self.gc_freeze.created(len(definition.tasks))
        definition_json, digest = encode_definition(definition)
        execution = Execution(
            id=exec_id,
            workflow_id=workflow_id,
            workflow_name=definition.name,
            definition=definition,
            definition_hash=digest,
            params=params,
            trigger=trigger,
            parent_id=parent_id,
            priority=base_priority,
            created_at=now,
        )
        runs, shape, pending = execution.tasks, shape_of(definition), TaskState.PENDING
        for task_id, name, max_attempts, own in shape.runs:
            runs[task_id] = TaskRun(  # positionally (events.py says why): execution_id,
                exec_id, task_id, name, pending, 0, max_attempts,  # task_id, name, state,
                base_priority if own is None  # attempt, max_attempts, priority
                else levels.priority_level(own, base_priority),
            )  # fmt: skip
        self.executions[exec_id] = execution
        self._live[exec_id] = LiveExecution.begin(execution, definition, keep, self.state_dir,
                                                  self.config.directory)  # fmt: skip
        self.bus.publish(ev.ExecutionCreated(
            at=now, execution_id=exec_id, workflow_id=workflow_id,
            workflow_name=definition.name, definition_hash=execution.definition_hash,
            definition=definition_json, params=params,
            trigger=trigger, parent_id=parent_id, priority=base_priority,
            tasks=shape.named,
        ))  # fmt: skip
        self.gc_freeze.created(len(definition.tasks))
        return execution

    # ------------------------------------------------------------------ run

    def start(self, execution: Execution) -> None:
        """Mark it running; its first tasks are queued once the store has committed its start
        (at once when nothing is durable): no task runs for an execution a crash would lose."""
        live = self._live[execution.id]
        now = self.clock.time()
        execution.to(ExecState.RUNNING)
        execution.started_at = now
        runs, to_waiting = execution.tasks, TaskState.WAITING
        for task_id, reason in live.waiting:
            run = runs[task_id]  # TaskTransitions.move(..., announce=False), inlined:
            if to_waiting not in TASK_TRANSITIONS[run.state]:  # ExecutionStarted says it
                run.to(to_waiting)  # raises IllegalTransition
            run.state, run.reason = to_waiting, reason
        self.bus.publish(ev.ExecutionStarted(at=now, execution_id=execution.id,
                                             waiting=live.waiting))  # fmt: skip
        arm_deadlines(live, self.bus, self.clock)
        if not self.bus.has_durable:
            self._dispatch(live)
            return
        live.first_dispatch = asyncio.get_running_loop().create_task(
            self._first_dispatch(live), name=f"{execution.id}/dispatch")

    async def _first_dispatch(self, live: LiveExecution) -> None:
        """Its log directory is made while the store commits its start (the writer's thread
        runs while we wait in the syscalls: ~0.1-0.2 ms less before the first task), then its
        first tasks are queued once that commit is done."""
        durable = self.bus.durable_future()
        live.make_directory()
        if durable is not None:
            await durable
        self._dispatch(live)

    async def dispatched(self, execution_id: str) -> None:
        """Until the store has a started execution's start; its first tasks are queued
        before this returns (not a loop turn later, so none of them has begun yet)."""
        live = self._live.get(execution_id)
        if live is not None and not live.dispatched:
            await self.bus.durable()
            self._dispatch(live)

    def _dispatch(self, live: LiveExecution) -> None:
        """Queue the first tasks, once (whichever wait for the store ends first)."""
        pending, live.first_dispatch = live.first_dispatch, None
        if pending is not None and pending is not asyncio.current_task():
            pending.cancel()
        if live.dispatched or live.execution.state.terminal:
            return
        live.dispatched = True
        live.make_directory()  # once: here unless made while its start was committed
        for task_id in live.tracker.initial():
            self._judge_and_queue(live, task_id)
        self._maybe_finish(live)

    async def wait(self, execution_id: str) -> ExecState:
        live = self._live.get(execution_id)
        if live is None or live.done is None:
            return self.executions[execution_id].state
        return await asyncio.shield(live.done)

    # ------------------------------------------------------------------ progress

    def _judge_and_queue(self, live: LiveExecution, task_id: str) -> None:
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
        tasks = execution.tasks
        if not task.conditions:  # the default rule, all upstream succeeded, checked inline
            for dep in task.dependencies:
                if tasks[dep].state is not _SUCCEEDED:
                    break
            else:
                self._enqueue(live, run, task)
                return
        upstream = {dep: tasks[dep].state for dep in task.dependencies}
        ok, why = judge(task.conditions, upstream, execution.params, os.environ,
                        self.registry.cwd)  # fmt: skip
        if not ok:
            self._finish_task(live, run, TaskState.SKIPPED, why)
            return
        self._enqueue(live, run, task)

    def _enqueue(self, live: LiveExecution, run: TaskRun, task: TaskDef) -> None:
        execution, started = live.execution, live.execution.started_at
        resources, priority = task.resources, run.priority
        # Positionally (keywords cost ~35 ns each here, see events.py): execution_id, task_id,
        # workflow_id, name, priority, on_admit, critical, cpu, memory_mb, pools, deadline,
        # not_before, group_limit.
        entry = QueueEntry(
            execution.id, task.id, execution.workflow_id, run.name, priority, self._admit,
            priority >= self._critical, resources.cpu, resources.memory_mb, resources.pools,
            started + task.deadline / 1000 if task.deadline and started
            else execution.deadline_at, resolve_not_before(task.not_before, started or 0.0)
            if task.not_before else None, live.definition.max_parallel,
        )  # fmt: skip
        live.attempts[task.id] = Attempt(entry)
        run.queued_at = now = self.clock.time()
        previous = run.state  # TaskTransitions.move, inlined (once per attempt)
        if _QUEUED not in TASK_TRANSITIONS[previous]:
            run.to(_QUEUED)  # raises IllegalTransition
        run.state, run.reason = _QUEUED, ""
        # at, execution_id, task_id, state, previous, attempt, reason (positional: events.py)
        self.bus.publish(ev.TaskStateChanged(now, execution.id, run.task_id, _QUEUED, previous,
                                             run.attempt, ""))  # fmt: skip
        self.scheduler.submit(entry)

    def _begin_attempt(self, live: LiveExecution, task_id: str, attempt: Attempt
                       ) -> Coroutine[Any, Any, None] | None:  # fmt: skip
        """An admitted attempt's first step (the launcher runs it): None once it has ended
        (an in-process no-op, an action that cannot be resolved, cancelled before it began),
        else the coroutine that waits for its end."""
        attempt.started = True
        if attempt.cancelled:  # cancelled between admission and this first step
            self._end_attempt(live, task_id, attempt, (TaskState.CANCELLED, "cancelled", None))
            return None
        try:
            step = self.attempts.execute(live, live.execution.tasks[task_id],
                                         live.task_defs[task_id], attempt)  # fmt: skip
        except Exception as exc:  # a bug in our code must fail the task, not hang the run
            step = crashed(live, task_id, exc)
        if isinstance(step, tuple):
            self._end_attempt(live, task_id, attempt, step)
            return None
        return self._wait_attempt(live, task_id, attempt, step)

    async def _wait_attempt(self, live: LiveExecution, task_id: str, attempt: Attempt,
                            step: Coroutine[Any, Any, Outcome]) -> None:  # fmt: skip
        try:
            ended = await step
        except asyncio.CancelledError:
            if not attempt.cancelled:
                self._release(attempt)
                raise  # the runtime is shutting down
            ended = TaskState.CANCELLED, "cancelled", None
        except Exception as exc:
            ended = crashed(live, task_id, exc)
        except BaseException:
            self._release(attempt)
            raise
        self._end_attempt(live, task_id, attempt, ended)

    def _release(self, attempt: Attempt) -> None:
        self.scheduler.release(attempt.entry)
        timer = attempt.timer
        if timer is not None:  # let go: its callback holds the attempt (a cycle for the GC)
            attempt.timer = None
            timer.cancel()

    def _end_attempt(self, live: LiveExecution, task_id: str, attempt: Attempt,
                     ended: Outcome) -> None:  # fmt: skip
        self._release(attempt)
        outcome, reason, exit_code = ended
        execution = live.execution
        run = execution.tasks[task_id]
        run.exit_code = exit_code
        live.attempts.pop(task_id, None)
        if run.state == _PAUSED:  # ended while frozen (killed from outside)
            run.state = _RUNNING
        if (
            outcome in TASK_FAILED_OR_LOST
            and run.attempt < run.max_attempts
            and not (attempt.cancelled or attempt.permanent or execution.cancel_requested)
        ):
            task = live.task_defs[task_id]
            self.attempts.schedule_retry(live, run, task, reason, outcome,
                                         lambda: self._enqueue(live, run, task))  # fmt: skip
            return
        self._finish_task(live, run, outcome, reason)  # a dependant's start commit covers it

    def _finish_task(self, live: LiveExecution, run: TaskRun, state: TaskState, reason: str
                     ) -> None:  # fmt: skip
        execution = live.execution
        now = self.clock.time()
        if run.state != state:  # TaskTransitions.move(..., announce=False), inlined
            if state not in TASK_TRANSITIONS[run.state]:
                run.to(state)  # raises IllegalTransition
            run.state = state
            run.reason = reason  # TaskFinished announces it
        live.unfinished -= 1
        run.finished_at = now
        # Measured and declared figures as the record holds them (the averages rounded;
        # round() only when there is something to round: most in-process tasks have none).
        avg_cpu, cpu_s = run.avg_cpu_pct, run.cpu_s + run.attempt_cpu_s
        # Positionally, in TaskFinished's field order (events.py): at, execution_id, task_id,
        # state, attempt, exit_code, duration_s, wait_s, reason, peak_cpu_pct, peak_rss,
        # avg_cpu_pct, avg_rss, cpu_s, declared_cpu, declared_memory_mb.
        self.bus.publish(ev.TaskFinished(
            now, execution.id, run.task_id, state, run.attempt, run.exit_code, run.active_s,
            run.wait_s, reason, run.peak_cpu_pct, run.peak_rss,
            round(avg_cpu, 1) if avg_cpu else avg_cpu, run.avg_rss,
            round(cpu_s, 3) if cpu_s else cpu_s, run.declared_cpu, run.declared_memory_mb,
        ))  # fmt: skip
        for child in live.tracker.settle(run.task_id):  # its dependants
            if execution.tasks[child].state not in TASK_TERMINAL:  # .terminal, one call less
                self._judge_and_queue(live, child)
        if not live.unfinished:
            self._maybe_finish(live)

    def _maybe_finish(self, live: LiveExecution) -> None:
        execution = live.execution
        if execution.state.terminal or live.unfinished:
            return
        final, reason = execution.outcome()
        if execution.state == ExecState.PAUSED:
            execution.state = ExecState.RUNNING  # the last task ended while paused
        if execution.state == ExecState.PENDING:
            execution.state = ExecState.RUNNING
        execution.to(final)
        execution.reason = reason
        execution.finished_at = self.clock.time()
        for handle in live.deadline_timers:
            handle.cancel()
        if live.first_dispatch is not None:
            live.first_dispatch.cancel()
            live.first_dispatch = None
        duration = execution.finished_at - (execution.started_at or execution.created_at)
        self.bus.publish(ev.ExecutionFinished(
            at=execution.finished_at, execution_id=execution.id,
            workflow_id=execution.workflow_id, state=final, reason=reason,
            duration_s=duration,
        ))  # fmt: skip
        if live.done is not None and not live.done.done():
            live.done.set_result(final)
        del self._live[execution.id]
        self.gc_freeze.ended(self._live.values())
        for callback in self.on_finished:
            try:
                callback(execution)
            except Exception:
                log.exception("on_finished callback failed")

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
