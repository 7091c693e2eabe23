"""`l3tui plan`: what decisions would do, without doing any of it (the seed's ExecutionPlan):
the executions each would create with their tasks in dependency order, priorities and
pools, the expected duration from history (p50 of past runs; "unknown" without history),
and what would wait and why, judged by the scheduler's own admission rules against what
runs now (in a daemon) or against an idle scheduler and the memory in use now (no daemon).

It changes nothing: no decision is recorded, no task queued.
"""

from __future__ import annotations

import bisect
import graphlib
import heapq
import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from l3tui.config.durations import format_ms
from l3tui.config.loader import Config
from l3tui.coordinator import reserving
from l3tui.coordinator.acting import Start, starts
from l3tui.coordinator.decisions import (
    AnyDecision,
    Cancel,
    CancelReservation,
    DecisionError,
    Pause,
    Reserve,
    Resume,
    canonical,
    digest,
    when_at,
)
from l3tui.engine.clock import SystemClock
from l3tui.engine.resources.reservations import from_request
from l3tui.engine.scheduling.queue_entry import QueueEntry
from l3tui.engine.scheduling.scheduler import TaskScheduler
from l3tui.store import coordination as db
from l3tui.store.queries import quantile


@dataclass(slots=True)
class TaskPlan:
    task_id: str
    name: str
    action: str
    priority: int
    pools: dict[str, int]
    depends_on: list[str]
    expected_s: float | None
    history_runs: int
    waits: str | None
    """Why it would wait if it were ready now (None: it would start)."""


@dataclass(slots=True)
class ExecutionPlan:
    workflow_id: str
    name: str
    priority: int
    max_parallel: int | None
    expected_s: float | None
    """p50 of past runs (or, for a batch, its tasks' p50s laid on its lanes); None: unknown."""
    history_runs: int
    deadline_in_s: float | None
    tasks: list[TaskPlan]
    notes: list[str] = field(default_factory=list)
    why: str = ""


@dataclass(slots=True)
class DecisionPlan:
    decision_id: str | None
    kind: str | None
    status: str
    """would act, would wait (not_before), duplicate, rejected."""
    message: str
    executions: list[ExecutionPlan] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)
    waits_until: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class History:
    """Past durations, read once per workflow from the store (none without a store)."""

    def __init__(self, conn: sqlite3.Connection | None) -> None:
        self.conn = conn
        self._workflows: dict[str, list[float]] = {}
        self._tasks: dict[str, dict[str, list[float]]] = {}

    def workflow(self, workflow_id: str) -> list[float]:
        if workflow_id not in self._workflows:
            self._workflows[workflow_id] = ([] if self.conn is None else db.workflow_durations(
                self.conn, [workflow_id]).get(workflow_id, []))  # fmt: skip
        return self._workflows[workflow_id]

    def tasks(self, workflow_id: str) -> dict[str, list[float]]:
        if workflow_id not in self._tasks:
            self._tasks[workflow_id] = ({} if self.conn is None
                                        else db.task_durations(self.conn, workflow_id))
        return self._tasks[workflow_id]


def load_history(conn: sqlite3.Connection | None, config: Config,
                 decisions: Sequence[AnyDecision | DecisionError], now: float) -> History:
    """Every duration the plans of `decisions` need, read now (so planning itself reads
    nothing: in a daemon it runs on the event loop beside the live scheduler)."""
    history = History(conn)
    for item in decisions:
        if isinstance(item, DecisionError):
            continue
        try:
            planned = starts(config, item, now, now)
        except DecisionError:
            continue
        for start in planned:
            if start.workflow_id.startswith(("task:", "batch:")):
                for task in start.definition.tasks:
                    history.workflow(f"task:{task.action}")
            else:
                history.workflow(start.workflow_id)
                history.tasks(start.workflow_id)
    history.conn = None
    return history


def recorded_of(conn: sqlite3.Connection | None,
                decisions: Sequence[AnyDecision | DecisionError]) -> dict[str, db.Recorded]:
    """What the store already holds under these decisions' ids."""
    out: dict[str, db.Recorded] = {}
    if conn is None:
        return out
    for item in decisions:
        if not isinstance(item, DecisionError):
            found = db.decision(conn, item.id)
            if found is not None:
                out[item.id] = found
    return out


def idle_scheduler(config: Config, memory_pct: float | None) -> TaskScheduler:
    """A scheduler with nothing running, its load gate fed the memory in use now."""
    scheduler = TaskScheduler(config.scheduling, SystemClock())
    scheduler.gate.update(None, memory_pct)
    return scheduler


