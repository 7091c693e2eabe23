"""Running one attempt of a task: resolve its action, then run it in-process or through the
executor, with its timeout, output and metrics; freezing and thawing a running attempt.
WorkflowEngine owns the records and decides what an ending means; this module only runs
what it is given and reports how it ended.

Durability before action: a process attempt is recorded as opened and, when something
durable listens (the store), that record is committed before the process is spawned; then
it is recorded as started with its pid. Attempts admitted together share that commit, and
it also covers every upstream success published before it. In-process jobs (`noop`) act on
nothing and do not wait."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from l3tui.config.schema import TaskDef
from l3tui.engine import events as ev
from l3tui.engine.actions.registry import ActionError, ActionRegistry, InProcessJob
from l3tui.engine.bus import EventBus
from l3tui.engine.clock import Clock
from l3tui.engine.executors.base import CommandJob, Executor, Placement, SpawnError, TaskProcess
from l3tui.engine.model import TASK_TRANSITIONS, ExecState, Execution, TaskRun, TaskState
from l3tui.engine.workflow.launch import CarryOn
from l3tui.engine.workflow.live import Attempt, LiveExecution, TaskTransitions
from l3tui.engine.workflow.timers import PausableTimer, TimeoutHeap

log = logging.getLogger("l3tui.engine.workflow.engine")  # where its crashes were logged
_RUNNING = TaskState.RUNNING  # a global: the enum's class attribute costs ~70 ns (3.11)

Outcome = tuple[TaskState, str, int | None]
"""How an attempt ended: its state, the reason for people, and the exit code if any."""


class AttemptRunner:
    """How an admitted task's attempt runs, and how a running one is frozen and thawed."""

    def __init__(
        self,
        bus: EventBus,
        clock: Clock,
        executor: Executor,
        registry: ActionRegistry,
        transitions: TaskTransitions,
    ) -> None:
        self.bus = bus
        self.clock = clock
        self.executor = executor
        self.registry = registry
        """Replaced by the engine when the config is reloaded."""
        self.transitions = transitions
        self.timeouts = TimeoutHeap()
        """Every attempt's timeout and retry backoff, behind one loop timer (a process
        attempt's timeout and a backoff are `PausableTimer`s in it: paused with their task)."""

    def execute(
        self, live: LiveExecution, run: TaskRun, task: TaskDef, attempt: Attempt
    ) -> Outcome | Coroutine[None, None, Outcome]:
        """Begin the attempt: its outcome when it ended at once (its action cannot be
        resolved), else the coroutine that runs it (one coroutine fewer per attempt than an
        `async def` here, on the hot path of short in-process tasks)."""
        execution = live.execution
        run.attempt += 1
        run.declared_cpu, run.declared_memory_mb = task.resources.cpu, task.resources.memory_mb
        now = self.clock.time()
        wait = now - (run.queued_at or now)
        run.wait_s += wait
        run.started_at = now
        # TaskTransitions.move(..., announce=False), inlined: TaskStarted announces it
        if _RUNNING not in TASK_TRANSITIONS[run.state]:
            run.to(_RUNNING)  # raises IllegalTransition
        run.state, run.reason = _RUNNING, ""
        try:
            job = self.registry.in_process(task) or self.registry.resolve(
                task, {**live.context, "l3.task_id": task.id, "l3.attempt": run.attempt},
                execution.params)  # fmt: skip
        except ActionError as exc:
            attempt.permanent = True
            self._publish_started(execution, run, None, (), wait)
            return TaskState.FAILED, str(exc), None
        if isinstance(job, InProcessJob):  # `noop`: nothing acts, so nothing to wait for
            # at, execution_id, task_id, attempt, pid, pgid, proc_start, log_path, command,
            # wait_s: positionally (events.py says why)
            self.bus.publish(ev.TaskStarted(now, execution.id, run.task_id, run.attempt,
                                            None, None, None, run.log_path, (task.action,),
                                            wait))  # fmt: skip
            return self._execute_in_process(run, job, attempt, now)
        placement = self._placement(live, run, task)
        return self._execute_process(live, run, job, attempt, wait, placement)

    def _execute_in_process(
        self, run: TaskRun, job: InProcessJob, attempt: Attempt, now: float
    ) -> Outcome | Coroutine[None, None, Outcome]:
        """Run the job up to its first wait: its outcome if it ended there (a no-op: no
        timeout armed, no coroutine of ours), else the coroutine that waits for its end."""
        run.running_since = now
        coro = job.func(job.params)
        try:
            waits_for = coro.send(None)
        except StopIteration as done:
            run.stop_running(self.clock.time())
            return SUCCEEDED if done.value == 0 else _in_process_outcome(done.value)
        except BaseException:
            run.stop_running(self.clock.time())
            raise
        return self._wait_in_process(run, job, attempt, coro, waits_for, now)

    async def _wait_in_process(
        self,
        run: TaskRun,
        job: InProcessJob,
        attempt: Attempt,
        coro: Coroutine[Any, Any, int],
        waits_for: object,
        began: float,
    ) -> Outcome:
        # One heap for every in-process timeout (a call_later per attempt cost 3.8 us, a
        # third of asyncio.timeout()), armed at the job's first wait for what is left of it
        # since `began`. The attempt runs in its Task by now (launch.py).
        def expire() -> None:
            attempt.timed_out = True
            if attempt.job_task is not None:
                attempt.job_task.cancel()

        left = job.timeout_s - max(self.clock.time() - began, 0.0)
        armed = self.timeouts.arm(left, expire)
        try:
            code = await CarryOn(coro, waits_for)
        except asyncio.CancelledError:
            if not attempt.timed_out:
                raise
            if attempt.job_task is not None:
                attempt.job_task.uncancel()
            return TaskState.TIMED_OUT, f"timed out after {job.timeout_s:g}s", None
        finally:
            self.timeouts.disarm(armed)
            run.stop_running(self.clock.time())
        return _in_process_outcome(code)

    def schedule_retry(self, live: LiveExecution, run: TaskRun, task: TaskDef, error: str,
                       outcome: TaskState, requeue: Callable[[], None]) -> None:  # fmt: skip
        """The attempt failed and may be retried: `requeue` it after its backoff (paused
        while its execution is)."""
        delay_ms = min(task.retry_delay * task.retry_backoff ** (run.attempt - 1),
                       task.retry_max_delay)  # fmt: skip
        delay = delay_ms / 1000
        self.transitions.move(live.execution, run, TaskState.RETRYING,
                        f"attempt {run.attempt} failed ({error}); retry in {delay:g}s")  # fmt: skip
        self.bus.publish(ev.TaskRetrying(at=self.clock.time(), execution_id=live.execution.id,
                                         task_id=run.task_id, attempt=run.attempt,
                                         delay_s=delay, error=error, state=outcome,
                                         exit_code=run.exit_code))  # fmt: skip

        def due() -> None:
            live.retry_timers.pop(run.task_id, None)
            if run.state == TaskState.RETRYING:
                requeue()

        timer = PausableTimer(delay, due, self.timeouts)
        live.retry_timers[run.task_id] = timer
        if live.execution.state == ExecState.PAUSED:
            timer.pause()

    def _publish_started(
        self,
        execution: Execution,
        run: TaskRun,
        proc: TaskProcess | None,
        command: tuple[str, ...],
        wait: float,
        at: float | None = None,
    ) -> None:
        self.bus.publish(ev.TaskStarted(  # in its field order (positional: events.py)
            self.clock.time() if at is None else at, execution.id, run.task_id, run.attempt,
            proc.pid if proc else None, proc.pgid if proc else None,
            proc.proc_start if proc else None, run.log_path, command, wait,
        ))  # fmt: skip

    async def _execute_process(
        self,
        live: LiveExecution,
        run: TaskRun,
        job: CommandJob,
        attempt: Attempt,
        wait: float,
        placement: Placement,
    ) -> Outcome:
        execution = live.execution
        # A string, not `live.directory / ...`: a Path joined and formatted cost ~17 us of a
        # busy loop per attempt (a task id holds no `/`).
        folder = live.context["l3.execution_dir"]  # str(live.directory)
        run.log_path = log_path = f"{folder}/{run.task_id}.{run.attempt}.log"
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

        # at, execution_id, task_id, attempt, log_path, command, wait_s (positional: events.py)
        publish(ev.AttemptOpened(clock.time(), execution.id, run.task_id, run.attempt,
                                 run.log_path, job.shown_argv, wait))  # fmt: skip
        committed = self.bus.durable_future()  # the store has it (and all before it)
        if committed is not None:
            await committed
        try:
            proc = self.executor.start(job, log_path, on_lines, on_metric, placement)
        except SpawnError as exc:
            self._publish_started(execution, run, None, job.shown_argv, wait)
            return TaskState.FAILED, job.shown(str(exc)), None
        attempt.process = proc
        run.pid, run.pgid, run.proc_start = proc.pid, proc.pgid, proc.proc_start
        self._publish_started(execution, run, proc, job.shown_argv, wait)
        run.start_running(clock.time())

        def on_timeout() -> None:
            attempt.timed_out = True
            proc.terminate()

        attempt.timer = PausableTimer(job.timeout_s, on_timeout, self.timeouts)
        if execution.state == ExecState.PAUSED:  # paused between admission and spawn
            self.freeze(execution, run, attempt)
        try:
            result = await proc.wait()
        except asyncio.CancelledError:
            proc.terminate()
            raise
        run.stop_running(clock.time())
        run.end_attempt_usage(result.cpu_s, result.max_rss)
        run.last_line = result.last_line or run.last_line
        if attempt.cancelled or execution.cancel_requested:
            return TaskState.CANCELLED, "cancelled", result.exit_code
        if attempt.timed_out:
            return TaskState.TIMED_OUT, f"timed out after {job.timeout_s:g}s", result.exit_code
        if result.lost:  # not the task's doing: retried as its policy says
            return TaskState.INTERRUPTED, job.shown(result.lost), None
        if result.ok:
            return TaskState.SUCCEEDED, "", 0
        return TaskState.FAILED, result.describe(), result.exit_code

    def _placement(self, live: LiveExecution, run: TaskRun, task: TaskDef) -> Placement:
        """Where this attempt runs (the executor set resolves the choices against the
        default) and how a remote executor reports its worker and usage."""
        execution = live.execution
        run.worker = ""
        needs: dict[str, float] = {pool: float(n) for pool, n in task.resources.pools.items()}
        if task.resources.memory_mb:
            needs["memory_mb"] = float(task.resources.memory_mb)

        def on_worker(worker: str, pid: int | None = None) -> None:
            run.worker = worker
            self.bus.publish(ev.TaskPlaced(at=self.clock.time(), execution_id=execution.id,
                                           task_id=run.task_id, attempt=run.attempt,
                                           worker=worker, pid=pid))  # fmt: skip

        return Placement(f"{execution.id}/{run.task_id}/{run.attempt}",
                         (task.executor, live.definition.executor), needs, on_worker,
                         run.record_usage)  # fmt: skip

    # ------------------------------------------------------------------ pause

    def freeze(self, execution: Execution, run: TaskRun, attempt: Attempt) -> bool:
        """Stop a running attempt's processes and its timeout; False if it could not be."""
        if attempt.process is None or not attempt.process.pause():
            return False
        if attempt.timer is not None:
            attempt.timer.pause()
        run.stop_running(self.clock.time())
        self.transitions.move(execution, run, TaskState.PAUSED, "paused by operator")
        return True

    def thaw(self, execution: Execution, run: TaskRun, attempt: Attempt) -> bool:
        if attempt.process is None or run.state != TaskState.PAUSED:
            return False
        attempt.process.resume()
        if attempt.timer is not None:
            attempt.timer.resume()
        run.start_running(self.clock.time())
        self.transitions.move(execution, run, TaskState.RUNNING, "resumed")
        return True


SUCCEEDED: Outcome = (TaskState.SUCCEEDED, "", 0)


def crashed(live: LiveExecution, task_id: str, exc: Exception) -> Outcome:
    """A bug in our code on an attempt's path: the task fails (rather than the run hanging)."""
    log.exception("task %s/%s crashed the engine path", live.execution.id, task_id)
    return TaskState.FAILED, f"internal error: {exc}", None


def _in_process_outcome(code: int) -> Outcome:
    if code == 0:
        return SUCCEEDED
    return TaskState.FAILED, f"exit code {code}", code
