"""The starvation guard: a queued task's effective priority rises by `step` for every
`interval` it waits, up to `max_boost`, so background work is not postponed forever.

Every entry ages at the same rate, so entries sit in one FIFO per boost level and only the
heads are ever looked at: O(1) per submit, O(1) per boost. This module changes boosts and
asks the scheduler to re-key; it knows nothing else about admission.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from l3tui.engine.scheduling.queue_entry import waiting

if TYPE_CHECKING:
    from l3tui.engine.scheduling.queue_entry import QueueEntry

INF = math.inf


class AgingLadder:
    """Boost levels 0..n-1, each a FIFO in arrival order."""

    def __init__(self, interval_s: float, step: int, max_boost: int,
                 rekey: Callable[[QueueEntry], None]) -> None:  # fmt: skip
        self.interval = interval_s
        self.step = step
        self.max_boost = max_boost
        self._rekey = rekey
        count = math.ceil(max_boost / step) if step and max_boost else 0
        self.levels: list[deque[QueueEntry]] = [deque() for _ in range(count)]
        self.due = INF
        """Monotonic time of the next boost (inf when none is pending)."""

    def add(self, entry: QueueEntry) -> None:
        """A newly queued entry (boost 0)."""
        if not self.levels:
            return
        level0 = self.levels[0]
        if not level0:
            self.due = min(self.due, entry.enqueued_mono + self.interval)
        level0.append(entry)

    def held(self) -> int:
        """Entries the levels hold, the ones that left the queue included."""
        return sum(len(level) for level in self.levels)

    def prune(self) -> None:
        """Drop, in one pass, the entries that left the queue (admitted, withdrawn). `apply`
        drops them only at the heads, when a boost is due: between two boosts (a minute by
        default) a busy machine passes thousands of tasks through, and a long-waiting head
        kept every one behind it. In place: the scheduler appends to level 0 directly."""
        for level in self.levels:
            kept = [e for e in level if waiting(e)]
            if len(kept) != len(level):
                level.clear()
                level.extend(kept)

    def waiting(self) -> list[QueueEntry]:
        return [e for level in self.levels for e in level if waiting(e)]

    def restart(self, entries: list[QueueEntry]) -> None:
        """Take over entries from a previous ladder (config reload); boosts are recomputed
        from their waiting time at the next `apply`."""
        if not self.levels or not entries:
            return
        self.levels[0].extend(sorted(entries, key=lambda e: e.enqueued_mono))
        self.due = 0.0

    def apply(self, mono: float) -> bool:
        """Boost every entry whose next step is due; True if any changed."""
        levels, interval = self.levels, self.interval
        top = len(levels)
        due = INF
        changed = False
        # Highest level first: entries that jump several levels at once then land behind
        # older ones, so every level stays in arrival order.
        for k in range(top - 1, -1, -1):
            level = levels[k]
            while level:
                entry = level[0]
                if not waiting(entry):
                    level.popleft()
                    continue
                steps = int((mono - entry.enqueued_mono) / interval)
                if steps <= k:
                    due = min(due, entry.enqueued_mono + (k + 1) * interval)
                    break
                level.popleft()
                target = min(steps, top)
                boost = min(target * self.step, self.max_boost)
                if boost != entry.boost:
                    entry.boost = boost
                    changed = True
                    self._rekey(entry)
                if target < top:
                    levels[target].append(entry)
                    due = min(due, entry.enqueued_mono + (target + 1) * interval)
        self.due = due
        return changed
