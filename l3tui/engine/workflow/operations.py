"""Operator commands on executions and single tasks: pause (SIGSTOP the group, hold
dispatch, stop the timeout), resume, cancel (SIGTERM, grace, SIGKILL; dependants skipped).
Each returns whether it applied and is published as an OperatorAction event. Owned by
WorkflowEngine, which hands it the live executions and how a task or execution ends."""

from __future__ import annotations

from collections.abc import Callable

from l3tui.engine import events as ev
from l3tui.engine.api import OpResult
from l3tui.engine.bus import EventBus
from l3tui.engine.clock import Clock
from l3tui.engine.model import ExecState, Execution, TaskRun, TaskState
from l3tui.engine.scheduling.scheduler import TaskScheduler
from l3tui.engine.workflow.attempts import AttemptRunner
from l3tui.engine.workflow.live import LiveExecution

FinishTask = Callable[[LiveExecution, TaskRun, TaskState, str], None]


class OperatorCommands:
    """pause / resume / cancel of executions and single tasks."""

    def __init__(
        self,
        bus: EventBus,
        clock: Clock,
        scheduler: TaskScheduler,
        attempts: AttemptRunner,
        executions: dict[str, Execution],
        live: dict[str, LiveExecution],
        finish_task: FinishTask,
        maybe_finish: Callable[[LiveExecution], None],
        actor: str,
    ) -> None:
        self.bus = bus
        self.clock = clock
        self.scheduler = scheduler
        self.attempts = attempts
        self.executions = executions
        """Every execution this engine made (shared with it, never rebound)."""
        self._live = live
        """The executions still running (shared with the engine, never rebound)."""
        self._finish_task = finish_task
        self._maybe_finish = maybe_finish
        self.actor = actor

    def _record(self, verb: str, exec_id: str | None, task_id: str | None, result: OpResult,
                actor: str | None) -> OpResult:  # fmt: skip
        action = f"{'task' if task_id else 'execution'}.{verb}"  # see ev.OperatorAction
        self.bus.publish(ev.OperatorAction(at=self.clock.time(), action=action,
                                           execution_id=exec_id, task_id=task_id,
                                           applied=result.applied, detail=result.message,
                                           actor=actor or self.actor))  # fmt: skip
        return result

    def _lookup(
        self, exec_id: str, task_id: str | None
    ) -> tuple[LiveExecution | None, OpResult | None]:
        if exec_id not in self.executions:
            return None, OpResult(False, f"no execution {exec_id}")
        live = self._live.get(exec_id)
        if live is None:
            state = self.executions[exec_id].state
            return None, OpResult(False, f"execution {exec_id} has already ended ({state})")
        if task_id is not None and task_id not in live.execution.tasks:
            return None, OpResult(False, f"execution {exec_id} has no task {task_id!r}")
        return live, None

    def pause(self, exec_id: str, task_id: str | None = None, actor: str | None = None) -> OpResult:
        live, error = self._lookup(exec_id, task_id)
        if live is None:
            return self._record("pause", exec_id, task_id, _missing(error), actor)
        execution = live.execution
        if task_id is not None:
            run = execution.tasks[task_id]
            attempt = live.attempts.get(task_id)
            if run.state == TaskState.RUNNING and attempt is not None and attempt.process:
                ok = self.attempts.freeze(execution, run, attempt)
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
            if run.state == TaskState.RUNNING and self.attempts.freeze(execution, run, attempt):
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
                done = self.attempts.thaw(execution, run, attempt)
                result = OpResult(done, f"task {task_id} resumed")
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
            if self.attempts.thaw(execution, execution.tasks[tid], attempt):
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
        self, exec_id: str, task_id: str | None = None, actor: str | None = None,
        reason: str = "",
    ) -> OpResult:
        """`reason` (e.g. `terminal lost (SIGHUP)`) is recorded as the execution's."""
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
        execution.cancel_reason = execution.cancel_reason or reason
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

    def _cancel_task(self, live: LiveExecution, run: TaskRun) -> bool:
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


def _missing(error: OpResult | None) -> OpResult:
    # OpResult is falsy when not applied, so `error or default` would drop it.
    return error if error is not None else OpResult(False, "not found")
