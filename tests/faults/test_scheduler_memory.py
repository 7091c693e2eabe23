"""A scheduler that passes many tasks through between two aging steps must not keep them.

The aging ladder keeps queued entries in one FIFO per boost level and drops the ones that
left (admitted, withdrawn) only at its heads, when a boost is due (every `aging.interval`,
a minute by default). A build machine's daemon passing thousands of tasks a minute kept
every one of them, and whatever each held, until then; with a steady queue in front the
heads never moved and the ladder grew without bound (~3 MB per 10,000-task run)."""

from __future__ import annotations

import gc

from l3tui.engine.clock import FakeClock
from l3tui.engine.scheduling.queue_entry import QueueEntry
from l3tui.engine.scheduling.scheduler import TaskScheduler
from tests.engine.scheduling.test_queue import Recorder, entry, settings

PASSED = 30_000


def live_entries() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if type(o) is QueueEntry)


def test_entries_that_left_the_queue_are_not_kept_until_the_next_aging_step():
    clock = FakeClock()  # never moves: no aging step is ever due
    sched = TaskScheduler(settings(resource_limits={"max_concurrent_tasks": 4}), clock)
    rec = Recorder()
    sched.submit(entry("stuck", 9, rec, pools={"build": 1}))  # holds the pool for the whole test
    sched.submit(entry("behind", 9, rec, pools={"build": 1}))  # a waiting head at every level
    before = live_entries()
    for n in range(PASSED):
        sched.submit(entry(f"t{n}", 5, rec))
        sched.release(rec.running.pop())
    rec.order.clear()
    kept = live_entries() - before
    assert kept < PASSED // 4, f"{kept} of {PASSED} entries that left the queue still held"
    # ... and the ones still queued keep their place and age as before
    assert [e.task_id for e in sched.aging.waiting()] == ["behind"]
    clock.advance(61)
    sched.pump()
    assert sched.queue()[0].boost == 1
