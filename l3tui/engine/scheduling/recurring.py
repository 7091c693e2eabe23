"""Recurring tasks: workflows started on cron schedules (`scheduling.recurring_tasks` and
workflow `triggers: [{cron: ...}]`, id `<workflow>@cron`), with persisted last fires,
catch-up after downtime, overlap policies and run-time enable/disable.

Fire times come from `CronSchedule` (DST as Vixie cron does it), the same code
`l3tui schedules` prints. This module decides when to start a workflow and records it;
starting is the Runtime's `run_workflow`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from l3tui.config.loader import Config
from l3tui.config.suggest import did_you_mean
from l3tui.engine import events as ev
from l3tui.engine.api import OpResult, ScheduleView
from l3tui.engine.bus import EventBus
from l3tui.engine.clock import Clock
from l3tui.engine.scheduling.cron import CronSchedule, zone_name
from l3tui.errors import StateError

log = logging.getLogger(__name__)
MISFIRE_GRACE_S = 60.0
"""A fire noticed later than this (l3tui was down, the machine slept) counts as missed."""
_COUNT_CAP = 1000


@dataclass(frozen=True, slots=True)
class RecurringJob:
    id: str
    name: str
    workflow: str
    cron: str
    schedule: CronSchedule
    params: dict[str, Any] = field(default_factory=dict)
    enabled: bool = True
    """As configured; an operator's toggle (persisted) overrides it."""
    catch_up: str = "run_once"
    overlap: str = "skip"
    priority: str | int | None = None


def jobs_from_config(config: Config) -> list[RecurringJob]:
    """Every recurring task, in config order: recurring_tasks, then workflow cron triggers.
    Timezone: the task's own, else scheduling.timezone, else the machine's."""
    sched = config.scheduling
    jobs = [
        RecurringJob(t.id, t.name or t.id, t.workflow, t.cron,
                     CronSchedule(t.cron, t.timezone or sched.timezone), dict(t.params),
                     t.enabled, t.catch_up, t.overlap, t.priority)
        for t in sched.recurring_tasks
    ]
    definitions = {**config.workflows.workflows, **config.workflows.templates}
    for wf_id, wf in definitions.items():
        for trigger in wf.triggers:
            if trigger.cron:
                jobs.append(RecurringJob(
                    f"{wf_id}@cron", wf.name, wf_id, trigger.cron,
                    CronSchedule(trigger.cron, trigger.timezone or sched.timezone),
                ))  # fmt: skip
    return jobs


# ---------------------------------------------------------------------- persistence


@dataclass(slots=True)
class ScheduleState:
    """What survives a restart, per recurring task."""

    cursor: float | None = None
    """Fire times at or before this instant have been handled (fired, skipped or missed)."""
    last_fire: float | None = None
    last_outcome: str = ""
    last_execution_id: str | None = None
    enabled: bool | None = None
    """The operator's toggle; None follows the config."""


class ScheduleStateStore(Protocol):
    """Where recurring-task state lives (the SQLite store's `schedule_state` table; tests
    may pass their own). Failures are raised as `StateError`."""

    async def load(self) -> dict[str, ScheduleState]: ...

    async def save(self, schedule_id: str, state: ScheduleState) -> None: ...


# ---------------------------------------------------------------------- the scheduler


class Starter(Protocol):
    async def __call__(self, workflow_id: str, params: dict[str, Any] | None = None, *,
                       actor: str = "", trigger: str = "manual",
                       priority: str | int | None = None) -> OpResult: ...  # fmt: skip


