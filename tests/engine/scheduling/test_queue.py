"""The queue itself with a controllable clock: aging against a stream of high-priority
work, earliest deadline within a priority, not_before released by the scheduler's own
timer loop, reservations that lapse, and admission that never re-scans blocked tasks."""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque

import pytest

from l3tui.config.schema import Scheduling
from l3tui.engine.clock import FakeClock
from l3tui.engine.resources.ledger import Ledger, LedgerError
from l3tui.engine.scheduling.scheduler import QueueEntry, TaskScheduler
from l3tui.engine.scheduling.timing import keep_time


def settings(**overrides) -> Scheduling:
    data = {"resource_limits": {"max_concurrent_tasks": 1}, "pools": {"build": 1}}
    data.update(overrides)
    return Scheduling.model_validate(data)


class Recorder:
    """on_admit target: remembers admission order, keeps admitted entries to release."""

    def __init__(self) -> None:
        self.order: list[str] = []
        self.running: deque[QueueEntry] = deque()

    def __call__(self, entry: QueueEntry) -> None:
        self.order.append(entry.task_id)
        self.running.append(entry)


def entry(task_id: str, priority: int, on_admit, **kwargs) -> QueueEntry:
    return QueueEntry(execution_id=kwargs.pop("execution_id", "e1"), task_id=task_id,
                      workflow_id="wf", name=task_id, priority=priority, on_admit=on_admit,
                      **kwargs)


def test_aging_lets_a_background_task_run_under_a_stream_of_high_work():
    def starved_steps(aging: dict) -> int | None:
        clock = FakeClock()
        rec = Recorder()
        sched = TaskScheduler(settings(aging=aging), clock)
        sched.submit(entry("busy", 8, rec))  # holds the only slot
        sched.submit(entry("background", 1, rec))
        for step in range(60):
            sched.submit(entry(f"high{step}", 8, rec))  # a new high task every 10 s
            clock.advance(10)
            sched.release(rec.running.popleft())
            if "background" in rec.order:
                return step
        return None

    assert starved_steps({"interval": "60s", "step": 0}) is None  # no aging: starves
    step = starved_steps({"interval": "60s", "step": 1, "max_boost": 9})
    # Each high task waits under a minute (boost 0). After 7 minutes the background task
    # has 1 + 7 = 8 and, being older, wins the tie: at the release after 420 s (step 41).
    assert step == 41


def test_aging_boost_is_capped_and_shown_as_effective_priority():
    clock = FakeClock()
    rec = Recorder()
    sched = TaskScheduler(settings(aging={"interval": "10s", "step": 2, "max_boost": 5}), clock)
    sched.submit(entry("busy", 5, rec))
    waiting = entry("w", 3, rec)
    sched.submit(waiting)
    clock.advance(25)
    sched.release(rec.running.popleft())  # pumping applies due aging steps first
    assert waiting.admitted and waiting.boost == 4
    sched.release(rec.running.popleft())
    sched.submit(entry("busy2", 9, rec))
    late = entry("late", 3, rec)
    sched.submit(late)
    clock.advance(600)
    sched.apply_due(clock.monotonic(), clock.time())
    assert late.boost == 5 and late.effective_priority == 8


def test_equal_priority_runs_earliest_deadline_first_then_arrival():
    clock = FakeClock()
    rec = Recorder()
    sched = TaskScheduler(settings(), clock)
    sched.submit(entry("busy", 5, rec))
    now = clock.time()
    sched.submit(entry("no_deadline", 5, rec))
    sched.submit(entry("late_deadline", 5, rec, deadline=now + 600))
    sched.submit(entry("soon_deadline", 5, rec, deadline=now + 60))
    sched.submit(entry("first_plain", 5, rec))
    assert [e.task_id for e in sched.queue()] == [
        "soon_deadline", "late_deadline", "no_deadline", "first_plain"]
    while rec.running:
        sched.release(rec.running.popleft())
    assert rec.order == ["busy", "soon_deadline", "late_deadline", "no_deadline", "first_plain"]


