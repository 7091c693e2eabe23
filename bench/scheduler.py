"""Scheduler and sampler cost.

1. 100,000 queued tasks with mixed priorities (the five levels), deadlines on some and
   pools on 20% (build: 2 slots, device: 1) pushed through TaskScheduler admission with
   no-op work (16 at a time): submit all, then release one by one as each "finishes".
   Baseline in the same run: a plain heapq priority queue doing the same submit/dispatch
   with a concurrency limit and nothing else (no pools, holds, ledger, load, aging, reasons).
   CPU time of this thread (a busy machine's other work is not counted), 7 rounds with the
   two interleaved, medians; the garbage collector is off while timing (as the engine's
   `gc.freeze()` makes long-lived entries free to skip).
2. Sampler overhead: the ResourceManager's full sample (psutil in a worker thread, per-task
   process-tree CPU/RSS, publish, findings) with 50 running tasks (50 process groups of 2
   processes each), as CPU % of one core at a 1 s interval.

Last line: RESULT ratio=<scheduler/baseline per-task cost> decisions_per_s=<admissions/s>
sampler_cpu_pct=<%>.
"""

from __future__ import annotations

import asyncio
import gc
import heapq
import itertools
import os
import random
import signal
import statistics
import subprocess
import tempfile
import time
from collections import deque
from pathlib import Path

from l3tui.config.schema import Scheduling
from l3tui.engine.bus import EventBus
from l3tui.engine.clock import SystemClock
from l3tui.engine.model import TaskRun, TaskState
from l3tui.engine.resources.manager import ResourceManager
from l3tui.engine.scheduling.scheduler import QueueEntry, TaskScheduler

N = 100_000
LIMIT = 16
PRIORITIES = [1, 3, 5, 8, 10]


def make_specs(seed: int = 1) -> list[tuple[int, dict[str, int], float | None]]:
    rng = random.Random(seed)
    now = time.time()
    specs = []
    for _ in range(N):
        roll = rng.random()
        pools = {"build": 1} if roll < 0.1 else {"device": 1} if roll < 0.2 else {}
        deadline = now + rng.random() * 3600 if rng.random() < 0.3 else None
        specs.append((rng.choice(PRIORITIES), pools, deadline))
    return specs


def run_scheduler(specs) -> tuple[float, TaskScheduler]:
    settings = Scheduling.model_validate({
        "resource_limits": {"max_concurrent_tasks": LIMIT}, "pools": {"build": 2, "device": 1},
    })
    sched = TaskScheduler(settings, SystemClock())
    running: deque[QueueEntry] = deque()
    admit = running.append
    entries = [QueueEntry(execution_id=f"e{i % 1000}", task_id=f"t{i}", workflow_id="w",
                          name="n", priority=p, on_admit=admit, pools=pools, deadline=d)
               for i, (p, pools, d) in enumerate(specs)]  # fmt: skip
    release, submit = sched.release, sched.submit
    started = time.thread_time()
    for entry in entries:
        submit(entry)
    while running:
        release(running.popleft())
    elapsed = time.thread_time() - started
    assert sched.admitted_total == N and sched.queue_length() == 0
    assert all(v == 0 for v in sched.pool_used.values())
    return elapsed, sched


class _Task:
    __slots__ = ("deadline", "priority")

    def __init__(self, priority: int, deadline: float | None) -> None:
        self.priority, self.deadline = priority, deadline


def run_baseline(specs) -> float:
    """A plain heapq queue with a concurrency limit: the floor of any priority dispatcher."""
    tasks = [_Task(p, d) for p, _, d in specs]
    heap: list[tuple[int, float, int, _Task]] = []
    running: set[_Task] = set()
    order: deque[_Task] = deque()
    seq = itertools.count()
    inf = float("inf")
    push, pop = heapq.heappush, heapq.heappop
    started = time.thread_time()
    for task in tasks:
        push(heap, (-task.priority, task.deadline if task.deadline is not None else inf,
                    next(seq), task))  # fmt: skip
        while heap and len(running) < LIMIT:
            admitted = pop(heap)[3]
            running.add(admitted)
            order.append(admitted)
    while order:
        running.remove(order.popleft())
        while heap and len(running) < LIMIT:
            admitted = pop(heap)[3]
            running.add(admitted)
            order.append(admitted)
    return time.thread_time() - started


