"""Engine overhead per task: 10,001 in-process no-op tasks (1,000 lanes of 10, one sink).

Four contestants, run in interleaved rounds (A B C D, A B C D, ...) so that load from other
work on the machine falls on all of them alike; each figure is the median over the rounds
and each ratio the median of the per-round ratios. Every run is timed from the creation of
its execution (the definition handed over) to its end:

- raw: a bare asyncio + graphlib executor, one asyncio task per node, nothing else;
- engine: WorkflowEngine, scheduler (with its resource ledger) and executor on an EventBus
  with a lossy subscriber (as the console has) and the metrics listener; no store;
- floor: the persistence floor: the raw executor plus a writer thread that group-commits
  the rows the store keeps for such a run (the definition, the execution, one task_runs row
  per task at creation, then per task one task_attempts row and one task_runs update) into
  a database with l3tui's schema; the first tasks start once the creation is committed and a
  task's dependants once its success is committed (stricter than l3tui, whose in-process
  no-ops do not wait: see docs/reliability.md);
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
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import lanes_workflow, load_average, temp_config
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


_ATTEMPT = ("INSERT INTO task_attempts (execution_id, task_id, attempt, started_at, finished_at, "
            "state, exit_code, wait_s) VALUES (?, ?, 1, ?, ?, 'succeeded', 0, 0.0)")
_TASK_DONE = ("UPDATE task_runs SET state = 'succeeded', attempt = 1, exit_code = 0, "
              "started_at = ?, finished_at = ?, duration_s = ?, wait_s = 0.0 "
              "WHERE execution_id = ? AND task_id = ?")  # fmt: skip


class GroupWriter:
    """One writer thread, one connection: it takes every statement handed over since its
    last commit, writes them in one transaction, commits, then runs their callbacks on the
    loop. The loop side gathers rows for a whole turn and hands them over once."""

    def __init__(self, path: Path, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.path = path
        self.gathered: dict[str, list[tuple[object, ...]]] = {}
        self.gathered_callbacks: list[Callable[[], None]] = []
        self.handing_over = False
        self.pending: list[tuple[dict[str, list[tuple[object, ...]]], list[Callable[[], None]]]]
        self.pending = []
        self.wake = threading.Condition()
        self.closing = False
        self.commits = 0
        self.thread = threading.Thread(target=self._run, name="floor-writer", daemon=True)
        self.thread.start()

    def add(self, sql: str, rows: list[tuple[object, ...]],
            then: Callable[[], None] | None = None) -> None:  # fmt: skip
        rows_of = self.gathered.get(sql)
        if rows_of is None:
            self.gathered[sql] = rows
        else:
            rows_of.extend(rows)
        if then is not None:
            self.gathered_callbacks.append(then)
        if not self.handing_over:
            self.handing_over = True
            self.loop.call_soon(self._hand_over)

    def _hand_over(self) -> None:
        self.handing_over = False
        batch, self.gathered = self.gathered, {}
        callbacks, self.gathered_callbacks = self.gathered_callbacks, []
        with self.wake:
            self.pending.append((batch, callbacks))
            self.wake.notify()

    def close(self) -> None:
        with self.wake:
            self.closing = True
            self.wake.notify()
        self.thread.join()

    def _run(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None)
        for pragma in ("journal_mode = WAL", "synchronous = NORMAL", "foreign_keys = ON"):
            conn.execute(f"PRAGMA {pragma}")
        while True:
            with self.wake:
                while not self.pending and not self.closing:
                    self.wake.wait()
                if not self.pending:
                    break
                handed, self.pending = self.pending, []
            conn.execute("BEGIN IMMEDIATE")
            for batch, _ in handed:
                for sql, rows in batch.items():
                    conn.executemany(sql, rows)
            conn.execute("COMMIT")
            self.commits += 1
            self.loop.call_soon_threadsafe(_run_all, [c for _, cs in handed for c in cs])
        conn.close()


def _run_all(callbacks: list[Callable[[], None]]) -> None:
    for callback in callbacks:
        callback()


def _floor_db() -> Path:
    from l3tui.store.schema import LATEST, apply_migrations

    path = Path(tempfile.mkdtemp(prefix="l3bench-floor-")) / "floor.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    apply_migrations(conn, 0, LATEST)
    conn.close()
    return path


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
        writer.add(_ATTEMPT, [(exec_id, node, begin, at)])
        writer.add(_TASK_DONE, [(begin, at, at - begin, exec_id, node)],
                   lambda: (sorter.done(node), start_ready()))  # fmt: skip

    writer.add("INSERT INTO definitions VALUES (?, ?, ?, ?, ?)",
               [(exec_id, "bench", definition.name, text, now)])  # fmt: skip
    writer.add("INSERT INTO executions (id, workflow_id, workflow_name, definition_hash, "
               "params, trigger, priority, state, created_at, started_at) VALUES "
               "(?, 'bench', ?, ?, '{}', 'bench', 5, 'running', ?, ?)",
               [(exec_id, definition.name, exec_id, now, now)])  # fmt: skip
    writer.add("INSERT INTO task_runs (execution_id, task_id, name, position) VALUES (?,?,?,?)",
               [(exec_id, t.id, t.display_name, i) for i, t in enumerate(definition.tasks)],
               start_ready)  # fmt: skip
    await done
    end = asyncio.Event()
    writer.add("UPDATE executions SET state = 'succeeded', finished_at = ? WHERE id = ?",
               [(time.time(), exec_id)], end.set)  # fmt: skip
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