def test_overdue_entry_says_its_deadline_passed():
    clock = FakeClock()
    rec = Recorder()
    sched = TaskScheduler(settings(), clock)
    sched.submit(entry("busy", 5, rec))
    late = entry("late", 5, rec, deadline=clock.time() + 5)
    sched.submit(late)
    clock.advance(10)
    assert late.reason == "concurrency 1/1 (deadline passed)"


async def test_not_before_is_admitted_by_the_timer_loop_when_its_time_comes():
    clock = FakeClock(start=1_800_000_000.0)
    rec = Recorder()
    sched = TaskScheduler(settings(resource_limits={"max_concurrent_tasks": 4}), clock)
    loop = asyncio.create_task(keep_time(sched, poll_s=5.0))
    try:
        later = entry("later", 5, rec, not_before=clock.time() + 3600)
        sched.submit(later)
        sched.submit(entry("now", 5, rec))
        assert rec.order == ["now"]
        expected = time.strftime("%H:%M", time.localtime(clock.time() + 3600))
        assert later.reason == f"not before {expected}"
        clock.advance(3599)
        await asyncio.sleep(0.05)
        assert not later.admitted
        clock.advance(1)
        async with asyncio.timeout(30):
            while not later.admitted:
                await asyncio.sleep(0.01)
        assert rec.order == ["now", "later"]
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)


async def test_a_lapsed_reservation_admits_the_task_that_waited_for_it():
    clock = FakeClock()
    rec = Recorder()
    ledger = Ledger(4.0, 8000, clock.time)
    sched = TaskScheduler(settings(resource_limits={"max_concurrent_tasks": 4}), clock, ledger)
    loop = asyncio.create_task(keep_time(sched, poll_s=5.0))
    try:
        ledger.reserve("maintenance", 3.0, 0, duration_s=600, owner="nightly window")
        big = entry("big", 5, rec, cpu=2.0)
        sched.submit(big)
        assert big.reason == "needs 2 cpu, 1 of 4 free"
        with pytest.raises(LedgerError, match="cannot reserve"):
            ledger.reserve("another", 2.0, 0, duration_s=60)
        clock.advance(601)
        async with asyncio.timeout(30):
            while not big.admitted:
                await asyncio.sleep(0.01)
        assert "maintenance" not in ledger.allocations
        sched.release(big)
        sched.release(big)  # twice is harmless
        assert ledger.allocations == {} and ledger.cpu_allocated == 0
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)


def test_withdrawing_a_task_that_stood_for_its_pool_passes_the_turn_on():
    clock = FakeClock()
    rec = Recorder()
    sched = TaskScheduler(settings(resource_limits={"max_concurrent_tasks": 4}), clock)
    first = entry("b1", 5, rec, pools={"build": 1})
    sched.submit(first)
    waiting = [entry(f"b{i}", 5, rec, pools={"build": 1}) for i in (2, 3)]
    for e in waiting:
        sched.submit(e)
    assert [e.reason for e in waiting] == ["pool build 1/1"] * 2
    sched.hold(("e1", "b2"))  # b2 will be the pool's delegate, then be held
    sched.release(first)
    assert rec.order == ["b1", "b3"]
    assert waiting[0].reason == "held by operator"
    sched.release(rec.running.pop())
    assert sched.withdraw(waiting[0]) and not sched.withdraw(waiting[0])
    sched.unhold(("e1", "b2"))
    assert sched.queue_length() == 0 and sched.pool_used == {"build": 0}


def test_100k_queued_tasks_flow_without_rescanning_blocked_ones():
    clock = FakeClock()
    rec = Recorder()
    sched = TaskScheduler(settings(resource_limits={"max_concurrent_tasks": 8},
                                   pools={"build": 2, "device": 1}), clock)
    rng = random.Random(7)
    pooled = 0
    for i in range(100_000):
        roll = rng.random()
        pools = {"build": 1} if roll < 0.1 else {"device": 1} if roll < 0.2 else {}
        pooled += bool(pools)
        sched.submit(entry(f"t{i}", rng.choice([1, 3, 5, 8, 10]), rec, pools=pools,
                           execution_id=f"e{i % 500}"))
    peak = {"build": 0, "device": 0}
    while rec.running:
        sched.release(rec.running.popleft())
        for pool in peak:
            peak[pool] = max(peak[pool], sched.pool_used.get(pool, 0))
    assert sched.admitted_total == 100_000 and sched.queue_length() == 0
    assert peak == {"build": 2, "device": 1}
    # Each pooled task is set aside about once; a re-scan per release would be ~n^2/2.
    assert sched.parked_total <= 2 * pooled