class RecurringScheduler:
    """Fires recurring tasks on time; owned loop `run()`; state through a store."""

    def __init__(self, config: Config, clock: Clock, bus: EventBus,
                 store: ScheduleStateStore, start: Starter) -> None:  # fmt: skip
        self.clock = clock
        self.bus = bus
        self.store = store
        self.start = start
        self.jobs: dict[str, RecurringJob] = {j.id: j for j in jobs_from_config(config)}
        self.states: dict[str, ScheduleState] = {}
        self.active: dict[str, set[str]] = {}
        """Executions each job started that have not finished (for overlap)."""
        self.queued: dict[str, float] = {}
        """Jobs with one run (its fire time) waiting for the previous to end (queue_one)."""
        self._ended: deque[str] = deque(maxlen=256)
        self._next: dict[str, datetime | None] = {}
        self._changed = asyncio.Event()
        self._ticking = asyncio.Lock()
        self._unsaved: set[str] = set()
        self.firing = False
        """True once `run` has started: this process fires and records recurring tasks."""
        self.loaded = False
        bus.add_listener(self._on_event, kinds=(ev.ExecutionFinished,))  # all it uses

    async def load(self) -> None:
        """Read persisted state (for views, and for `run`). A task never seen before counts
        from now, in memory only: the process that fires (`run`) records it, so a process
        that never fires (`l3tui run`) cannot make a later one think it missed something."""
        self.states = await self.store.load()
        now = self.clock.time()
        for job_id in self.jobs:
            if job_id not in self.states or self.states[job_id].cursor is None:
                self.states.setdefault(job_id, ScheduleState()).cursor = now
                self._unsaved.add(job_id)
        self._refresh()
        self.loaded = True

    def reconfigure(self, config: Config) -> None:
        """New definitions (config reload); known ids keep their state."""
        self.jobs = {j.id: j for j in jobs_from_config(config)}
        now = self.clock.time()
        for job_id in self.jobs:
            if job_id not in self.states:
                self.states[job_id] = ScheduleState(cursor=now)
                self._unsaved.add(job_id)
        self._refresh()
        self._changed.set()

    # ------------------------------------------------------------------ queries

    def enabled(self, job_id: str) -> bool:
        state = self.states.get(job_id)
        if state is not None and state.enabled is not None:
            return state.enabled
        return self.jobs[job_id].enabled

    def _refresh(self, only: str | None = None) -> None:
        for job_id, job in self.jobs.items():
            if only is not None and job_id != only:
                continue
            state = self.states.get(job_id)
            if not self.enabled(job_id) or state is None or state.cursor is None:
                self._next[job_id] = None
                continue
            self._next[job_id] = job.schedule.next_after(datetime.fromtimestamp(state.cursor, UTC))

    def next_fire(self, job_id: str) -> datetime | None:
        return self._next.get(job_id)

    def views(self) -> list[ScheduleView]:
        out = []
        for job_id, job in self.jobs.items():
            state = self.states.get(job_id, ScheduleState())
            nxt = self._next.get(job_id)
            out.append(ScheduleView(
                id=job_id, name=job.name, workflow_id=job.workflow, cron=job.cron,
                timezone=zone_name(job.schedule.zone), enabled=self.enabled(job_id),
                next_fire=nxt.timestamp() if nxt else None, last_fire=state.last_fire,
                last_outcome=state.last_outcome, catch_up=job.catch_up, overlap=job.overlap,
            ))  # fmt: skip
        return out

    # ------------------------------------------------------------------ commands

    async def set_enabled(self, job_id: str, enabled: bool) -> OpResult:
        if job_id not in self.jobs:
            return OpResult(False, f"no schedule {job_id!r}{did_you_mean(job_id, self.jobs)}")
        if self.enabled(job_id) == enabled:
            word = "enabled" if enabled else "disabled"
            return OpResult(False, f"schedule {job_id} is already {word}")
        async with self._ticking:  # not in the middle of deciding a fire of this task
            state = replace(self.states.get(job_id) or ScheduleState())
            state.enabled = enabled
            if enabled:
                state.cursor = self.clock.time()  # time spent disabled is not caught up
            await self._save(job_id, state)
        self._changed.set()
        self.bus.publish(ev.ScheduleChanged(at=self.clock.time(), schedule_id=job_id,
                                            enabled=enabled))  # fmt: skip
        nxt = self._next.get(job_id)
        when = f"; next {nxt:%Y-%m-%d %H:%M %z}" if nxt else ""
        return OpResult(True, f"schedule {job_id} {'enabled' if enabled else 'disabled'}{when}")

    # ------------------------------------------------------------------ firing

    async def run(self, poll_s: float = 60.0) -> None:
        """Owned by the Runtime: fire what is due, sleep until the next fire time."""
        if not self.loaded:
            await self.load()
        self.firing = True
        while True:
            try:
                await self.tick()
            except (OSError, StateError) as exc:  # e.g. the state file cannot be written
                log.warning("recurring tasks: %s", exc)
                self._notice(f"recurring tasks could not be handled: {exc}; retrying",
                             severity="error")  # fmt: skip
            upcoming = [n.timestamp() for n in self._next.values() if n is not None]
            self._changed.clear()
            waits: list[asyncio.Task[Any]] = [asyncio.ensure_future(self._changed.wait())]
            if upcoming:
                waits.append(asyncio.ensure_future(self.clock.sleep_until(min(upcoming))))
            try:
                await asyncio.wait(waits, timeout=poll_s, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in waits:
                    task.cancel()

    async def tick(self) -> None:
        """Handle every due fire time and every queued run whose predecessor ended. A fire
        whose record cannot be saved is not handled: it is tried again (then counts as
        missed, and the catch-up policy decides), never run unrecorded."""
        async with self._ticking:  # one pass at a time: a fire is decided once
            await self._tick()

    async def _tick(self) -> None:
        if self.firing:
            for job_id in sorted(self._unsaved):  # from now on this process is responsible
                await self._save(job_id, replace(self.states[job_id]))
                self._unsaved.discard(job_id)
        now = self.clock.time()
        for job_id, fire_time in list(self.queued.items()):
            if not self.active.get(job_id) and job_id in self.jobs:
                await self._start(self.jobs[job_id], fire_time, replace(self.states[job_id]),
                                  "queued behind the previous run")  # fmt: skip
                del self.queued[job_id]
        for job_id, nxt in list(self._next.items()):
            if nxt is not None and nxt.timestamp() <= now and job_id in self.jobs:
                await self._due(self.jobs[job_id], now)

    async def _save(self, job_id: str, state: ScheduleState) -> None:
        """Persist, then make it the state in force (never the other way round)."""
        await self.store.save(job_id, state)
        self.states[job_id] = state
        self._refresh(job_id)

    async def _due(self, job: RecurringJob, now: float) -> None:
        state = replace(self.states[job.id])  # a working copy until it is saved
        assert state.cursor is not None
        count, latest = self._count_due(job, state.cursor, now)
        if latest is None:
            return
        on_time = now - latest <= MISFIRE_GRACE_S
        missed = count - 1 if on_time else count
        shown = f"{missed}+" if count >= _COUNT_CAP else str(missed)
        state.cursor = latest
        if missed and job.catch_up == "skip":
            state.last_outcome = f"missed {shown}"
            if not on_time:
                await self._save(job.id, state)
            self._notice(f"{job.id}: {shown} fire time(s) missed while l3tui was down or "
                         "the machine slept; skipped (catch_up: skip)")  # fmt: skip
            self.bus.publish(ev.ScheduleFired(at=now, schedule_id=job.id, workflow_id=job.workflow,
                                              fire_time=latest, outcome="missed"))  # fmt: skip
            if not on_time:
                return
        elif missed:
            self._notice(f"{job.id}: {shown} fire time(s) missed while l3tui was down or "
                         "the machine slept; running once now (catch_up: run_once)")  # fmt: skip
        await self._fire(job, latest, state)

    def _count_due(self, job: RecurringJob, cursor: float,
                   now: float) -> tuple[int, float | None]:  # fmt: skip
        """(number of fire times in (cursor, now], capped; the latest of them)."""
        start = datetime.fromtimestamp(cursor, UTC)
        count, latest = 0, None
        for fire in job.schedule.fires_after(start):
            stamp = fire.timestamp()
            if stamp > now:
                return count, latest
            count, latest = count + 1, stamp
            if count >= _COUNT_CAP:
                break
        # Very long downtime: find the latest fire by looking back from now.
        end = datetime.fromtimestamp(now, UTC)
        for back in (timedelta(days=1), timedelta(days=32), timedelta(days=400)):
            fires = job.schedule.fires_between(max(start, end - back), end)
            if fires:
                return count, fires[-1].timestamp()
        return count, latest

    async def _fire(self, job: RecurringJob, fire_time: float, state: ScheduleState) -> None:
        running = self.active.get(job.id)
        if running and job.overlap != "allow":
            outcome = "skipped" if job.overlap == "skip" or job.id in self.queued else "queued"
            state.last_outcome = f"{outcome}: previous run still going"
            await self._save(job.id, state)
            if outcome == "queued":
                self.queued[job.id] = fire_time
            self.bus.publish(ev.ScheduleFired(at=self.clock.time(), schedule_id=job.id,
                                              workflow_id=job.workflow, fire_time=fire_time,
                                              outcome=outcome))  # fmt: skip
            return
        await self._start(job, fire_time, state, "")

    async def _start(self, job: RecurringJob, fire_time: float, state: ScheduleState,
                     why: str) -> None:  # fmt: skip
        state.last_fire = fire_time
        state.last_outcome = "starting"
        # Saved before starting: a crash in between loses this run rather than repeating it.
        await self._save(job.id, state)
        result = await self.start(job.workflow, dict(job.params), actor=f"schedule {job.id}",
                                  trigger=f"cron:{job.id}", priority=job.priority)  # fmt: skip
        if result.applied and result.execution_id:
            if result.execution_id not in self._ended:  # it may end before start returns
                self.active.setdefault(job.id, set()).add(result.execution_id)
            state.last_outcome = "started" + (f" ({why})" if why else "")
            state.last_execution_id = result.execution_id
        else:
            state.last_outcome = f"failed: {result.message}"
        self.bus.publish(ev.ScheduleFired(
            at=self.clock.time(), schedule_id=job.id, workflow_id=job.workflow,
            fire_time=fire_time, outcome="started" if result.applied else "failed",
            execution_id=result.execution_id,
        ))  # fmt: skip
        try:
            await self.store.save(job.id, state)  # the outcome; the fire itself is on record
        except StateError as exc:
            self._notice(f"{job.id}: outcome not saved: {exc}", severity="warning")

    def _on_event(self, event: ev.Event) -> None:
        if not isinstance(event, ev.ExecutionFinished):
            return
        for job_id, executions in self.active.items():
            if event.execution_id in executions:
                executions.discard(event.execution_id)
                if not executions and job_id in self.queued:
                    self._changed.set()  # the loop starts the queued run
                return
        self._ended.append(event.execution_id)

    def _notice(self, message: str, severity: str = "info") -> None:
        log.info(message)
        self.bus.publish(ev.SystemNotice(at=self.clock.time(), topic="schedules",
                                         message=message, severity=severity))  # fmt: skip

