"""Admission as users see it, through the real Runtime and engine: priority order under
contention, pools, declared needs against the ledger, measured load with hysteresis and
the reason every waiting task gives. Readings come from an injected Sampler; tasks are
in-process `noop`s and real processes that wait for a file."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from l3tui.engine import events as ev
from l3tui.engine.resources.sampler import Reading

WAIT_FILE = """
actions:
  wait_file:
    command: [sh, -c, 'while [ ! -e "$1" ]; do sleep 0.02; done', sh, "${path}"]
"""


class FakeSampler:
    """Readings chosen by the test (the sanctioned seam for resource admission)."""

    def __init__(self, cpu: float = 10.0, memory: float = 30.0, cores: float = 4.0,
                 memory_mb: int = 16_000) -> None:
        self.values: dict[str, Any] = {
            "cpu_usage": cpu, "memory_usage": memory, "per_core": [cpu] * int(cores),
            "cpu_count": cores, "memory_used": memory_mb * 1024 * 1024 * memory / 100,
            "memory_total": memory_mb * 1024 * 1024, "disk_usage": 40.0,
            "swap_usage": 0.0, "swap_in": 0.0, "swap_out": 0.0, "load_avg": 0.5,
        }
        self.cores, self.memory_mb = cores, memory_mb
        self.calls = 0

    def capacity(self) -> tuple[float, int]:
        return self.cores, self.memory_mb

    def sample(self, groups: Any) -> Reading:
        self.calls += 1
        return Reading(dict(self.values), {})

    def set(self, **values: Any) -> None:
        self.values.update(values)


async def wait_for(predicate, timeout: float = 30.0, interval: float = 0.01):
    async with asyncio.timeout(timeout):
        while not (result := predicate()):
            await asyncio.sleep(interval)
        return result


def scheduling(extra: str = "", concurrency: int = 4) -> str:
    return f"""
scheduling:
  resource_limits: {{max_concurrent_tasks: {concurrency}}}
  execution: {{grace_period: 1s, default_timeout: 60s}}
{extra}
"""


def one_task_workflows(names_priorities: dict[str, str], extra_task: str = "") -> str:
    out = ["workflows:"]
    for name, priority in names_priorities.items():
        out.append(f"  {name}:\n    name: {name}\n    priority: {priority}\n    tasks:\n"
                   f"      - {{id: t, action: noop{extra_task}}}")
    return "\n".join(out) + "\n"


def gate_workflow(path: Path, name: str = "gate", extra: str = "") -> str:
    return (f"  {name}:\n    name: {name}\n    priority: critical\n    tasks:\n"
            f"      - {{id: hold, action: wait_file, parameters: {{path: '{path}'}}{extra}}}\n")


def task_state(rt, exec_id: str, task_id: str) -> str:
    return rt.engine.executions[exec_id].tasks[task_id].state.value


async def test_priority_order_under_contention_with_concurrency_1(make_config, runtime_for,
                                                                  tmp_path):
    go = tmp_path / "go"
    workflows = one_task_workflows({"bg": "background", "low": "low", "crit": "critical",
                                    "medium": "medium", "high": "high"})
    workflows += gate_workflow(go)
    config = make_config(workflows, actions=WAIT_FILE, scheduling=scheduling(concurrency=1))
    async with runtime_for(config, sampler=FakeSampler()) as rt:
        sub = rt.subscribe("order")
        gate = await rt.run_workflow("gate")
        await wait_for(lambda: task_state(rt, gate.execution_id, "hold") == "running")
        ids = {}
        for name in ("bg", "low", "crit", "medium", "high"):
            ids[(await rt.run_workflow(name)).execution_id] = name
        queued = rt.scheduler.queue()
        assert [e.workflow_id for e in queued] == ["crit", "high", "medium", "low", "bg"]
        assert {e.reason for e in queued} == {"concurrency 1/1"}
        view = rt.execution(next(iter(ids)))
        assert view.tasks[0].state == "queued" and view.tasks[0].reason == "concurrency 1/1"
        go.touch()
        for exec_id in ids:
            assert await asyncio.wait_for(rt.wait(exec_id), 60) == "succeeded"
        started = [ids[e.execution_id] for e in sub.drain()
                   if isinstance(e, ev.TaskStarted) and e.execution_id in ids]
        assert started == ["crit", "high", "medium", "low", "bg"]


async def test_numbers_and_names_share_one_scale(make_config, runtime_for, tmp_path):
    go = tmp_path / "go"
    workflows = one_task_workflows({"nine": "9", "high": "high", "two": "2"}) + gate_workflow(go)
    config = make_config(workflows, actions=WAIT_FILE, scheduling=scheduling(concurrency=1))
    async with runtime_for(config, sampler=FakeSampler()) as rt:
        gate = await rt.run_workflow("gate")
        await wait_for(lambda: task_state(rt, gate.execution_id, "hold") == "running")
        for name in ("two", "high", "nine"):
            await rt.run_workflow(name)
        assert [e.workflow_id for e in rt.scheduler.queue()] == ["nine", "high", "two"]
        assert [e.workflow_id for e in rt.scheduler.queue(priority=8)] == ["high"]
        go.touch()


async def test_pool_runs_one_build_at_a_time_while_other_work_passes(make_config, runtime_for,
                                                                     tmp_path):
    files = [tmp_path / f"build{i}" for i in range(3)]
    tasks = "".join(
        f"      - {{id: build{i}, action: wait_file, parameters: {{path: '{f}'}}, "
        f"resources: {{pools: {{flutter_build: 1}}}}}}\n"
        for i, f in enumerate(files)
    )
    workflows = f"""
