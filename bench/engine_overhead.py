"""Engine overhead per task: 10,001 in-process no-op tasks (1,000 lanes of 10, one sink).

Four contestants, run in interleaved rounds (A B C D, A B C D, ...) so that load from other
work on the machine falls on all of them alike; each figure is the median over the rounds
and each ratio the median of the per-round ratios. Every run is timed from the creation of
its execution (the definition handed over) to its end:

- raw: a bare asyncio + graphlib executor, one asyncio task per node, nothing else;
- engine: WorkflowEngine, scheduler (with its resource ledger) and executor on an EventBus
  with a lossy subscriber (as the console has) and the metrics listener; no store;
- floor: the persistence floor (its parts in bench/_floor.py): the raw executor plus a
  writer thread that group-commits the rows the store keeps for such a run (the definition,
  the execution, one task_runs row per task at creation, then per task one task_attempts row
  and one task_runs update) into a database with l3tui's schema; the first tasks start once
  the creation is committed and a task's dependants once its success is committed (stricter
  than l3tui, whose in-process no-ops do not wait: see docs/reliability.md);
- runtime: the whole Runtime (durable SQLite store, sampler, alerts) on a fresh state dir;
  its start-up and shutdown are not counted, the commit of the execution's end is.

Goals (issue 15): ratio = engine / raw <= 3; runtime_floor_ratio = runtime / floor <= 2.
"""

from __future__ import annotations

import asyncio
import gc
import graphlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import lanes_workflow, load_average, temp_config
from bench._floor import ATTEMPT, EXECUTION_END, TASK_DONE, GroupWriter, add_creation, floor_db
from l3tui.config import load_config
from l3tui.config.schema import WorkflowDef

LANES, LENGTH = 1000, 10
ROUNDS = 5
SCHEDULING = """
scheduling:
  resource_limits: {max_concurrent_tasks: 1000}
"""


async def noop() -> int:
    return 0


async def raw_executor(definition: WorkflowDef) -> float:
    """The baseline: graphlib for readiness, one asyncio task per node, nothing else."""
    started = time.perf_counter()
    sorter = graphlib.TopologicalSorter({t.id: t.dependencies for t in definition.tasks})
    sorter.prepare()
    running: dict[asyncio.Task[int], str] = {}
    while sorter.is_active():
        for node in sorter.get_ready():
            running[asyncio.ensure_future(noop())] = node
        done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            sorter.done(running.pop(task))
    return time.perf_counter() - started


async def engine_run(definition: WorkflowDef) -> tuple[float, int]:
    """The engine with events on, no store (persistence is `runtime_run`)."""
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
    bus.add_listener(metrics.on_event, kinds=MetricsCollector.LISTENS)  # as Runtime does
    console = bus.subscribe("console", maxsize=10_000)
    scheduler = TaskScheduler(config.scheduling, clock)
    engine = WorkflowEngine(config, state, bus, scheduler, LocalExecutor(10 << 20, 1.0), clock)
    started = time.perf_counter()
    execution = engine.create("bench", definition=definition)
    engine.start(execution)
    result = await engine.wait(execution.id)
    took = time.perf_counter() - started
    assert result == "succeeded", result
    console.close()
    shutil.rmtree(state, ignore_errors=True)
    return took, bus.published


# ------------------------------------------------------------------ the persistence floor

_floor_db = floor_db  # bench/scale.py takes it (and floor_run) from here


async def floor_run(definition: WorkflowDef, path: Path) -> float:
    """Raw executor + writer thread + group commit of the same rows; nothing starts before
    its execution is committed, no dependant before its upstream's success is."""
    loop = asyncio.get_running_loop()
    writer = GroupWriter(path, loop)
    done = loop.create_future()
    started = time.perf_counter()
    now = time.time()
    exec_id = f"floor-{os.getpid()}-{started:.6f}"
    text = definition.model_dump_json(by_alias=True)
    sorter = graphlib.TopologicalSorter({t.id: t.dependencies for t in definition.tasks})
    sorter.prepare()
    begun: dict[str, float] = {}

    def start_ready() -> None:
        for node in sorter.get_ready():
            begun[node] = time.time()
            loop.create_task(noop()).add_done_callback(lambda _, node=node: finished(node))
        if not sorter.is_active() and not done.done():
            done.set_result(None)

    def finished(node: str) -> None:
        at, begin = time.time(), begun.pop(node)
        writer.add(ATTEMPT, [(exec_id, node, begin, at)])
        writer.add(TASK_DONE, [(begin, at, at - begin, exec_id, node)],
                   lambda: (sorter.done(node), start_ready()))  # fmt: skip

    add_creation(writer, definition, exec_id, text, now, start_ready)
    await done
    end = asyncio.Event()
    writer.add(EXECUTION_END, [(time.time(), exec_id)], end.set)
    await end.wait()
    took = time.perf_counter() - started
    writer.close()
    return took


async def runtime_run(definition: WorkflowDef) -> float:
    """The whole Runtime: creation to the commit of the execution's end."""
    from l3tui.runtime import Runtime

    config = load_config(temp_config(SCHEDULING))
    state = Path(tempfile.mkdtemp(prefix="l3bench-state-"))
    async with Runtime(config, state, actor="bench") as rt:
        started = time.perf_counter()
        execution = rt.engine.create("bench", definition=definition)
        rt.engine.start(execution)
        result = await rt.wait(execution.id)
        took = time.perf_counter() - started
    shutil.rmtree(state, ignore_errors=True)
    assert result == "succeeded", result
    return took


def main() -> None:
    definition = lanes_workflow(LANES, LENGTH, "noop")
    tasks = len(definition.tasks)
    raw: list[float] = []
    eng: list[float] = []
    floor: list[float] = []
    full: list[float] = []
    published = 0
    for _ in range(ROUNDS):
        gc.collect()
        raw.append(asyncio.run(raw_executor(definition)))
        gc.collect()
        took, published = asyncio.run(engine_run(definition))
        eng.append(took)
        gc.collect()
        path = _floor_db()
        floor.append(asyncio.run(floor_run(definition, path)))
        shutil.rmtree(path.parent, ignore_errors=True)
        gc.collect()
        full.append(asyncio.run(runtime_run(definition)))
    med = statistics.median

    def us(seconds: float) -> float:
        return seconds / tasks * 1e6

    ratio = med(e / r for e, r in zip(eng, raw, strict=True))
    floor_ratio = med(f / p for f, p in zip(full, floor, strict=True))
    print(f"tasks: {tasks} ({LANES} lanes of {LENGTH} + sink), events published: {published}, "
          f"{ROUNDS} interleaved rounds, medians (us/task; spread min-max)")
    for label, values in (("raw asyncio+graphlib", raw), ("l3tui engine, events on", eng),
                          ("persistence floor", floor), ("whole Runtime, SQLite", full)):
        print(f"  {label:26s} {us(med(values)):7.1f}  "
              f"({us(min(values)):.1f}-{us(max(values)):.1f})")
    print(f"engine / raw {ratio:.2f} (goal <= 3); Runtime / floor {floor_ratio:.2f} (goal <= 2); "
          f"load average {load_average()}")
    print(f"RESULT ratio={ratio:.2f} per_task_us={us(med(eng)):.1f} "
          f"raw_per_task_us={us(med(raw)):.1f} runtime_per_task_us={us(med(full)):.1f} "
          f"floor_per_task_us={us(med(floor)):.1f} runtime_floor_ratio={floor_ratio:.2f}")


if __name__ == "__main__":
    main()
