"""The reservation book and the scheduler around it, on a controllable clock: a reservation
checked against the machine and the others it overlaps, taking effect at its start and
lapsing at its end by the scheduler's own timer loop, pool slots and declared needs held
from tasks whose reasons name it, waits counted under `reservation`, cancelling."""

from __future__ import annotations

import asyncio

import pytest

from l3tui.config.schema import Scheduling
from l3tui.engine.clock import FakeClock
from l3tui.engine.resources.ledger import Ledger
from l3tui.engine.resources.reservations import Reservation, ReservationBook, ReservationError
from l3tui.engine.scheduling.queue_report import build_report
from l3tui.engine.scheduling.scheduler import QueueEntry, TaskScheduler
from l3tui.engine.scheduling.timing import keep_time

T0 = 1_700_000_000.0


def settings() -> Scheduling:
    return Scheduling.model_validate({"resource_limits": {"max_concurrent_tasks": 4},
                                      "pools": {"flutter_build": 1, "device": 2}})


def reservation(rid: str, start: float, end: float, *, cpu: float = 0.0, memory_mb: int = 0,
                pools: tuple[tuple[str, int], ...] = (), reason: str = "") -> Reservation:
    return Reservation(rid, cpu, memory_mb, pools, start, end, reason, "alice", T0)


def made(clock: FakeClock) -> tuple[TaskScheduler, ReservationBook, list[str]]:
    ledger = Ledger(4.0, 8000, clock.time)
    book = ReservationBook(ledger, clock.time)
    sched = TaskScheduler(settings(), clock, ledger, book)
    admitted: list[str] = []
    return sched, book, admitted


def entry(task_id: str, admitted: list[str], **kwargs) -> QueueEntry:
    return QueueEntry(execution_id="e1", task_id=task_id, workflow_id="wf", name=task_id,
                      priority=5, on_admit=lambda e: admitted.append(e.task_id), **kwargs)


def test_checks_refuse_the_past_the_impossible_and_overcommitting_overlaps():
    clock = FakeClock(T0)
    _, book, _ = made(clock)
    with pytest.raises(ReservationError, match="in the past"):
        book.check(reservation("r1", T0 - 7200, T0 - 3600, cpu=1))
    with pytest.raises(ReservationError, match=r"start at .* in the past"):
        book.check(reservation("r1", T0 - 3600, T0 + 3600, cpu=1))
    with pytest.raises(ReservationError, match=r"more than the 4 "):
        book.check(reservation("r1", T0, T0 + 60, cpu=64))
    with pytest.raises(ReservationError, match=r"more than the 7\.8 GB"):
        book.check(reservation("r1", T0, T0 + 60, memory_mb=9000))
    with pytest.raises(ReservationError, match="no pool 'nope'"):
        book.check(reservation("r1", T0, T0 + 60, pools=(("nope", 1),)))
    with pytest.raises(ReservationError, match="holds nothing"):
        book.check(reservation("r1", T0, T0 + 60))
    with pytest.raises(ReservationError, match="positive"):
        book.check(reservation("r1", T0, T0 + 60, cpu=-3))
    with pytest.raises(ReservationError, match="SLOTS >= 1"):
        book.check(reservation("r1", T0, T0 + 60, pools=(("device", 0),)))
    book.add(book.check(reservation("r1", T0 + 3600, T0 + 7200, cpu=3, reason="release")))
    # Overlapping r1 by half an hour: 3 + 2 cores at 01:00 is more than 4.
    with pytest.raises(ReservationError, match=r"overlaps reservation r1 \(release\).*5 of 4"):
        book.check(reservation("r2", T0 + 1800, T0 + 5400, cpu=2))
    # Starting as r1 ends, or fitting beside it, is fine.
    book.check(reservation("r3", T0 + 7200, T0 + 9000, cpu=4))
    book.check(reservation("r4", T0 + 1800, T0 + 5400, cpu=1))
    # A start a few seconds ago (typing time) is taken as now.
    assert book.check(reservation("r5", T0 - 10, T0 + 60, cpu=1)).starts_at == T0


