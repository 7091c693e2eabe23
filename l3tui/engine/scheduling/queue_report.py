"""The `optimizeSchedule` equivalent: what is blocking the queue, grouped by cause, and what
would unblock each cause, with the resource findings beside it.

Built on demand from the scheduler's parked entries (O(queued)); it changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from l3tui.engine.resources.bottlenecks import Finding
from l3tui.engine.scheduling.admission import PoolBlocker
from l3tui.engine.scheduling.queue_entry import Blocker, QueueEntry
from l3tui.engine.scheduling.scheduler import TaskScheduler


@dataclass(frozen=True, slots=True)
class CauseReport:
    cause: str
    """The reason text the waiting tasks show, e.g. `pool flutter_build 1/1`."""
    category: str
    waiting: int
    oldest_wait_s: float
    examples: tuple[str, ...]
    """The first few tasks (workflow/task) in dispatch order."""
    unblock: str
    """What would let them start."""


@dataclass(frozen=True, slots=True)
class QueueReport:
    at: float
    queued: int
    running: int
    max_concurrent: int
    causes: tuple[CauseReport, ...]
    findings: tuple[Finding, ...] = ()

    def lines(self) -> list[str]:
        """The report as text for people (CLI, details pane)."""
        out = [f"{self.queued} queued, {self.running}/{self.max_concurrent} running"]
        if not self.causes:
            out.append("nothing is blocked")
        for cause in self.causes:
            out.append(f"- {cause.waiting} waiting on {cause.cause} "
                       f"(oldest {cause.oldest_wait_s:.0f} s; e.g. "
                       f"{', '.join(cause.examples)})")  # fmt: skip
            out.append(f"  unblocks when: {cause.unblock}")
        for finding in self.findings:
            out.append(f"! {finding.summary}: {'; '.join(finding.evidence)}")
            if finding.suggestion:
                out.append(f"  suggestion: {finding.suggestion}")
        return out


def blockers(scheduler: TaskScheduler) -> list[tuple[Blocker, list[QueueEntry]]]:
    """Every cause with the entries parked under it (live ones, best first)."""
    out: list[tuple[Blocker, list[QueueEntry]]] = []
    for blocker in [scheduler.main, *scheduler.causes.all(), scheduler.load, scheduler.timed]:
        entries = blocker.parked()
        if entries:
            out.append((blocker, entries))
    return out


def build_report(scheduler: TaskScheduler, findings: Sequence[Finding] = ()) -> QueueReport:
    now_mono = scheduler.clock.monotonic()
    causes: list[CauseReport] = []
    running = sorted(scheduler.running, key=lambda e: e.enqueued_mono)
    for blocker, entries in blockers(scheduler):
        by_reason: dict[str, list[QueueEntry]] = {}
        for entry in entries:
            by_reason.setdefault(entry.reason, []).append(entry)
        for reason, group in by_reason.items():
            if blocker.key == ("main",):
                hint = _main_hint(scheduler, running, reason)
            elif isinstance(blocker, PoolBlocker):
                holders = [e for e in running if blocker.name in e.pools]
                hint = blocker.unblock_hint() + _holding(holders)
            else:
                hint = blocker.unblock_hint()
            causes.append(CauseReport(
                cause=reason, category=blocker.category, waiting=len(group),
                oldest_wait_s=max(now_mono - e.enqueued_mono for e in group),
                examples=tuple(f"{e.workflow_id}/{e.task_id}" for e in group[:3]), unblock=hint,
            ))  # fmt: skip
    causes.sort(key=lambda c: -c.waiting)
    return QueueReport(scheduler.clock.time(), scheduler.queue_length(), len(scheduler.running),
                       scheduler.max_concurrent, tuple(causes), tuple(findings))  # fmt: skip


def _main_hint(scheduler: TaskScheduler, running: list[QueueEntry], reason: str) -> str:
    if reason.startswith("concurrency"):
        return ("a running task ends" + _holding(running)
                + f" (or raise resource_limits.max_concurrent_tasks, now "
                f"{scheduler.max_concurrent})")  # fmt: skip
    if reason.startswith("held"):
        return "the operator resumes it"
    return "the next admission pass (nothing holds these back)"


def _holding(entries: list[QueueEntry]) -> str:
    if not entries:
        return ""
    names = ", ".join(f"{e.workflow_id}/{e.task_id}" for e in entries[:3])
    more = f" and {len(entries) - 3} more" if len(entries) > 3 else ""
    return f"; held by {names}{more}"
