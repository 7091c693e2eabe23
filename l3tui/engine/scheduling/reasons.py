"""Why a queued task waits, in words: from the cause the scheduler parked it under (a pool,
the ledger, a hold, a time), else from what holds the whole queue (draining, concurrency,
measured load). Computed when asked, so it is never stale; it changes nothing.
"""

from __future__ import annotations

from collections.abc import Sized
from typing import Protocol

from l3tui.engine.clock import Clock
from l3tui.engine.scheduling.admission import LoadBlocker, LoadGate, TimeBlocker
from l3tui.engine.scheduling.queue_entry import Blocker, QueueEntry


class Explained(Protocol):
    """What of the scheduler a reason is read from."""

    @property
    def clock(self) -> Clock: ...
    @property
    def held(self) -> set[str | tuple[str, str]]: ...
    @property
    def timed(self) -> TimeBlocker: ...
    @property
    def main(self) -> Blocker: ...
    @property
    def draining(self) -> str: ...
    @property
    def running(self) -> Sized: ...
    @property
    def max_concurrent(self) -> int: ...
    @property
    def load(self) -> LoadBlocker: ...
    @property
    def gate(self) -> LoadGate: ...

    def is_held(self, entry: QueueEntry) -> bool: ...


def explain(s: Explained, entry: QueueEntry) -> str:
    now = s.clock.time()
    if s.held and s.is_held(entry):
        held_task = (entry.execution_id, entry.task_id) in s.held
        text = "held by operator" if held_task else "held: execution paused"
    else:
        home = entry._home
        found: str | None = None
        if home is s.timed and entry.not_before is not None:
            found = TimeBlocker.describe_entry(entry.not_before, now)
        elif home is not None and home is not s.main:
            found = home.blocking()
        text = found or _global_reason(s, entry)
    if entry.deadline is not None and now > entry.deadline:
        text += " (deadline passed)"
    return text


def _global_reason(s: Explained, entry: QueueEntry) -> str:
    if s.draining:
        return s.draining
    if len(s.running) >= s.max_concurrent:
        return f"concurrency {len(s.running)}/{s.max_concurrent}"
    if not entry.critical and s.load.holds():
        return s.gate.reason
    return entry.note or "queued"
