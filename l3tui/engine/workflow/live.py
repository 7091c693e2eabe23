"""What the engine holds for an execution while it runs, and for each task while it is
queued or running. Runtime-only: the records that outlive a run are in `model.py`."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from l3tui.config.schema import TaskDef, WorkflowDef
from l3tui.engine.executors.local import LocalProcess
from l3tui.engine.model import ExecState, Execution, TaskState
from l3tui.engine.scheduling.scheduler import QueueEntry
from l3tui.engine.workflow.dag import ReadyTracker
from l3tui.engine.workflow.timers import PausableTimer

if TYPE_CHECKING:
    from l3tui.engine import events as ev
    from l3tui.engine.actions.registry import ActionRegistry
    from l3tui.engine.clock import Clock
    from l3tui.engine.executors.local import LocalExecutor
    from l3tui.engine.model import TaskRun
    from l3tui.engine.scheduling.scheduler import TaskScheduler


@dataclass(slots=True, eq=False)
class Attempt:
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


class EngineParts:
    """What WorkflowEngine's parts (attempts.py, operations.py) use of each other: declared
    here for the type checker only; WorkflowEngine provides them."""

    if TYPE_CHECKING:
        bus: ev.EventBus
        clock: Clock
        registry: ActionRegistry
        executor: LocalExecutor
        scheduler: TaskScheduler
        actor: str
        executions: dict[str, Execution]
        _live: dict[str, LiveExecution]

        def _set_state(
            self,
            execution: Execution,
            run: TaskRun,
            state: TaskState,
            reason: str = "",
            *,
            announce: bool = True,
        ) -> None: ...

        def _finish_task(
            self,
            live: LiveExecution,
            run: TaskRun,
            state: TaskState,
            reason: str,
            settle: bool = True,
        ) -> None: ...

        def _maybe_finish(self, live: LiveExecution) -> None: ...

        def _freeze(self, execution: Execution, run: TaskRun, attempt: Attempt) -> bool: ...