def would_wait(scheduler: TaskScheduler, entry: QueueEntry,
               queued: Sequence[int] = ()) -> str | None:  # fmt: skip
    """Why a task like `entry` would wait if it were queued now (None: it would start), by
    the scheduler's own rules; nothing is queued or changed. `queued`: the effective
    priorities of what is queued, sorted (taken once per plan)."""
    if scheduler.draining:
        return scheduler.draining
    blocker = scheduler.slots.shortfall(entry)
    if blocker is not None:
        why = blocker.blocking()
        if why:
            return why
    if len(scheduler.running) >= scheduler.max_concurrent:
        return f"concurrency {len(scheduler.running)}/{scheduler.max_concurrent}"
    if not entry.critical and scheduler.gate.closed:
        return scheduler.gate.reason
    ahead = len(queued) - bisect.bisect_left(queued, entry.priority)
    if ahead:
        return f"behind {ahead} queued task(s) of the same or higher priority"
    return None


def plan(config: Config, decisions: Sequence[AnyDecision | DecisionError], *,
         history: History, scheduler: TaskScheduler, now: float,
         recorded: Mapping[str, db.Recorded] | None = None) -> list[DecisionPlan]:  # fmt: skip
    """One plan per decision, in order."""
    recorded = recorded or {}
    queued = sorted(e.effective_priority for e in scheduler.queue()) \
        if scheduler.queue_length() else []
    out: list[DecisionPlan] = []
    for item in decisions:
        if isinstance(item, DecisionError):
            out.append(DecisionPlan(item.decision_id, None, "rejected", str(item)))
            continue
        out.append(_plan_one(config, item, history, scheduler, now, recorded.get(item.id),
                             queued))  # fmt: skip
    return out


def _plan_one(config: Config, decision: AnyDecision, history: History,
              scheduler: TaskScheduler, now: float, seen: db.Recorded | None,
              queued: Sequence[int]) -> DecisionPlan:  # fmt: skip
    if seen is not None:
        if seen.digest != digest(canonical(decision)):
            return DecisionPlan(decision.id, decision.kind, "rejected",
                                f"the id {decision.id!r} was already used for a different "
                                "decision")  # fmt: skip
        return DecisionPlan(decision.id, decision.kind, "duplicate",
                            f"already received; nothing more would be done "
                            f"({seen.message or seen.state})")  # fmt: skip
    try:
        planned = starts(config, decision, now, now)
        waits_until = when_at(decision.not_before, now) if decision.not_before is not None \
            else None
        if isinstance(decision, Reserve):
            reserving.check(scheduler.book, decision, now, max(waits_until or now, now))
    except DecisionError as exc:
        return DecisionPlan(decision.id, decision.kind, "rejected", str(exc))
    status = "would wait" if waits_until is not None and waits_until > now else "would act"
    result = DecisionPlan(decision.id, decision.kind, status, "", waits_until=waits_until)
    if isinstance(decision, Reserve | CancelReservation):
        result.message = _reservation_plan(decision, now, max(waits_until or now, now))
        return result
    if isinstance(decision, Cancel | Pause | Resume):
        result.targets = [decision.execution]
        what = f"task {decision.task} of " if decision.task else ""
        result.message = f"{decision.kind} {what}{decision.execution} (an execution, or what " \
                         "that decision started)"
        return result
    for start in planned:
        if start.error:
            result.message += f"would not start {start.workflow_id}: {start.error}; "
            continue
        result.executions.append(_execution(config, start, history, scheduler, queued))
    if not planned:
        result.message = "starts nothing: no workflow's on_analysis trigger matches"
    else:
        names = ", ".join(e.workflow_id for e in result.executions)
        result.message = (result.message + f"creates {len(result.executions)} execution(s): "
                          f"{names}")  # fmt: skip
    return result


def _reservation_plan(decision: Reserve | CancelReservation, received_at: float,
                      acts_at: float) -> str:  # fmt: skip
    if isinstance(decision, CancelReservation):
        return (f"ends reservation {decision.reservation} (an id, or what that reserve "
                "decision made)")  # fmt: skip
    request = reserving.request_for(decision, received_at, acts_at)
    held = from_request(request, reserving.reservation_id(decision.id), "", acts_at)
    return (f"reserves {held.holds()} from {_clock(held.starts_at)} until "
            f"{_clock(held.ends_at)} as {held.id}")


def _clock(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(at))