async def test_a_pool_reservation_holds_tasks_back_naming_it_until_its_time_is_up():
    clock = FakeClock(T0)
    sched, book, admitted = made(clock)
    loop = asyncio.create_task(keep_time(sched, poll_s=5.0))
    try:
        book.add(book.check(reservation("r3f2a91", T0 + 60, T0 + 660,
                                        pools=(("flutter_build", 1),), reason="release build")))
        assert book.active == {}  # scheduled, not in force yet
        early = entry("early", admitted, pools={"flutter_build": 1})
        sched.submit(early)
        assert admitted == ["early"]  # before its start the pool is free
        sched.release(early)
        clock.advance(61)
        async with asyncio.timeout(3):
            while "r3f2a91" not in book.active:
                await asyncio.sleep(0.01)
        build = entry("build", admitted, pools={"flutter_build": 1})
        sched.submit(build)
        assert admitted == ["early"]
        assert build.reason.startswith("pool flutter_build 1/1; reservation r3f2a91 "
                                       "(release build) holds 1 slot(s) until ")
        report = build_report(sched)
        assert "the reservation ends" in report.causes[0].unblock
        clock.advance(600)  # its end: the timer loop lets it go, the task starts
        async with asyncio.timeout(3):
            while not build.admitted:
                await asyncio.sleep(0.01)
        assert book.active == {} and book.upcoming == {} and book.pool_reserved == {}
        assert sched.wait_totals["reservation"] == pytest.approx(600, abs=1)
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)


def test_declared_needs_that_only_a_reservation_keeps_out_name_it_and_cancel_frees_them():
    clock = FakeClock(T0)
    sched, book, admitted = made(clock)
    book.add(book.check(reservation("rabc123", T0, T0 + 3600, cpu=3, memory_mb=4096,
                                    reason="maintenance")))
    assert book.active and sched.ledger.cpu_free == 1.0
    big = entry("big", admitted, cpu=2.0)
    sched.submit(big)
    assert admitted == []
    assert big.reason.startswith("needs 2 cpu, 1 of 4 free; reservation rabc123 "
                                 "(maintenance) holds 3 cpu, 4.0 GB until ")
    small = entry("small", admitted, cpu=1.0)
    sched.submit(small)
    assert admitted == ["small"]  # what the reservation leaves is used
    cancelled = book.cancel("rab")  # a unique prefix will do
    assert cancelled.cancelled_at == T0 and cancelled.state(T0) == "cancelled"
    assert admitted == ["small", "big"]  # the ledger woke the waiting task at once
    with pytest.raises(ReservationError, match="no reservation still to come"):
        book.cancel("rabc123")


def test_changes_are_announced_once_and_a_recorded_start_is_not_announced_again():
    clock = FakeClock(T0)
    _, book, _ = made(clock)
    heard: list[tuple[str, str]] = []
    book.on_change(lambda r, what: heard.append((r.id, what)))
    book.add(reservation("r1", T0, T0 + 10, cpu=1))
    book.add(reservation("r2", T0 - 5, T0 + 20, cpu=1), started=True)  # loaded as active
    assert heard == [("r1", "started")]
    assert set(book.active) == {"r1", "r2"} and book.ledger.cpu_allocated == 2
    clock.advance(30)
    book.apply_due(clock.time())
    assert heard == [("r1", "started"), ("r1", "ended"), ("r2", "ended")]
    assert book.ledger.cpu_allocated == 0 and book.due_at == float("inf")


def test_a_reservation_or_expiry_added_while_tasks_run_is_applied_before_the_next_admission():
    """Release admits on its own while nothing is due. A reservation added since (starting
    later) or a ledger reservation that lapses must be applied before that admission: the
    book and the ledger say when they gain a time."""
    clock = FakeClock(T0)
    sched, book, admitted = made(clock)
    pooled = [entry(f"b{n}", admitted, pools={"flutter_build": 1}) for n in range(2)]
    for e in pooled:
        sched.submit(e)
    assert admitted == ["b0"]  # b1 waits for the only build slot
    book.add(reservation("r1", T0 + 10, T0 + 3600, pools=(("flutter_build", 1),)))
    clock.advance(11)
    sched.release(pooled[0])
    assert admitted == ["b0"]  # the reservation holds that slot now
    assert "reservation r1" in pooled[1].reason

    clock = FakeClock(T0)
    sched, book, admitted = made(clock)
    plain = [entry(f"p{n}", admitted) for n in range(4)]
    for e in plain:
        sched.submit(e)  # the four slots are taken
    sched.ledger.reserve("maint", 4.0, 0, 10.0)  # every core, for 10 s
    sized = entry("sized", admitted, cpu=1.0)
    sched.submit(sized)  # waits for a core
    sched.submit(entry("later", admitted))
    clock.advance(11)
    sched.release(plain[0])
    assert admitted[-1] == "sized"  # the lapsed reservation freed the cores first
