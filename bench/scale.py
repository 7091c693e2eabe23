"""Cost as work grows: one workflow of 1,000, 10,000 and 100,000 tasks (lanes of 10 into one
sink) through the whole Runtime (durable SQLite store, sampler, alerts), each size in its
own child process so that one size's heap does not inflate the next one's peak.

- in-process no-op tasks (concurrency 1,000) at 1k, 10k and 100k;
- `true` processes (concurrency 2) at 100 and 1,000 only: each costs ~1-5 ms here (a
  durable commit before every spawn), so 10k would take ~20-60 s and 100k several minutes,
  more than this bench's minute (the output says so).

Per size: wall time per task from `create` to the execution's end (creation, durable
commits and every dependant's start included), CPU per task of the child (every thread),
and the child's peak RSS. Baseline in the same run: the same child with a 1-task workflow
(the interpreter, imports and an idle Runtime), so growth = (peak - baseline) / tasks.
Flat per-task cost and linear memory are the goal; the ratios print how far from flat.

Also the persistence floor of bench/engine_overhead.py at the no-op sizes (what SQLite's own
growth is: bigger B-trees, more pages per commit).

Last line: RESULT per_task_us_1k=<a> per_task_us_100k=<b> rss_mb_100k=<c> growth_100k=<b/a>
proc_per_task_ms_100=<d> proc_per_task_ms_1k=<e> floor_us_1k=<f> floor_us_100k=<g>
"""

from __future__ import annotations

import asyncio
import gc
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NOOP_SIZES = (1_000, 10_000, 100_000)
PROC_SIZES = (100, 1_000)
NOOP_SCHEDULING = "scheduling:\n  resource_limits: {max_concurrent_tasks: 1000}\n"
PROC_SCHEDULING = "scheduling:\n  resource_limits: {max_concurrent_tasks: 2}\n"
PROC_ACTIONS = 'actions:\n  "true":\n    command: ["true"]\n'


