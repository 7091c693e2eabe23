"""Engine overhead per task: 10,000 in-process no-op tasks (1,000 lanes of 10, one sink)
through the full engine with events on, against a minimal raw asyncio + graphlib executor
run in the same process. Goal: ratio <= 3.0."""

from __future__ import annotations

import asyncio
import gc
import graphlib
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import lanes_workflow, temp_config, time_in_runtime
from l3tui.config import load_config
from l3tui.config.schema import WorkflowDef

LANES, LENGTH = 1000, 10
SCHEDULING = """
scheduling:
  resource_limits: {max_concurrent_tasks: 1000}
"""


async def noop() -> int:
    return 0


async def raw_executor(definition: WorkflowDef) -> float:
    """The baseline: graphlib for readiness, one asyncio task per node, nothing else."""
    deps = {t.id: t.dependencies for t in definition.tasks}
    sorter = graphlib.TopologicalSorter(deps)
    sorter.prepare()
    started = time.perf_counter()
    running: dict[asyncio.Task[int], str] = {}
    while sorter.is_active():
        for node in sorter.get_ready():
            running[asyncio.ensure_future(noop())] = node
        done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            sorter.done(running.pop(task))
    return time.perf_counter() - started


async def engine_run(definition: WorkflowDef) -> tuple[float, int]:
    """The engine with events on: WorkflowEngine, scheduler (with its resource ledger) and
    executor on an EventBus with a lossy subscriber (as the console has) and the metrics
    listener. Persistence is measured separately (runtime_run, and bench/store.py)."""
    from l3tui.engine.bus import EventBus
    from l3tui.engine.clock import SystemClock
    from l3tui.engine.executors.local import LocalExecutor
    from l3tui.engine.scheduling.scheduler import TaskScheduler
    from l3tui.engine.workflow.engine import WorkflowEngine
    from l3tui.monitor.metrics import MetricsCollector

    config = load_config(temp_config(SCHEDULING))
    state = Path(tempfile.mkdtemp(prefix="l3bench-state-"))
    clock, bus = SystemClock(), EventBus()
    metrics = MetricsCollector()
    bus.add_listener(metrics.on_event)
    console = bus.subscribe("console", maxsize=10_000)
    scheduler = TaskScheduler(config.scheduling, clock)
    engine = WorkflowEngine(config, state, bus, scheduler, LocalExecutor(10 << 20, 1.0), clock)
    execution = engine.create("bench", definition=definition)
    started = time.perf_counter()
    engine.start(execution)
    result = await engine.wait(execution.id)
    took = time.perf_counter() - started
    assert result == "succeeded", result
    console.close()
    return took, bus.published


async def runtime_run(definition: WorkflowDef) -> float:
    """The same through the whole Runtime: durable SQLite store (each success committed
    before its dependants start), resource sampler, alerts."""
    return await time_in_runtime(definition, SCHEDULING)


def main() -> None:
    definition = lanes_workflow(LANES, LENGTH, "noop")
    tasks = len(definition.tasks)
    raw, eng, full, published = [], [], [], 0
    for _ in range(5):
        gc.collect()
        raw.append(asyncio.run(raw_executor(definition)))
        gc.collect()
        took, published = asyncio.run(engine_run(definition))
        eng.append(took)
    for _ in range(2):
        gc.collect()
        full.append(asyncio.run(runtime_run(definition)))
    raw_s, eng_s, full_s = min(raw), min(eng), min(full)  # interference only adds time
    print(f"tasks: {tasks} ({LANES} lanes of {LENGTH} + sink), events published: {published}")
    print(f"raw asyncio+graphlib:       {raw_s:.3f}s  ({raw_s / tasks * 1e6:.1f} us/task)")
    print(f"l3tui engine, events on:    {eng_s:.3f}s  ({eng_s / tasks * 1e6:.1f} us/task)")
    print(f"whole Runtime, SQLite on:   {full_s:.3f}s  ({full_s / tasks * 1e6:.1f} us/task)")
    print(f"RESULT ratio={eng_s / raw_s:.2f} per_task_us={eng_s / tasks * 1e6:.0f} "
          f"raw_per_task_us={raw_s / tasks * 1e6:.0f} "
          f"runtime_per_task_us={full_s / tasks * 1e6:.0f}")


if __name__ == "__main__":
    main()
