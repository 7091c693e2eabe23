"""What the engine holds for an execution while it runs, and for each task while it is
queued or running. Runtime-only: the records that outlive a run are in `model.py`."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from l3tui.config.fields import PriorityRef
from l3tui.config.schema import TaskDef, WorkflowDef
from l3tui.engine import events as ev
from l3tui.engine.bus import EventBus
from l3tui.engine.clock import Clock
from l3tui.engine.executors.base import TaskProcess
from l3tui.engine.model import TASK_TRANSITIONS, ExecState, Execution, TaskRun, TaskState
from l3tui.engine.scheduling.queue_entry import QueueEntry
from l3tui.engine.workflow.dag import ReadyTracker
from l3tui.engine.workflow.templates import PerDefinition
from l3tui.engine.workflow.timers import PausableTimer

log = logging.getLogger(__name__)

FREEZE_TASKS = 1000
"""An execution this large is kept out of full collections while it runs (`GcFreeze`): else
each walks its definition and records again (~5 us per task of a 10k-task run)."""


YOUNG = 7000
"""Young collections while a large execution runs: every 7,000 allocations, not 700. Its
records and events come by the thousand and live long; each young collection walked them
again before promoting them (~1.2 us per task of a 10k-task run). At most 7,000 young
objects wait for a collection: a few hundred KB."""


class GcFreeze:
    """Large executions out of the cyclic GC's full collections while they run: creating
    one freezes what is alive (`gc.freeze`); when any execution ends all is given back to
    the collector (cyclic garbage that was young then too: nothing stays pinned) and frozen
    again while a large execution still runs. Nothing is unfrozen unless it froze; but
    `gc.unfreeze` has no finer grain, so what the console froze at start goes back too."""

    __slots__ = ("frozen", "saved")

    def __init__(self) -> None:
        self.frozen = False
        self.saved: tuple[int, int, int] | None = None

    def created(self, tasks: int) -> None:
        if tasks >= FREEZE_TASKS:
            gc.freeze()
            self.frozen = True
            if self.saved is None:
                self.saved = gc.get_threshold()
                gc.set_threshold(max(self.saved[0], YOUNG), *self.saved[1:])

    def ended(self, running: Iterable[LiveExecution]) -> None:
        if not self.frozen:
            return
        gc.unfreeze()
        self.frozen = any(len(other.task_defs) >= FREEZE_TASKS for other in running)
        if self.frozen:
            gc.freeze()
        elif self.saved is not None:
            gc.set_threshold(*self.saved)
            self.saved = None


@dataclass(slots=True, eq=False)
class Attempt:
    """What the engine holds for a task while it is queued or running."""

    entry: QueueEntry
    process: TaskProcess | None = None
    job_task: asyncio.Task[None] | None = None
    timer: PausableTimer | None = None
    timed_out: bool = False
    cancelled: bool = False
    permanent: bool = False
    """The failure will not go away on retry (missing command, bad parameters)."""
    started: bool = False
    """Its coroutine has begun: cancelling the asyncio task now still runs its `finally`."""


@dataclass(slots=True, eq=False)
class LiveExecution:
    """Runtime-only state of an execution."""

    execution: Execution
    definition: WorkflowDef
    tracker: ReadyTracker
    attempts: dict[str, Attempt] = field(default_factory=dict)
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
    first_dispatch: asyncio.Task[None] | None = None
    """Queues its first tasks once the store has committed its start."""
    dispatched: bool = False
    """Its first tasks have been queued."""
    waiting: tuple[tuple[str, str], ...] = ()
    """(task id, reason) of each task that waits on upstream tasks at start, in order."""
    made: bool = False
    """`make_directory` was called (it is tried once)."""

    @classmethod
    def begin(cls, execution: Execution, definition: WorkflowDef,
              keep: Mapping[str, TaskState] | None, state_dir: Path,
              config_dir: Path) -> LiveExecution:  # fmt: skip
        """What the engine holds for a new execution: its ready set, its task definitions,
        the tasks a resume carries over, its log directory and its `l3.*` context."""
        shape = shape_of(definition)
        live = cls(execution, definition, shape.tracker.fresh(), keep_results=dict(keep or {}),
                   waiting=shape.waiting, task_defs=shape.task_defs,
                   unfinished=len(definition.tasks))  # fmt: skip
        live.done = asyncio.get_running_loop().create_future()
        live.directory = state_dir / "runs" / execution.id
        live.context = {
            "l3.state_dir": str(state_dir), "l3.execution_id": execution.id,
            "l3.execution_dir": str(live.directory), "l3.config_dir": str(config_dir),
            "l3.workflow_id": execution.workflow_id,
        }  # fmt: skip
        return live

    def make_directory(self) -> None:
        """Its log directory, once; a full or read-only disk only costs the logs (tasks
        run)."""
        if self.made:
            return
        self.made = True
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            log.warning("cannot create %s for task logs: %s", self.directory, exc.strerror)


Waiting = tuple[tuple[str, str], ...]


class Shape:
    """What is derived from a definition once, whatever its runs: read only, shared."""

    __slots__ = ("named", "runs", "task_defs", "tracker", "waiting")

    def __init__(self, definition: WorkflowDef) -> None:
        # One walk of the tasks (four, and the tracker's, took ~1 us per task of each new
        # definition's creation, which stands before its first task runs).
        task_defs: dict[str, TaskDef] = {}
        deps: dict[str, list[str]] = {}
        named: list[tuple[str, str]] = []
        runs: list[tuple[str, str, int, PriorityRef | None]] = []
        waiting: list[tuple[str, str]] = []
        for t in definition.tasks:
            task_id, upstream, name = t.id, t.dependencies, t.name or t.id  # display_name
            task_defs[task_id] = t
            deps[task_id] = upstream
            named.append((task_id, name))
            runs.append((task_id, name, t.retries + 1, t.priority))
            if upstream:  # not ready at start (the tracker counts it as waiting)
                waiting.append((task_id, "waiting on " + ", ".join(upstream)))
        self.task_defs = task_defs
        """Its tasks by id, in definition order."""
        self.tracker = ReadyTracker(deps)
        """Its graph, nothing settled: each run takes a `fresh()` copy."""
        self.waiting: Waiting = tuple(waiting)
        """(task id, reason) of each task that waits on upstream tasks at start, in order."""
        self.named = tuple(named)
        """(task id, display name) of each task, in order (what `ExecutionCreated` says)."""
        self.runs = tuple(runs)
        """(task id, display name, max attempts, own priority or None) of each task, in
        order: what its `TaskRun` starts with."""


shape_of = PerDefinition(Shape)
"""A definition's `Shape`, walked once per definition object (~1 us per task of each later
run of it)."""


class TaskTransitions:
    """Moves a task's record to a new state and announces it: the one way the engine's
    parts (attempts, operator commands, progress) change a task's state."""

    __slots__ = ("bus", "clock")

    def __init__(self, bus: EventBus, clock: Clock) -> None:
        self.bus = bus
        self.clock = clock

    def move(
        self,
        execution: Execution,
        run: TaskRun,
        state: TaskState,
        reason: str = "",
        *,
        announce: bool = True,
        at: float | None = None,
    ) -> None:
        """`announce=False` where a richer event follows at once (TaskStarted for running,
        TaskFinished for an ending). `at`: now, when the caller has just read the clock."""
        previous = run.state
        if state not in TASK_TRANSITIONS[previous]:
            run.to(state)  # raises IllegalTransition
        run.state = state
        run.reason = reason
        if not announce:
            return
        self.bus.publish(ev.TaskStateChanged(  # in its field order (positional: events.py)
            self.clock.time() if at is None else at, execution.id, run.task_id, state, previous,
            run.attempt, reason,
        ))  # fmt: skip