def bench_scheduler(rounds: int = 7) -> tuple[float, float, list[float], int]:
    """Median CPU seconds of the scheduler and of the baseline, the per-round ratios, and
    how many entries were set aside under a cause."""
    specs = make_specs()
    sched_s, base_s, ratios = [], [], []
    parked = 0
    for n in range(rounds):
        gc.collect()
        gc.disable()
        try:  # alternate which goes first, so a drift in load favours neither
            if n % 2:
                elapsed, sched = run_scheduler(specs)
                base = run_baseline(specs)
            else:
                base = run_baseline(specs)
                elapsed, sched = run_scheduler(specs)
        finally:
            gc.enable()
        sched_s.append(elapsed)
        base_s.append(base)
        ratios.append(elapsed / base)
        parked = sched.parked_total
    return statistics.median(sched_s), statistics.median(base_s), ratios, parked


def bench_sampler(groups: int = 50, samples: int = 10) -> tuple[float, int]:
    procs = [subprocess.Popen(["sh", "-c", "sleep 120 & wait"], process_group=0)
             for _ in range(groups)]  # fmt: skip
    try:
        time.sleep(0.3)  # let each group's child exist
        runs = []
        for i, proc in enumerate(procs):
            run = TaskRun(execution_id="bench", task_id=f"t{i}", name=f"t{i}")
            run.state, run.pgid = TaskState.RUNNING, proc.pid
            runs.append(run)
        with tempfile.TemporaryDirectory() as state:
            settings = Scheduling.model_validate({"sampler": {"interval": "1s"}})
            manager = ResourceManager(settings, EventBus(), SystemClock(), Path(state),
                                      tasks=lambda: runs)  # fmt: skip

            async def sample_many() -> float:
                await manager.sample_once()  # warm-up: first deltas, thread pool start
                cpu = 0.0
                for _ in range(samples):
                    await asyncio.sleep(0.2)
                    before = time.process_time()  # every thread of this process
                    await manager.sample_once()
                    cpu += time.process_time() - before
                return cpu / samples

            per_sample = asyncio.run(sample_many())
        measured = sum(1 for r in runs if r.usage_samples)
        return per_sample * 100.0 / 1.0, measured  # % of one core at one sample per second
    finally:
        for proc in procs:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()


def main() -> None:
    print(f"load average {os.getloadavg()[0]:.2f}")
    sched_s, base_s, ratios, parked = bench_scheduler()
    ratio = statistics.median(ratios)
    decisions = N / sched_s
    print(f"scheduler: {N:,} tasks (20% pooled, 30% with deadlines), {LIMIT} at a time, "
          f"CPU time, median of {len(ratios)} interleaved rounds")
    print(f"  TaskScheduler  {sched_s:.3f} s  {sched_s / N * 1e6:.2f} us/task  "
          f"{decisions:,.0f} admissions/s  ({parked:,} set aside under a cause)")
    print(f"  plain heapq    {base_s:.3f} s  {base_s / N * 1e6:.2f} us/task")
    print(f"  per-task cost ratio {ratio:.2f}x (goal <= 2.5x); rounds "
          + " ".join(f"{r:.2f}" for r in sorted(ratios)))
    sampler_pct, measured = bench_sampler()
    print(f"sampler: full sample with 50 running tasks ({measured} measured): "
          f"{sampler_pct * 10:.2f} ms CPU per sample = {sampler_pct:.2f}% of a core at 1 s "
          "(goal < 1%)")
    print(f"load average {os.getloadavg()[0]:.2f}")
    print(f"RESULT ratio={ratio:.2f} decisions_per_s={decisions:.0f} "
          f"sampler_cpu_pct={sampler_pct:.2f}")


if __name__ == "__main__":
    main()
