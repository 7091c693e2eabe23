"""No leaked slots: 1,000 tasks with declared cpu / memory / pools through the real engine,
ending every way a task can end (success, failure and retry, timeout, a command that does
not exist, parameters that do not resolve, cancelled task, cancelled execution). Afterwards
the ledger, the pools and the concurrency count are exactly empty."""

from __future__ import annotations

import asyncio
import random

import pytest

from l3tui.engine import events as ev
from tests.engine.scheduling.test_scheduler import FakeSampler

ACTIONS = """
actions:
  quick: {command: [sh, -c, 'exit 0']}
  fail: {command: [sh, -c, 'exit 3']}
  hang: {command: [sleep, "30"]}
  missing: {command: [/nonexistent/l3tui-test-no-such-command]}
"""
CPU, MEMORY = 4, 4000
SCHEDULING = f"""
scheduling:
  resource_limits: {{max_concurrent_tasks: 8, cpu_cores: {CPU}, memory_mb: {MEMORY}}}
  pools: {{gpu: 2, device: 1}}
  execution: {{grace_period: 1s, default_timeout: 60s}}
  sampler: {{interval: 60s}}
"""


def workflows(rng: random.Random, count: int, size: int) -> str:
    lines = ["workflows:"]
    kinds = ["noop"] * 58 + ["quick"] * 15 + ["fail"] * 12 + ["hang"] * 5 + \
        ["missing"] * 5 + ["badparam"] * 5
    for w in range(count):
        lines += [f"  wf{w}:", f"    name: wf{w}", "    tasks:"]
        for t in range(size):
            kind = rng.choice(kinds)
            action = "noop" if kind == "badparam" else kind
            parts = [f"id: t{t}", f"action: {action}"]
            if kind == "badparam":
                parts.append('parameters: {x: "${env.L3TUI_TEST_SURELY_UNSET}"}')
            if kind == "fail":
                parts += ["retries: 1", "retry_delay: 0"]
            if kind == "hang":
                parts.append("timeout: 150ms")
            needs = []
            if rng.random() < 0.6:
                needs.append(f"cpu: {rng.choice([0.5, 1, 2])}")
            if rng.random() < 0.6:
                needs.append(f"memory_mb: {rng.choice([100, 500, 1500])}")
            if rng.random() < 0.3:
                needs.append(f"pools: {{{rng.choice(['gpu', 'device'])}: 1}}")
            if needs:
                parts.append(f"resources: {{{', '.join(needs)}}}")
            if t and rng.random() < 0.1:
                parts.append(f"dependencies: [t{rng.randrange(t)}]")
            lines.append(f"      - {{{', '.join(parts)}}}")
    return "\n".join(lines) + "\n"


@pytest.mark.slow
async def test_no_slot_leaks_after_1000_tasks_with_random_failures_timeouts_and_cancels(
        make_config, runtime_for):
    rng = random.Random(20261025)
    config = make_config(workflows(rng, 20, 50), actions=ACTIONS, scheduling=SCHEDULING)
    async with runtime_for(config, sampler=FakeSampler()) as rt:
        ledger, sched = rt.resources.ledger, rt.scheduler
        over_commit: list[str] = []

        def check(event: ev.Event) -> None:
            if isinstance(event, ev.TaskStarted):
                if ledger.cpu_allocated > CPU + 1e-9 or ledger.memory_allocated_mb > MEMORY:
                    over_commit.append(f"ledger {ledger.cpu_allocated}/{ledger.memory_allocated_mb}")
                if sched.pool_used.get("gpu", 0) > 2 or sched.pool_used.get("device", 0) > 1:
                    over_commit.append(f"pools {sched.pool_used}")
                if len(sched.running) > 8:
                    over_commit.append(f"running {len(sched.running)}")

        rt.bus.add_listener(check)
        sub = rt.subscribe("ends", maxsize=100_000)
        ids = [(await rt.run_workflow(f"wf{w}")).execution_id for w in range(20)]

        async def saboteur() -> None:
            doomed = rng.sample(ids, 5)
            for step in range(40):
                await asyncio.sleep(0.05)
                if step % 8 == 0 and doomed:
                    await rt.cancel(doomed.pop())
                    continue
                running = [e for e in list(sched.running) if e.execution_id not in doomed]
                if running:
                    victim = rng.choice(running)
                    await rt.cancel(victim.execution_id, victim.task_id)

        await asyncio.wait_for(saboteur(), 30)
        async with asyncio.timeout(90):
            for exec_id in ids:
                await rt.wait(exec_id)

        ends = [e for e in sub.drain() if isinstance(e, ev.TaskFinished)]
        assert len(ends) == 1000
        outcomes = {e.state for e in ends}
        assert {"succeeded", "failed", "timed_out", "cancelled", "skipped"} <= outcomes
        assert any("L3TUI_TEST_SURELY_UNSET" in e.reason for e in ends)
        assert any("nonexistent" in e.reason or "not found" in e.reason for e in ends
                   if e.state == "failed")
        assert over_commit == []
        assert ledger.allocations == {}
        assert ledger.cpu_allocated == 0 and ledger.memory_allocated_mb == 0
        assert sched.running == set() and sched.queue_length() == 0 and sched.queue() == []
        assert all(used == 0 for used in sched.pool_used.values())
        assert sched.running_per_group == {}


async def test_cancel_between_admission_and_first_step_still_frees_the_slot(make_config,
                                                                           runtime_for):
    config = make_config("""
workflows:
  one:
    name: one
    tasks:
      - {id: t, action: noop, resources: {cpu: 1, memory_mb: 100, pools: {gpu: 1}}}
""", actions=ACTIONS, scheduling=SCHEDULING)
    async with runtime_for(config, sampler=FakeSampler()) as rt:
        run = await rt.run_workflow("one")  # admitted synchronously; its coroutine not begun
        assert rt.scheduler.running and rt.resources.ledger.allocations
        assert (await rt.cancel(run.execution_id, "t")).applied
        assert await asyncio.wait_for(rt.wait(run.execution_id), 60) == "failed"
        assert rt.execution(run.execution_id).tasks[0].state == "cancelled"
        assert rt.scheduler.running == set() and rt.resources.ledger.allocations == {}
        assert rt.scheduler.pool_used == {"gpu": 0}
