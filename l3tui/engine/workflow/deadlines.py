"""Deadlines of an execution and of its tasks: armed when the execution starts, announced as
`DeadlineMissed` when one passes with the work unfinished. A missed deadline is news for
people and alert rules; it stops nothing (a task's `timeout` does that)."""

from __future__ import annotations

import asyncio

from l3tui.engine import events as ev
from l3tui.engine.bus import EventBus
from l3tui.engine.clock import Clock
from l3tui.engine.workflow.live import LiveExecution


def arm_deadlines(live: LiveExecution, bus: EventBus, clock: Clock) -> None:
    """Start the timers of the execution's deadline and its tasks' (cancelled when it ends)."""
    execution = live.execution
    loop = asyncio.get_running_loop()
    if live.definition.deadline and execution.started_at is not None:
        execution.deadline_at = execution.started_at + live.definition.deadline / 1000
        live.deadline_timers.append(loop.call_later(
            live.definition.deadline / 1000, _missed, live, None, bus, clock))  # fmt: skip
    for task in live.definition.tasks:
        if task.deadline:
            live.deadline_timers.append(loop.call_later(
                task.deadline / 1000, _missed, live, task.id, bus, clock))  # fmt: skip


def _missed(live: LiveExecution, task_id: str | None, bus: EventBus, clock: Clock) -> None:
    execution = live.execution
    if task_id is not None and execution.tasks[task_id].state.terminal:
        return
    if execution.state.terminal:
        return
    started = execution.started_at or execution.created_at
    seconds = (
        live.definition.deadline if task_id is None else live.task_defs[task_id].deadline
    ) or 0
    bus.publish(ev.DeadlineMissed(at=clock.time(), execution_id=execution.id, task_id=task_id,
                                  deadline=started + seconds / 1000))  # fmt: skip
