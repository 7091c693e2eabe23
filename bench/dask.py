"""The Dask executor's per-task cost: 200 independent `true` tasks through a whole Runtime
(durable store) on the local executor and on a Dask cluster of 2 workers x 2 threads on
this machine (a `dask scheduler` and two `dask worker` processes started here), both at
parallelism 4, in the same run. Also measured for scale: plain `client.submit` of the same
200 `subprocess.run(["true"])` calls (no l3tui). Each figure is the fastest of REPEAT runs
(interference only ever adds time). Last line: RESULT ratio=<dask/local> ...

No goal is set: a remote attempt costs an RPC to the scheduler (its cancellation Event),
a thread on the worker and two network hops for its result, where a local one costs a
posix_spawn; the ratio says what running elsewhere costs per task when the task is nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# This file is named like the package it measures: its folder must not shadow `dask`.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from bench._common import time_in_runtime  # noqa: E402 (after the path is fixed)
from l3tui.config.schema import TaskDef, WorkflowDef  # noqa: E402

TASKS = 200
REPEAT = 3
ACTIONS = """
actions:
  true:
    command: ["true"]
"""
LIMITS = "resource_limits: {max_concurrent_tasks: 4, max_cpu_usage: 100, max_memory_usage: 100}"


def workflow() -> WorkflowDef:
    return WorkflowDef(name="flat", tasks=[TaskDef(id=f"t{i}", action="true")
                                           for i in range(TASKS)])  # fmt: skip


def start_cluster(root: Path) -> tuple[str, list[subprocess.Popen[bytes]]]:
    dask = str(Path(sys.executable).with_name("dask"))
    info = root / "scheduler.json"
    procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", "0",
                               "--no-dashboard", "--scheduler-file", str(info)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)]  # fmt: skip
    deadline = time.monotonic() + 60
    while not info.exists() or not info.read_text().strip():
        if time.monotonic() > deadline:
            raise SystemExit("no scheduler within 60 s")
        time.sleep(0.1)
    address = json.loads(info.read_text())["address"]
    for name in ("b1", "b2"):
        log = root / f"{name}.log"
        with open(log, "wb") as out:
            procs.append(subprocess.Popen(
                [dask, "worker", address, "--nthreads", "2", "--no-nanny", "--no-dashboard",
                 "--name", name, "--host", "127.0.0.1", "--local-directory", str(root / name)],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True))  # fmt: skip
        while "Registered to:" not in log.read_text(errors="replace"):
            if time.monotonic() > deadline:
                raise SystemExit(f"worker {name} did not register")
            time.sleep(0.1)
    return address, procs


async def plain_submit(address: str) -> float:
    """200 subprocess runs through bare `client.submit` (pure=False), 4 at a time per the
    cluster's threads: Dask's own floor for this work."""
    from distributed import Client

    async with Client(address, asynchronous=True) as client:
        await client.submit(subprocess.run, ["true"], pure=False)  # warm up
        started = time.perf_counter()
        futures = [client.submit(subprocess.run, ["true"], pure=False) for _ in range(TASKS)]
        await client.gather(futures)
        return time.perf_counter() - started


async def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="l3bench-dask-"))
    address, procs = start_cluster(root)
    try:
        local_s = min([await time_in_runtime(workflow(), f"scheduling:\n  {LIMITS}\n", ACTIONS)
                       for _ in range(REPEAT)])  # fmt: skip
        remote = (f"scheduling:\n  {LIMITS}\n  executor: {{kind: dask, address: "
                  f'"{address}"}}\n')  # fmt: skip
        await time_in_runtime(workflow(), remote, ACTIONS)  # warm up: connect, ship the runner
        dask_s = min([await time_in_runtime(workflow(), remote, ACTIONS)
                      for _ in range(REPEAT)])  # fmt: skip
        plain_s = min([await plain_submit(address) for _ in range(REPEAT)])
    finally:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    load = os.getloadavg()[0]
    print(f"{TASKS} `true` tasks at parallelism 4 (fastest of {REPEAT}; load average {load:.1f})")
    print(f"  local executor        {local_s:6.2f} s  {local_s / TASKS * 1000:6.2f} ms/task")
    print(f"  dask executor         {dask_s:6.2f} s  {dask_s / TASKS * 1000:6.2f} ms/task "
          f"(2 workers x 2 threads on this machine)")
    print(f"  plain client.submit   {plain_s:6.2f} s  {plain_s / TASKS * 1000:6.2f} ms/task "
          "(subprocess.run, no l3tui)")
    print(f"RESULT ratio={dask_s / local_s:.1f} dask_ms_per_task={dask_s / TASKS * 1000:.2f} "
          f"local_ms_per_task={local_s / TASKS * 1000:.2f} "
          f"plain_submit_ms_per_task={plain_s / TASKS * 1000:.2f} load={load:.1f}")


if __name__ == "__main__":
    asyncio.run(main())