def test_release_of_an_unknown_or_queued_entry_changes_nothing():
    clock = FakeClock()
    rec = Recorder()
    sched = TaskScheduler(settings(), clock)
    sched.submit(entry("busy", 5, rec))
    queued = entry("q", 5, rec)
    sched.submit(queued)
    version = sched.version
    sched.release(queued)
    assert sched.version == version and len(sched.running) == 1 and not queued.admitted


def test_reloaded_limits_admit_what_now_fits():
    clock = FakeClock()
    rec = Recorder()
    sched = TaskScheduler(settings(resource_limits={"max_concurrent_tasks": 2}), clock)
    for i in range(3):
        sched.submit(entry(f"b{i}", 5, rec, pools={"build": 1}))
    sched.submit(entry("plain", 5, rec))
    assert rec.order == ["b0", "plain"]
    assert sched.entry_for("e1", "b1").reason == "pool build 1/1"
    sched.configure(settings(resource_limits={"max_concurrent_tasks": 10}, pools={"build": 3}))
    assert sorted(rec.order) == ["b0", "b1", "b2", "plain"]
    assert sched.pool_used == {"build": 3}


def test_a_note_given_to_one_plain_entry_is_not_given_to_every_other():
    """Entries that ask for nothing share one `Needs`: changing one's note must copy it."""
    rec = Recorder()
    first, second = entry("a", 5, rec), entry("b", 5, rec)
    first.reason = "waiting for the lab"
    assert first.note == "waiting for the lab"
    assert second.note == "" and entry("c", 5, rec).note == ""
    assert second.pools == {} and second.cpu == 0.0 and second.deadline is None


def test_a_limited_queue_is_the_head_of_the_whole_queue_in_dispatch_order():
    clock = FakeClock()
    rec = Recorder()
    sched = TaskScheduler(settings(), clock)
    sched.submit(entry("busy", 10, rec))  # holds the only slot: the rest wait
    rng = random.Random(7)
    for n in range(500):
        deadline = clock.time() + rng.randrange(1000) if rng.random() < 0.3 else None
        sched.submit(entry(f"t{n}", rng.choice([1, 3, 5, 8, 10]), rec, deadline=deadline))
    whole = sched.queue()
    assert len(whole) == 500
    assert [e.task_id for e in sched.queue(limit=30)] == [e.task_id for e in whole[:30]]
    assert [e.task_id for e in sched.queue(limit=400)] == [e.task_id for e in whole[:400]]
    eights = sched.queue(priority=8, limit=5)
    assert [e.task_id for e in eights] == [e.task_id for e in whole if e.priority == 8][:5]
    assert all(e.enqueued_at == pytest.approx(clock.time()) for e in whole)


def test_the_queue_pane_slices_deep_rows_beyond_the_ordered_head():
    """queue_slice orders only the head it needs: a slice past that head (a pane scrolled
    down) and a slice after the queue changed are still the whole queue's rows."""
    from l3tui.runtime.views import RuntimeViews

    clock = FakeClock()
    rec = Recorder()
    sched = TaskScheduler(settings(), clock)
    sched.submit(entry("busy", 10, rec))
    for n in range(2000):
        sched.submit(entry(f"t{n}", (1, 3, 5, 8, 10)[n % 5], rec))
    views = RuntimeViews(None, sched, None, None, None, None, clock)  # type: ignore[arg-type]
    ids = [e.task_id for e in sched.queue()]
    assert [q.task_id for q in views.queue_slice(0, 30)] == ids[:30]
    assert [q.task_id for q in views.queue_slice(1500, 30)] == ids[1500:1530]
    assert [q.task_id for q in views.queue_slice(1990, 30)] == ids[1990:]
    sched.submit(entry("late", 10, rec))  # the queue changed: the cached head is stale
    assert views.queue_slice(0, 1)[0].task_id == sched.queue(limit=1)[0].task_id
    assert views.queue_slice(0, 1)[0].since == pytest.approx(clock.time())