workflows:
  builds:
    name: builds
    tasks:
{tasks}      - {{id: lint, action: noop}}
"""
    config = make_config(workflows, actions=WAIT_FILE,
                         scheduling=scheduling("  pools: {flutter_build: 1, device: 1}"))
    async with runtime_for(config, sampler=FakeSampler()) as rt:
        run = await rt.run_workflow("builds")
        exec_id = run.execution_id
        await wait_for(lambda: task_state(rt, exec_id, "lint") == "succeeded")
        states = {f"build{i}": task_state(rt, exec_id, f"build{i}") for i in range(3)}
        assert sorted(states.values()) == ["queued", "queued", "running"]
        view = rt.execution(exec_id)
        reasons = {t.task_id: t.reason for t in view.tasks if t.state == "queued"}
        assert set(reasons.values()) == {"pool flutter_build 1/1"}
        report = "\n".join(rt.queue_report().lines())
        assert "2 waiting on pool flutter_build 1/1" in report
        assert "raise pools.flutter_build to 2" in report
        finished: list[str] = []
        for _ in range(3):  # let the running build end; exactly one other takes the pool
            running = [f"build{i}" for i in range(3)
                       if task_state(rt, exec_id, f"build{i}") == "running"]
            assert len(running) == 1
            files[int(running[0][-1])].touch()
            await wait_for(lambda r=running[0]: task_state(rt, exec_id, r) == "succeeded")
            finished.append(running[0])
            if len(finished) < 3:
                await wait_for(lambda: any(task_state(rt, exec_id, f"build{i}") == "running"
                                           for i in range(3)))
        assert await asyncio.wait_for(rt.wait(exec_id), 60) == "succeeded"
        assert rt.scheduler.pool_used == {"flutter_build": 0}


async def test_memory_over_limit_holds_admission_until_it_drops_below_hysteresis(
        make_config, runtime_for):
    workflows = one_task_workflows({"job": "medium", "urgent": "critical"})
    sched = scheduling("  sampler: {interval: 60s}")  # samples are taken by the test
    config = make_config(workflows, scheduling=sched)
    sampler = FakeSampler(memory=81.0)
    async with runtime_for(config, sampler=sampler) as rt:
        await rt.resources.sample_once()
        job = await rt.run_workflow("job")
        view = rt.execution(job.execution_id)
        assert view.tasks[0].state == "queued"
        assert view.tasks[0].reason == "memory 81% > 75%"
        assert rt.queue_slice(0, 10)[0].reason == "memory 81% > 75%"

        urgent = await rt.run_workflow("urgent")  # critical bypasses measured load
        assert await asyncio.wait_for(rt.wait(urgent.execution_id), 60) == "succeeded"
        assert task_state(rt, job.execution_id, "t") == "queued"

        sampler.set(memory_usage=72.0)  # under the limit, not under limit - hysteresis
        await rt.resources.sample_once()
        assert task_state(rt, job.execution_id, "t") == "queued"
        assert rt.execution(job.execution_id).tasks[0].reason == \
            "memory 72%, waiting for <= 70%"

        sampler.set(memory_usage=64.0)
        await rt.resources.sample_once()
        assert await asyncio.wait_for(rt.wait(job.execution_id), 60) == "succeeded"
        waited = rt.scheduler.wait_totals.get("memory", 0.0)
        assert waited > 0


async def test_cpu_over_limit_holds_only_while_one_of_ours_runs(make_config, runtime_for,
                                                                tmp_path):
    go = tmp_path / "go"
    workflows = one_task_workflows({"job": "medium"}) + f"""
  busy:
    name: busy
    tasks:
      - {{id: hold, action: wait_file, parameters: {{path: '{go}'}}}}
