"""The `reserve` and `cancel_reservation` decisions inside a real Runtime (real store, real
processes): a reserve decision books as `l3tui reserve` does (the reservation, named after
the decision, holds a run back with its name in the run's reason, is in the store and the
audit trail under the decision's source); cancel_reservation by the decision's id frees it
and the run starts; the same id twice books once, also across a restart that came between
booking and marking the decision acted; `plan` says what a reserve would hold."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from l3tui.coordinator.decisions import canonical, digest, validate_decision
from l3tui.engine.api import ReservationRequest
from l3tui.store import coordination
from tests.conftest import L3TUI, write_config
from tests.coordinator.conftest import query, until

WORKFLOWS = """
workflows:
  build:
    name: build
    tasks:
      - {id: compile, action: say, resources: {pools: {flutter_build: 1}}}
"""
ACTIONS = """
actions:
  say: {command: [echo, built]}
"""
SCHEDULING = """
scheduling:
  pools: {flutter_build: 1}
  resource_limits: {max_concurrent_tasks: 4, max_cpu_usage: 100, max_memory_usage: 100,
                    cpu_cores: 4, memory_mb: 8192}
  execution: {grace_period: 1s, default_timeout: 60s}
"""


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    return write_config(tmp_path / "config", WORKFLOWS, ACTIONS, SCHEDULING)


def task_reason(rt: Any, execution_id: str) -> str:
    view = rt.execution(execution_id)
    return view.tasks[0].reason if view is not None else ""


async def test_a_reserve_decision_holds_a_run_back_until_cancel_reservation_ends_it(
    runtime_for: Callable[..., Any], config_dir: Path, state_dir: Path
) -> None:
    reserve = {"id": "d-50", "kind": "reserve", "pools": {"flutter_build": 1}, "cpu": 1,
               "memory": "1G", "duration": "1h", "reason": "release build", "source": "L2"}
    async with runtime_for(config_dir, coordinate="all") as rt:
        made = await rt.coordinator.submit(reserve, "test")
        assert made.status == "accepted" and made.applied, made.message
        assert made.message.startswith("reserved r-d-50: 1 cpu, 1.0 GB, pool flutter_build=1")
        [view] = rt.snapshot().reservations
        assert (view.id, view.state, view.reason) == ("r-d-50", "active", "release build")
        run = await rt.run_workflow("build")
        reason = await until(lambda: "r-d-50" in (r := task_reason(rt, run.execution_id)) and r)
        assert reason.startswith("pool flutter_build 1/1; reservation r-d-50 (release build) "
                                 "holds 1 slot(s) until ")
        again = await rt.coordinator.submit(reserve, "test")
        assert again.status == "duplicate"
        ended = await rt.coordinator.submit({"id": "d-51", "kind": "cancel_reservation",
                                             "reservation": "d-50", "source": "L2"}, "test")
        assert ended.applied, ended.message
        assert ended.message.startswith("cancelled reservation r-d-50 (release build)")
        assert await rt.wait(run.execution_id) == "succeeded"
        assert rt.snapshot().reservations == ()
        gone = await rt.coordinator.submit({"id": "d-52", "kind": "cancel_reservation",
                                            "reservation": "d-50"}, "test")  # fmt: skip
        assert gone.status == "accepted" and gone.applied is False
        assert "no reservation still to come or in force matches" in gone.message
    assert query(state_dir, "SELECT id, state FROM reservations") == [("r-d-50", "cancelled")]
    audit = query(state_dir, "SELECT actor, action, target, outcome FROM audit WHERE action "
                  "LIKE 'reservation.%' ORDER BY seq")  # fmt: skip
    assert audit[0] == ("L2 (decision d-50 via test)", "reservation.make", "r-d-50", "applied")
    assert ("L2 (decision d-51 via test)", "reservation.cancel", "r-d-50", "cancelled") in audit
    assert audit[-1] == ("decision (decision d-52 via test)", "reservation.cancel", "",
                         "refused")  # fmt: skip
    states = query(state_dir, "SELECT id, state, applied FROM decisions ORDER BY id")
    assert states == [("d-50", "acted", 1), ("d-51", "acted", 1), ("d-52", "acted", 0)]
    proc = await asyncio.create_subprocess_exec(
        L3TUI, "--state", str(state_dir), "events", "--type", "reservation.*", "--json",
        stdout=asyncio.subprocess.PIPE)  # fmt: skip
    async with asyncio.timeout(60):
        stdout, _ = await proc.communicate()
    assert proc.returncode == 0
    seen = [json.loads(line) for line in stdout.decode().splitlines()]
    assert [(e["type"], e["reservation_id"]) for e in seen] == [
        ("reservation.made", "r-d-50"), ("reservation.started", "r-d-50"),
        ("reservation.cancelled", "r-d-50")]


async def test_a_reserve_decision_booked_before_a_stop_is_not_booked_again(
    runtime_for: Callable[..., Any], config_dir: Path, state_dir: Path
) -> None:
    """A kill between the booking's commit and the decision's mark: the reservation named
    after it shows that it had acted. One recorded and not acted on books at the start."""

    def record(rt: Any, decision_id: str) -> coordination.DecisionRecord:
        decision = validate_decision({"id": decision_id, "kind": "reserve", "cpu": 1,
                                      "duration": "2h"})  # fmt: skip
        body = canonical(decision)
        return coordination.DecisionRecord(decision_id, "reserve", body, digest(body), "",
                                           "inbox:k.json", rt.clock.time() - 5, None)

    async with runtime_for(config_dir) as rt:
        booked = await rt.reserve(ReservationRequest(cpu=1, duration_s=7200),
                                  reservation_id="r-k-2")  # fmt: skip
        assert booked.applied, booked.message
        records = [record(rt, "k-2"), record(rt, "k-3")]
        await rt.store.transact(lambda conn: coordination.record_decisions(conn, records))
    async with runtime_for(config_dir, coordinate="all") as rt:
        assert sorted(r.id for r in rt.snapshot().reservations) == ["r-k-2", "r-k-3"]
    assert query(state_dir, "SELECT id FROM reservations ORDER BY id") == [("r-k-2",),
                                                                           ("r-k-3",)]
    rows = dict(query(state_dir, "SELECT id, message FROM decisions"))
    assert rows["k-2"] == "acted before l3tui stopped: reserved r-k-2"
    assert rows["k-3"].startswith("reserved r-k-3: 1 cpu")


async def test_plan_says_what_a_reserve_would_hold_or_why_it_is_refused(
    runtime_for: Callable[..., Any], config_dir: Path, state_dir: Path
) -> None:
    async with runtime_for(config_dir, coordinate="all") as rt:
        await rt.reserve(ReservationRequest(cpu=3, duration_s=3600, reason="held"))
        plans = await rt.coordinator.plan([
            {"id": "p-1", "kind": "reserve", "pools": {"flutter_build": 1}, "duration": "2h"},
            {"id": "p-2", "kind": "reserve", "cpu": 2, "start": "10m", "duration": "1h"},
            {"id": "p-3", "kind": "cancel_reservation", "reservation": "p-1"},
        ])  # fmt: skip
        assert rt.snapshot().reservations[0].reason == "held"
        assert len(rt.snapshot().reservations) == 1  # a plan books nothing
    assert [p["status"] for p in plans] == ["would act", "rejected", "would act"]
    assert plans[0]["message"].startswith("reserves pool flutter_build=1 from ")
    assert plans[0]["message"].endswith(" as r-p-1")
    assert "together they would hold 5 of 4 cpu" in plans[1]["message"]
    assert plans[2]["message"].startswith("ends reservation p-1")