def test_a_lifted_hold_sends_its_bare_entries_back_in_dispatch_order():
    """Held entries wait bare (no heap item); lifting the hold orders them as if they had
    never left the queue, and one withdrawn and queued again meanwhile is not doubled."""
    clock = FakeClock()
    rec = Recorder()
    sched = TaskScheduler(settings(), clock)
    sched.hold("e1")
    entries = [entry(f"t{n}", (1, 8, 5, 8, 3)[n % 5], rec) for n in range(10)]
    for e in entries:
        sched.submit(e)
    assert rec.order == [] and {e.reason for e in entries} == {"held: execution paused"}
    assert sched.withdraw(entries[3])
    sched.submit(entries[3])  # the same entry, queued again while the hold stands
    expected = [e.task_id for e in sched.queue()]
    assert sorted(expected) == sorted(e.task_id for e in entries)
    sched.unhold("e1")
    while rec.running:
        sched.release(rec.running.popleft())
    assert rec.order == expected
    assert rec.order[:2] == ["t1", "t6"] and rec.order.index("t3") > rec.order.index("t8")


def test_equal_entries_keep_arrival_order_on_a_clock_that_does_not_move():
    """FIFO among equals rests on arrival time; a clock that reads the same twice must not
    make two arrivals tie."""
    clock = FakeClock()
    rec = Recorder()
    sched = TaskScheduler(settings(aging={"step": 0}), clock)
    sched.submit(entry("busy", 5, rec))
    names = [f"t{n}" for n in range(50)]
    for name in names:
        sched.submit(entry(name, 5, rec))
    assert len({e.enqueued_mono for e in sched.queue()}) == 50
    while rec.running:
        sched.release(rec.running.popleft())
    assert rec.order == ["busy", *names]


def test_views_forget_admitted_entries_while_the_index_prunes_lazily():
    """Admission leaves the index alone; every view still shows only what waits, and the
    index forgets admitted entries once they outnumber the queue."""
    clock = FakeClock()
    rec = Recorder()
    sched = TaskScheduler(settings(resource_limits={"max_concurrent_tasks": 4}), clock)
    for n in range(6000):
        sched.submit(entry(f"t{n}", 5, rec, execution_id=f"e{n % 7}"))
        clock.advance(0.001)
    for _ in range(5000):
        sched.release(rec.running.popleft())
    assert sched.queue_length() == len(sched.queue()) == 996
    assert sched.entry_for("e0", "t0") is None and sched.entry_for(f"e{5999 % 7}", "t5999") is not None
    oldest = sched.waiting_longer_than(0.0, cap=3)
    assert [e.task_id for e in oldest] == [e.task_id for e in sched.queue()][:3]
    for n in range(6000, 12000):  # more arrivals: the index prunes what left the queue
        sched.submit(entry(f"t{n}", 5, rec, execution_id=f"e{n % 7}"))
    held = sum(len(tasks) for tasks in sched.index.by_execution.values())
    assert held <= 2 * sched.queue_length() + 4096
    assert sched.queue_length() == len(sched.queue()) == 6996
    while rec.running:  # the queue drains: the timer loop's sweep forgets what left it
        sched.release(rec.running.popleft())
    sched.sweep()
    assert sched.queue_length() == 0 and sched.index.by_execution == {}


def test_a_release_that_frees_the_ledger_does_not_admit_past_the_concurrency_limit():
    """The ledger's own `on_freed` admits during a release; the release must not then
    admit one more into the same slot."""
    clock = FakeClock()
    rec = Recorder()
    ledger = Ledger(4.0, 8000, clock.time)
    sched = TaskScheduler(settings(resource_limits={"max_concurrent_tasks": 2}), clock, ledger)
    big = [entry(f"big{n}", 8, rec, cpu=3.0) for n in range(3)]
    for e in big:
        sched.submit(e)
    for n in range(5):
        sched.submit(entry(f"plain{n}", 5, rec))
    while rec.running:
        sched.release(rec.running.popleft())
        assert len(sched.running) <= 2
    assert sched.admitted_total == 8 and ledger.allocations == {}


