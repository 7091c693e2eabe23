"""ResourceManager: samples the machine at `scheduling.sampler.interval` (in a worker
thread, never on the loop), keeps a bounded history, feeds measured load to admission,
attaches CPU % and RSS to each running task's record, holds the allocation ledger and the
reservation book, and publishes samples (with the time tasks waited since the last one, by
cause, and the machine's CPU while ready work waited), bottleneck findings and upgrade
suggestions (raised, refreshed, resolved when their evidence stops) and reservations starting
and ending on the bus.

It decides nothing about which task runs; the scheduler does, from what this module tells it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from l3tui.config.schema import Scheduling
from l3tui.engine import events as ev
from l3tui.engine.bus import EventBus
from l3tui.engine.clock import Clock, wake_at
from l3tui.engine.model import TaskRun, TaskState
from l3tui.engine.resources.bottlenecks import BottleneckDetector, Finding, UpgradeAdvisor, Waiter
from l3tui.engine.resources.ledger import Ledger
from l3tui.engine.resources.reservations import Reservation, ReservationBook, to_event
from l3tui.engine.resources.sampler import Reading, Sampler

log = logging.getLogger(__name__)
_MEASURED = (TaskState.RUNNING, TaskState.PAUSED)
REFRESH_EVIDENCE_S = 600.0
"""A standing suggestion whose evidence changed is published (and stored) again at most
this often: its figures grow by the minute."""


class WaitingTask(Protocol):
    @property
    def workflow_id(self) -> str: ...

    @property
    def task_id(self) -> str: ...

    @property
    def enqueued_mono(self) -> float: ...

    @property
    def reason(self) -> str: ...


class Timed(Protocol):
    def entries(self) -> Sequence[object]: ...


class Queue(Protocol):
    """What the resource manager needs of the scheduler: somewhere to send measured load,
    and the queue to read for findings. (The scheduler depends on this package for the
    ledger; this package never imports the scheduler.)"""

    @property
    def wait_totals(self) -> Mapping[str, float]: ...

    @property
    def queued_memory_mb(self) -> int: ...

    @property
    def timed(self) -> Timed:
        """Entries waiting for their `not_before` time (not work the machine could do)."""
        ...

    def queue_length(self) -> int: ...

    def update_load(self, cpu: float | None, memory: float | None) -> None: ...

    def waiting_longer_than(self, seconds: float) -> Sequence[WaitingTask]: ...


class ResourceManager:
    """The machine as admission and people see it."""

    def __init__(
        self,
        settings: Scheduling,
        bus: EventBus,
        clock: Clock,
        state_dir: Path,
        *,
        sampler: Sampler | None = None,
        tasks: Callable[[], Iterable[TaskRun]] = tuple,
    ) -> None:
        self.bus = bus
        self.clock = clock
        if sampler is None:
            from l3tui.engine.resources.sampler import PsutilSampler

            sampler = PsutilSampler(state_dir)
        self.sampler = sampler
        self.tasks = tasks
        """The task records currently running (the Runtime supplies them)."""
        self.machine_cores, self.machine_memory_mb = sampler.capacity()
        limits = settings.resource_limits
        self.ledger = Ledger(limits.cpu_cores or self.machine_cores,
                             limits.memory_mb or self.machine_memory_mb, clock.time)  # fmt: skip
        self.reservations = ReservationBook(self.ledger, clock.time)
        self.reservations.on_change(self._reservation_changed)
        self.history: deque[dict[str, Any]] = deque(maxlen=settings.sampler.history)
        self.latest: dict[str, Any] = {}
        self.detector = BottleneckDetector(settings)
        self.advisor = UpgradeAdvisor(settings)
        self.suggested: dict[str, Finding] = {}
        self._refreshed: dict[str, float] = {}
        self.scheduler: Queue | None = None
        self.samples = 0
        self._last_at = 0.0
        self._sampled = asyncio.Event()
        self.configure(settings)

    def configure(self, settings: Scheduling) -> None:
        """Apply a (re)loaded `scheduling` section."""
        self.settings = settings
        self.interval_s = settings.sampler.interval / 1000
        limits = settings.resource_limits
        self.ledger.resize(limits.cpu_cores or self.machine_cores,
                           limits.memory_mb or self.machine_memory_mb)  # fmt: skip
        if self.history.maxlen != settings.sampler.history:
            self.history = deque(self.history, maxlen=settings.sampler.history)
        self.detector.configure(settings)
        self.advisor.settings = settings

    def attach(self, scheduler: Queue) -> None:
        """Feed measured load to this scheduler and read its queue for findings."""
        self.scheduler = scheduler

    # ------------------------------------------------------------------ sampling

    async def run(self) -> None:
        """Owned by the Runtime: one sample per interval until cancelled."""
        loop = asyncio.get_running_loop()
        failing = ""
        while True:
            try:
                await self.sample_once()
                failing = ""
            except Exception as exc:  # a reading failed; the next may not: keep sampling
                log.warning("resource sample failed: %s", exc, exc_info=True)
                if str(exc) != failing:  # tell people once per distinct failure
                    failing = str(exc)
                    self.bus.publish(ev.SystemNotice(
                        at=self.clock.time(), topic="resources", severity="warning",
                        message=f"resource sampling failed: {exc}; admission uses the last "
                                "reading until it recovers",
                    ))  # fmt: skip
            # On the loop's grid of whole intervals: at 1 s, the same turn as the Runtime's
            # ticker and timer loop (an idle loop wakes once for the three).
            now = loop.time()
            await wake_at(max((now // self.interval_s + 1) * self.interval_s, now + 0.05))

    async def sample_once(self) -> dict[str, Any]:
        """Take one sample now: read (in a thread), record, publish, feed admission."""
        runs = [run for run in self.tasks() if run.pgid and run.state in _MEASURED]
        groups = {run.pgid for run in runs if run.pgid}
        reading: Reading = await asyncio.to_thread(self.sampler.sample, groups)
        at = self.clock.time()
        for run in runs:
            usage = reading.groups.get(run.pgid or 0)
            # The attempt may have ended while the reading was taken: its numbers are final.
            if usage is not None and run.state in _MEASURED:
                run.record_usage(usage.cpu_pct, usage.rss, usage.cpu_s)
        sample = dict(reading.system)
        sample["at"] = at
        sample["tasks_measured"] = len(reading.groups)
        sample["ledger_cpu_free"] = self.ledger.cpu_free
        sample["ledger_memory_free_mb"] = self.ledger.memory_free_mb
        self._account(at, sample)
        self.history.append(sample)
        self.latest = sample
        self.samples += 1
        self.bus.publish(ev.ResourceSampled(at=at, sample=sample))
        scheduler = self.scheduler
        if scheduler is not None:
            scheduler.update_load(_number(sample.get("cpu_usage")),
                                  _number(sample.get("memory_usage")))  # fmt: skip
        self._judge(at, sample)
        self._sampled.set()
        self._sampled = asyncio.Event()
        return sample

    def _judge(self, at: float, sample: dict[str, Any]) -> None:
        scheduler = self.scheduler
        waiters: list[Waiter] = []
        if scheduler is not None:
            mono = self.clock.monotonic()
            threshold = self.detector.wait_alert_s
            waiters = [Waiter(f"{e.workflow_id}/{e.task_id}", mono - e.enqueued_mono, e.reason)
                       for e in scheduler.waiting_longer_than(threshold)]  # fmt: skip
        raised, cleared = self.detector.observe(at, sample, waiters)
        for finding in raised:
            self._publish(at, finding, True)
        for finding in cleared:
            self._publish(at, finding, False)
        if self.samples % 60 == 1:  # suggestions rest on hours of history: once a minute
            self.suggest(at)

    def _account(self, at: float, sample: dict[str, Any]) -> None:
        """Add to the sample what the store keeps for reports and advice: the seconds tasks
        waited since the last sample, by cause (`waited`, counted when a wait ends), and
        while ready work was queued, the machine's CPU % and how long that was."""
        elapsed, self._last_at = (at - self._last_at if self._last_at else 0.0), at
        scheduler = self.scheduler
        if scheduler is None:
            return
        waited = self.advisor.observe(at, sample, scheduler.wait_totals,
                                      scheduler.queued_memory_mb)  # fmt: skip
        if waited:
            sample["waited"] = waited
        queued = scheduler.queue_length()
        cpu = _number(sample.get("cpu_usage"))
        if queued and cpu is not None and queued > len(scheduler.timed.entries()):
            sample["busy_while_queued"] = cpu
            sample["queued_interval_s"] = round(min(elapsed, 10 * self.interval_s), 3)

    def suggest(self, at: float) -> None:
        """Publish new suggestions, standing ones whose evidence moved (at most every
        REFRESH_EVIDENCE_S), and resolve those the last day no longer supports."""
        current = {f.kind: f for f in self.advisor.suggestions(at)}
        for kind, finding in current.items():
            known = self.suggested.get(kind)
            if known is not None:
                finding = replace(finding, since=known.since)
            stale = at - self._refreshed.get(kind, 0.0) >= REFRESH_EVIDENCE_S
            if known is None or (finding.evidence != known.evidence and stale):
                self._publish(at, finding, True)
                self._refreshed[kind] = at
            self.suggested[kind] = finding
        for kind in [k for k in self.suggested if k not in current]:
            self._publish(at, self.suggested.pop(kind), False)
            self._refreshed.pop(kind, None)

    def restore(self, waits: Iterable[tuple[str, float, float]],
                peaks: Iterable[tuple[str, float, float]],
                findings: Iterable[Finding]) -> None:  # fmt: skip
        """What the store kept from before a restart: the hourly waits by cause and peaks of
        the last day (so advice rests on the same evidence), and the findings still open:
        suggestions stand until the evidence no longer supports them (not raised twice);
        a bottleneck seen live is resolved, to be raised again if it is still there."""
        self.advisor.restore(waits, peaks)
        now = self.clock.time()
        for finding in findings:
            if finding.kind.startswith("upgrade_"):
                self.suggested[finding.kind] = finding
                self._refreshed[finding.kind] = now
            else:
                self._publish(now, replace(finding, evidence=(
                    *finding.evidence, "not seen since l3tui restarted")), False)

    def _reservation_changed(self, reservation: Reservation, change: str) -> None:
        self.bus.publish(to_event(reservation, change, self.clock.time(), "scheduler"))

    def _publish(self, at: float, finding: Finding, active: bool) -> None:
        self.bus.publish(ev.BottleneckChanged(
            at=at, finding=finding.kind, active=active, severity=finding.severity,
            summary=finding.summary, evidence=finding.evidence, suggestion=finding.suggestion,
        ))  # fmt: skip

    # ------------------------------------------------------------------ queries

    async def monitor(self) -> AsyncIterator[dict[str, Any]]:
        """Every new sample as it is taken (`monitorResources`)."""
        while True:
            await self._sampled.wait()
            yield self.latest

    def series(self, key: str, window_s: float) -> list[tuple[float, float]]:
        cutoff = self.clock.time() - window_s
        return [(s["at"], float(s[key])) for s in self.history
                if s["at"] >= cutoff and isinstance(s.get(key), int | float)]  # fmt: skip

    def findings(self) -> list[Finding]:
        """Active bottlenecks, then upgrade suggestions (each with its evidence)."""
        return [*self.detector.active.values(), *self.suggested.values()]


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None