def floor_child(size: int) -> None:
    """The persistence floor of bench/engine_overhead.py (raw executor, writer thread, group
    commit of the rows the store keeps, success durable before dependants) at this size: how
    much of the Runtime's growth SQLite itself has (bigger B-trees, more pages per commit)."""
    from bench._common import lanes_workflow
    from bench.engine_overhead import _floor_db, floor_run

    definition = lanes_workflow(max(size // 10, 1), 10, "noop")
    path = _floor_db()
    gc.collect()
    cpu = time.process_time()
    took = asyncio.run(floor_run(definition, path))
    cpu = time.process_time() - cpu
    shutil.rmtree(path.parent, ignore_errors=True)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"{len(definition.tasks)} {took:.6f} {cpu:.6f} 0 {peak_kb}")


def child(kind: str, size: int) -> None:
    """One workflow of about `size` tasks; prints `tasks wall_s cpu_s build_s peak_kb`."""
    if kind == "floor":
        floor_child(size)
        return
    from bench._common import lanes_workflow, temp_config
    from l3tui.config import load_config
    from l3tui.runtime import Runtime

    built = time.perf_counter()
    action = "noop" if kind == "noop" else "true"
    lanes, length = (max(size // 10, 1), 10) if size > 1 else (1, 1)
    definition = lanes_workflow(lanes, length, action)
    build_s = time.perf_counter() - built
    scheduling = NOOP_SCHEDULING if kind == "noop" else PROC_SCHEDULING
    actions = "actions: {}\n" if kind == "noop" else PROC_ACTIONS
    config = load_config(temp_config(scheduling, actions))
    state = Path(tempfile.mkdtemp(prefix="l3bench-state-"))

    async def run() -> tuple[float, float]:
        async with Runtime(config, state, actor="bench") as rt:
            gc.collect()
            started, cpu = time.perf_counter(), time.process_time()
            execution = rt.engine.create("bench", definition=definition)
            rt.engine.start(execution)
            result = await rt.wait(execution.id)
            took, cpu = time.perf_counter() - started, time.process_time() - cpu
        assert result == "succeeded", result
        return took, cpu

    took, cpu = asyncio.run(run())
    shutil.rmtree(state, ignore_errors=True)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"{len(definition.tasks)} {took:.6f} {cpu:.6f} {build_s:.6f} {peak_kb}")


def measure(kind: str, size: int) -> tuple[int, float, float, float, float]:
    """(tasks, wall s, cpu s, build s, peak MB) of one child."""
    out = subprocess.run([sys.executable, __file__, "--child", kind, str(size)],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"{kind} {size}: {out.stderr.strip()[-2000:]}")
    tasks, wall, cpu, build, peak_kb = out.stdout.split()[-5:]
    return int(tasks), float(wall), float(cpu), float(build), int(peak_kb) / 1024


def main() -> None:
    started = time.perf_counter()
    print(f"load average {os.getloadavg()[0]:.2f}; whole Runtime with the SQLite store, "
          "one child process per size")  # fmt: skip
    base_mb = measure("noop", 1)[4]
    print(f"baseline: a 1-task workflow's child, peak RSS {base_mb:.1f} MB")
    per_task: dict[tuple[str, int], float] = {}
    peak: dict[tuple[str, int], float] = {}
    for kind, sizes, unit, scale in (("noop", NOOP_SIZES, "us", 1e6),
                                     ("true", PROC_SIZES, "ms", 1e3)):  # fmt: skip
        label = "in-process no-op" if kind == "noop" else "`true` process"
        first = None
        for size in sizes:
            tasks, wall, cpu, build, mb = measure(kind, size)
            per_task[kind, size] = wall / tasks
            peak[kind, size] = mb
            first = first or wall / tasks
            grow = (mb - base_mb) * 2**20 / tasks
            print(f"{label:>16} x {tasks:>7,}: {wall / tasks * scale:8.2f} {unit}/task wall "
                  f"({wall / tasks / first:.2f}x the smallest), {cpu / tasks * scale:8.2f} "
                  f"{unit}/task CPU, peak RSS {mb:6.1f} MB ({grow:,.0f} B/task over the "
                  f"baseline); definition built in {build:.2f} s (not counted)")  # fmt: skip
    floor: dict[int, float] = {}
    for size in NOOP_SIZES:
        tasks, wall, cpu, _build, _mb = measure("floor", size)
        floor[size] = wall / tasks
        print(f"{'persistence floor':>16} x {tasks:>7,}: {wall / tasks * 1e6:8.2f} us/task wall "
              f"({wall / tasks / (floor[NOOP_SIZES[0]]):.2f}x the smallest), "
              f"{cpu / tasks * 1e6:8.2f} us/task CPU; the Runtime is "
              f"{per_task['noop', size] / floor[size]:.2f}x it")  # fmt: skip
    print("`true` processes stop at 1,000 (reduced from 10k/100k: 100,000 would take "
          "minutes at 2 at a time)")
    growth = per_task["noop", 100_000] / per_task["noop", 1_000]
    print(f"per-task growth 1k -> 100k no-ops: {growth:.2f}x (1.0 is flat); "
          f"100 -> 1,000 processes: "
          f"{per_task['true', 1_000] / per_task['true', 100]:.2f}x")  # fmt: skip
    print(f"bench took {time.perf_counter() - started:.1f} s; load average "
          f"{os.getloadavg()[0]:.2f}")  # fmt: skip
    print(f"RESULT per_task_us_1k={per_task['noop', 1_000] * 1e6:.1f} "
          f"per_task_us_100k={per_task['noop', 100_000] * 1e6:.1f} "
          f"rss_mb_100k={peak['noop', 100_000]:.1f} growth_100k={growth:.2f} "
          f"proc_per_task_ms_100={per_task['true', 100] * 1e3:.3f} "
          f"proc_per_task_ms_1k={per_task['true', 1_000] * 1e3:.3f} "
          f"floor_us_1k={floor[1_000] * 1e6:.1f} floor_us_100k={floor[100_000] * 1e6:.1f}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]))
    else:
        main()