def test_a_queued_task_that_waits_costs_little_memory():
    """100,000 queued tasks must fit a console: an entry waiting under a hold (the
    heaviest case is a queue that cannot move) costs its object, its arrival time and a
    place in its execution's index, well under the 594 bytes it once took."""
    import tracemalloc

    clock = FakeClock()
    rec = Recorder()
    sched = TaskScheduler(settings(), clock)
    task_ids = [f"task_{n:02d}" for n in range(100)]
    exec_ids = [f"x{n}" for n in range(200)]  # shared, as a real execution's ids are
    for exec_id in exec_ids:
        sched.hold(exec_id)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for n in range(20_000):
            sched.submit(QueueEntry(execution_id=exec_ids[n // 100], task_id=task_ids[n % 100],
                                    workflow_id="wf", name="n", priority=5, on_admit=rec))
            clock.advance(0.0001)
        per_entry = (tracemalloc.get_traced_memory()[0] - before) / 20_000
    finally:
        tracemalloc.stop()
    assert sched.queue_length() == 20_000
    assert per_entry < 260, per_entry


def test_the_queue_head_read_off_the_heaps_is_the_head_of_the_sorted_queue():
    """`queue(limit=...)` walks the heaps' tops instead of sorting every entry: whatever the
    entries wait under (the main heap, a cause's delegate, a pool, max_parallel, a hold, a
    not_before, aging boosts, withdrawals), it lists exactly what the full sort lists."""
    clock = FakeClock()
    rec = Recorder()
    sched = TaskScheduler(settings(resource_limits={"max_concurrent_tasks": 3},
                                   pools={"build": 1, "device": 2},
                                   aging={"interval": "10s", "step": 1, "max_boost": 3}),
                          clock)  # fmt: skip
    rng = random.Random(15)
    queued: list[QueueEntry] = []

    def same_head() -> None:
        whole = [e.task_id for e in sched.queue()]
        assert len(whole) == sched.queue_length()
        for k in (1, 2, 7, 50, len(whole) + 5):
            assert [e.task_id for e in sched.queue(limit=k)] == whole[:k]

    sched.hold("e3")
    sched.hold(("e1", "t5"))
    for step in range(12):
        for n in range(60):
            task_id = f"t{step * 60 + n}" if step or n != 5 else "t5"
            roll = rng.random()
            kwargs: dict = {"execution_id": f"e{rng.randrange(5)}"}
            if roll < 0.2:
                kwargs["pools"] = {rng.choice(["build", "device"]): 1}
            elif roll < 0.3:
                kwargs["not_before"] = clock.time() + rng.randrange(1, 40)
            elif roll < 0.4:
                kwargs["group_limit"] = 1
            if rng.random() < 0.3:
                kwargs["deadline"] = clock.time() + rng.randrange(1000)
            if task_id == "t5":
                kwargs["execution_id"] = "e1"
            new = entry(task_id, rng.choice([1, 3, 5, 8, 10]), rec, **kwargs)
            sched.submit(new)
            queued.append(new)
        same_head()
        for victim in rng.sample(queued, 10):
            sched.withdraw(victim)
        clock.advance(7)  # aging steps and not_before times come
        sched.pump()
        for _ in range(rng.randrange(4)):
            if rec.running:
                sched.release(rec.running.popleft())
        same_head()
        if step == 6:
            sched.unhold("e3")
    assert sched.parked_total > 0 and any(e.boost for e in sched.queue())
    # Thousands withdrawn on top of the heap: the walk gives up, the full sort answers.
    top = [entry(f"top{n}", 50, rec, execution_id="e9") for n in range(6000)]
    for e in top:
        sched.submit(e)
    for e in top:
        sched.withdraw(e)
    assert sched.heads(5) is None
    same_head()