def _execution(config: Config, start: Start, history: History, scheduler: TaskScheduler,
               queued: Sequence[int]) -> ExecutionPlan:  # fmt: skip
    definition = start.definition
    levels = config.scheduling
    base = levels.priority_level(start.priority if start.priority is not None
                                 else definition.priority)  # fmt: skip
    critical = levels.critical_level()
    order = list(graphlib.TopologicalSorter(
        {t.id: set(t.dependencies) for t in definition.tasks}).static_order())  # fmt: skip
    by_id = {t.id: t for t in definition.tasks}
    built = start.workflow_id.startswith(("task:", "batch:"))
    task_history = {} if built else history.tasks(start.workflow_id)
    tasks: list[TaskPlan] = []
    for task_id in order:
        task = by_id[task_id]
        priority = levels.priority_level(task.priority, base)
        past = history.workflow(f"task:{task.action}") if built else task_history.get(task_id, [])
        entry = QueueEntry(execution_id="(planned)", task_id=task_id,
                           workflow_id=start.workflow_id, name=task.display_name,
                           priority=priority, on_admit=_never, critical=priority >= critical,
                           cpu=task.resources.cpu, memory_mb=task.resources.memory_mb,
                           pools=dict(task.resources.pools),
                           group_limit=definition.max_parallel)  # fmt: skip
        tasks.append(TaskPlan(task_id, task.display_name, task.action, priority,
                              dict(task.resources.pools), list(task.dependencies),
                              quantile(past, 0.5), len(past),
                              would_wait(scheduler, entry, queued)))  # fmt: skip
    notes: list[str] = []
    first = [t for t in tasks if not t.depends_on]
    lanes = min(definition.max_parallel or len(first), scheduler.max_concurrent)
    if len(first) > lanes:
        notes.append(f"{len(first) - lanes} of its {len(first)} first tasks wait for a lane "
                     f"(at most {lanes} at once)")  # fmt: skip
    free = scheduler.max_concurrent - len(scheduler.running)
    if 0 < free < min(len(first), lanes):
        notes.append(f"only {free} of resource_limits.max_concurrent_tasks "
                     f"({scheduler.max_concurrent}) are free now")  # fmt: skip
    if built:
        expected = _makespan([t.expected_s for t in tasks], max(lanes, 1))
        runs = min((t.history_runs for t in tasks), default=0)
    else:
        past = history.workflow(start.workflow_id)
        expected, runs = quantile(past, 0.5), len(past)
    deadline = definition.deadline / 1000 if definition.deadline else None
    if deadline is not None and expected is not None and expected > deadline:
        notes.append(f"expected {format_ms(expected * 1000)} is past its deadline "
                     f"({format_ms(deadline * 1000)})")  # fmt: skip
    return ExecutionPlan(start.workflow_id, definition.name, base, definition.max_parallel,
                         expected, runs, deadline, tasks, notes, start.why)  # fmt: skip


def _makespan(durations: list[float | None], lanes: int) -> float | None:
    """Independent tasks of these durations on `lanes` lanes, in order; None if any unknown."""
    if any(d is None for d in durations):
        return None
    ends = [0.0] * lanes
    for duration in durations:
        start = heapq.heappop(ends)
        heapq.heappush(ends, start + (duration or 0.0))
    return max(ends) if durations else 0.0


def _never(entry: QueueEntry) -> None:
    raise AssertionError("a planned entry is never admitted")


def text(plans: Sequence[DecisionPlan]) -> list[str]:
    """The plans for people."""
    lines: list[str] = []
    for p in plans:
        head = f"{p.decision_id or '(no id)'} {p.kind or '?'}: {p.status}"
        if p.waits_until is not None and p.status == "would wait":
            from datetime import datetime

            head += f" until {datetime.fromtimestamp(p.waits_until).isoformat(timespec='seconds')}"
        lines.append(head)
        if p.message:
            lines.append(f"  {p.message}")
        for e in p.executions:
            expected = (f"expected {format_ms(e.expected_s * 1000)} (p50 of {e.history_runs} "
                        "run(s))" if e.expected_s is not None else "expected duration unknown "
                        "(no history)")  # fmt: skip
            extra = f", max_parallel {e.max_parallel}" if e.max_parallel else ""
            lines.append(f"  execution {e.workflow_id} \"{e.name}\": priority {e.priority}, "
                         f"{len(e.tasks)} task(s){extra}; {expected}")  # fmt: skip
            if e.why:
                lines.append(f"    because: {e.why}")
            for n, t in enumerate(e.tasks, 1):
                pools = ", ".join(f"{k}:{v}" for k, v in t.pools.items()) or "-"
                after = f" after {', '.join(t.depends_on)}" if t.depends_on else ""
                took = (format_ms(t.expected_s * 1000) if t.expected_s is not None
                        else "unknown")  # fmt: skip
                lines.append(f"    {n}. {t.task_id} ({t.action}) priority {t.priority}, pools "
                             f"{pools}, p50 {took}{after}")  # fmt: skip
                if t.waits:
                    lines.append(f"       would wait now: {t.waits}")
            for note in e.notes:
                lines.append(f"    note: {note}")
    return lines