"""
    config = make_config(workflows, actions=WAIT_FILE,
                         scheduling=scheduling("  sampler: {interval: 60s}"))
    sampler = FakeSampler(cpu=97.0)
    async with runtime_for(config, sampler=sampler) as rt:
        await rt.resources.sample_once()
        busy = await rt.run_workflow("busy")  # nothing of ours runs: starts despite CPU
        await wait_for(lambda: task_state(rt, busy.execution_id, "hold") == "running")
        job = await rt.run_workflow("job")
        assert rt.execution(job.execution_id).tasks[0].reason == "cpu 97% > 80%"
        go.touch()  # ours ends: the other program's load alone no longer holds one task
        assert await asyncio.wait_for(rt.wait(job.execution_id), 60) == "succeeded"


async def test_declared_memory_waits_for_the_ledger(make_config, runtime_for, tmp_path):
    first = tmp_path / "first"
    workflows = f"""
workflows:
  heavy:
    name: heavy
    tasks:
      - {{id: a, action: wait_file, parameters: {{path: '{first}'}}, resources: {{memory_mb: 600, cpu: 1}}}}
      - {{id: b, action: noop, resources: {{memory_mb: 600}}}}
      - {{id: c, action: noop, resources: {{cpu: 0.5}}}}
"""
    sched = scheduling("  sampler: {interval: 60s}").replace(
        "max_concurrent_tasks: 4", "max_concurrent_tasks: 4, memory_mb: 1000, cpu_cores: 2")
    config = make_config(workflows, actions=WAIT_FILE, scheduling=sched)
    async with runtime_for(config, sampler=FakeSampler()) as rt:
        run = await rt.run_workflow("heavy")
        exec_id = run.execution_id
        await wait_for(lambda: task_state(rt, exec_id, "a") == "running")
        await wait_for(lambda: task_state(rt, exec_id, "c") == "succeeded")
        assert task_state(rt, exec_id, "b") == "queued"
        reason = rt.scheduler.entry_for(exec_id, "b").reason
        assert reason == "needs 600 MB memory, 400 MB of 1000 MB free"
        assert rt.resources.ledger.memory_allocated_mb == 600
        first.touch()
        assert await asyncio.wait_for(rt.wait(exec_id), 60) == "succeeded"
        assert rt.resources.ledger.allocations == {}


async def test_a_need_beyond_capacity_says_it_can_never_start(make_config, runtime_for):
    workflows = """
workflows:
  huge:
    name: huge
    tasks:
      - {id: t, action: noop, resources: {cpu: 64}}
"""
    config = make_config(workflows, scheduling=scheduling().replace(
        "max_concurrent_tasks: 4", "max_concurrent_tasks: 4, cpu_cores: 2"))
    async with runtime_for(config, sampler=FakeSampler()) as rt:
        run = await rt.run_workflow("huge")
        reason = rt.execution(run.execution_id).tasks[0].reason
        assert reason.startswith("needs 64 cpu but the ledger has 2 in all")
        assert "can never fit" in "\n".join(rt.queue_report().lines())
        assert (await rt.cancel(run.execution_id)).applied
        assert rt.scheduler.queue_length() == 0


async def test_paused_execution_holds_its_queued_tasks_with_a_reason(make_config, runtime_for,
                                                                     tmp_path):
    go = tmp_path / "go"
    workflows = one_task_workflows({"job": "medium"}) + gate_workflow(go)
    config = make_config(workflows, actions=WAIT_FILE, scheduling=scheduling(concurrency=1))
    async with runtime_for(config, sampler=FakeSampler()) as rt:
        gate = await rt.run_workflow("gate")
        await wait_for(lambda: task_state(rt, gate.execution_id, "hold") == "running")
        job = await rt.run_workflow("job")
        assert (await rt.pause(job.execution_id)).applied
        assert rt.execution(job.execution_id).tasks[0].reason == "held: execution paused"
        go.touch()
        await asyncio.wait_for(rt.wait(gate.execution_id), 60)
        await asyncio.sleep(0.1)  # a free slot must not admit a held task
        assert task_state(rt, job.execution_id, "t") == "queued"
        assert (await rt.resume(job.execution_id)).applied
        assert await asyncio.wait_for(rt.wait(job.execution_id), 60) == "succeeded"


async def test_max_parallel_limits_one_execution(make_config, runtime_for, tmp_path):
    go = tmp_path / "go"
    tasks = "".join(f"      - {{id: t{i}, action: wait_file, parameters: {{path: '{go}'}}}}\n"
                    for i in range(4))
    config = make_config(f"workflows:\n  wide:\n    name: wide\n    max_parallel: 2\n"
                         f"    tasks:\n{tasks}", actions=WAIT_FILE)
    async with runtime_for(config, sampler=FakeSampler()) as rt:
        run = await rt.run_workflow("wide")
        exec_id = run.execution_id
        await wait_for(lambda: sum(task_state(rt, exec_id, f"t{i}") == "running"
                                   for i in range(4)) == 2)
        queued = [t for t in rt.execution(exec_id).tasks if t.state == "queued"]
        assert [t.reason for t in queued] == ["workflow max_parallel 2/2"] * 2
        go.touch()
        assert await asyncio.wait_for(rt.wait(exec_id), 60) == "succeeded"
