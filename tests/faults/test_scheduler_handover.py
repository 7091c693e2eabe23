"""An owner whose on_admit raises (a bug in the engine or an embedding program) must not leak
the slot it was given, on either way an entry is admitted: by the pump (a submit into free
room) and by the release fast path (the freed slot handed to the best waiting entry)."""

from __future__ import annotations

from l3tui.engine.clock import FakeClock
from l3tui.engine.scheduling.scheduler import TaskScheduler
from tests.engine.scheduling.test_queue import Recorder, entry, settings


def broken(_entry) -> None:
    raise RuntimeError("owner bug")


def test_an_owner_that_raises_on_admission_gives_its_slot_back(caplog):
    rec = Recorder()
    sched = TaskScheduler(settings(), FakeClock())  # one slot
    sched.submit(entry("first", 5, broken))  # admitted by the pump: raises
    assert not sched.running
    sched.submit(entry("holder", 5, rec))
    assert rec.order == ["holder"]  # the slot was free again
    sched.submit(entry("second", 5, broken))  # waits for the only slot
    sched.submit(entry("after", 1, rec))
    sched.release(rec.running.popleft())  # fast path: "second" takes the slot and raises
    assert rec.order == ["holder", "after"]  # ... and gives it back to the next one
    assert [e.task_id for e in sched.running] == ["after"]
    assert caplog.text.count("on_admit of e1/") == 2
