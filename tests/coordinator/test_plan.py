"""`l3tui plan`: what decisions would do, judged against history and the scheduler's own
admission rules, without recording or starting anything."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import L3TUI, descendants_by_marker, write_config
from tests.coordinator.conftest import ACTIONS, SCHEDULING, WORKFLOWS, query, until

POOLED = WORKFLOWS.replace("workflows:\n", """workflows:
  pooled:
    name: pooled
    priority: high
    tasks:
      - {id: hold, action: nap, parameters: {seconds: "1101.9"}, resources: {pools: {solo: 1}}}
""", 1)  # fmt: skip


def plan_cli(config: Path, state: Path, decisions: Any) -> tuple[int, Any]:
    done = subprocess.run([L3TUI, "--config", str(config), "--state", str(state), "plan", "-",
                           "--json"], input=json.dumps(decisions), capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip
    assert "Traceback" not in done.stderr
    return done.returncode, json.loads(done.stdout)


async def test_plan_without_a_daemon_uses_history_and_says_unknown_without_it(
    runtime_for: Callable[..., Any], tmp_path: Path, state_dir: Path
) -> None:
    config = write_config(tmp_path / "config", WORKFLOWS, ACTIONS, SCHEDULING)
    async with runtime_for(config) as rt:
        for _ in range(3):
            started = await rt.run_workflow("quick")
            await rt.wait(started.execution_id)
    durations = sorted(r[0] for r in query(state_dir, "SELECT duration_s FROM executions"))
    code, plans = plan_cli(config, state_dir, [
        {"id": "p-1", "kind": "run_workflow", "workflow": "quick", "priority": "high"},
        {"id": "p-2", "kind": "run_workflow", "workflow": "failing"},
        {"id": "p-3", "kind": "run_batch", "parallelism": 2,
         "tasks": [{"action": "say", "params": {"text": str(i)}} for i in range(5)]},
        {"id": "p-4", "kind": "run_task", "action": "say"},
    ])  # fmt: skip
    assert code == 1  # p-4 would be rejected: its action needs `text`
    quick, failing, batch, rejected = plans
    [execution] = quick["executions"]
    assert execution["expected_s"] == durations[1] and execution["history_runs"] == 3
    assert execution["priority"] == 8
    assert [t["task_id"] for t in execution["tasks"]] == ["one", "two"]
    assert execution["tasks"][1]["depends_on"] == ["one"]
    assert all(t["expected_s"] is not None for t in execution["tasks"])
    assert failing["executions"][0]["expected_s"] is None  # no history
    assert batch["executions"][0]["max_parallel"] == 2
    assert "3 of its 5 first tasks wait for a lane" in batch["executions"][0]["notes"][0]
    assert rejected["status"] == "rejected" and "needs parameter 'text'" in rejected["message"]
    assert query(state_dir, "SELECT count(*) FROM decisions") == [(0,)]  # nothing recorded


async def test_plan_is_judged_against_what_runs_now(
    runtime_for: Callable[..., Any], tmp_path: Path
) -> None:
    config = write_config(tmp_path / "config", POOLED, ACTIONS,
                          SCHEDULING + "  pools: {solo: 1}\n")  # fmt: skip
    async with runtime_for(config, coordinate="all") as rt:
        holding = await rt.run_workflow("pooled")
        await until(lambda: descendants_by_marker("sleep 1101.9"))
        waiting = await rt.run_workflow("pooled")  # queued behind the pool
        await until(lambda: rt.scheduler.queue_length() == 1)
        plans = await rt.coordinator.plan([
            {"id": "q-1", "kind": "run_workflow", "workflow": "pooled"},
            {"id": "q-2", "kind": "run_task", "action": "say", "params": {"text": "x"},
             "priority": "low"},
            {"id": "q-3", "kind": "run_task", "action": "say", "params": {"text": "x"},
             "priority": "critical"},
        ])  # fmt: skip
        assert [p["status"] for p in plans] == ["would act"] * 3
        assert plans[0]["executions"][0]["tasks"][0]["waits"] == "pool solo 1/1"
        assert plans[1]["executions"][0]["tasks"][0]["waits"] == (
            "behind 1 queued task(s) of the same or higher priority")
        assert plans[2]["executions"][0]["tasks"][0]["waits"] is None
        assert rt.scheduler.queue_length() == 1  # the plan queued nothing
        for started in (holding, waiting):
            await rt.cancel(started.execution_id)
