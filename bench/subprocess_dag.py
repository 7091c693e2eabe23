"""Process spawning through the engine vs GNU make: `true` tasks in a DAG (lanes of 10 into
one sink), parallelism 2. The per-task slope from two sizes (so start-up costs cancel) is
compared with `make -j2` on a generated Makefile of the same DAG. Goal: ratio <= 1.5.
Also measured, same run: a bare asyncio.create_subprocess_exec executor of the same DAG (the
spawn path l3tui does not use: Python 3.11's child watcher starts a thread per child)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import lanes_workflow, time_in_runtime
from l3tui.config.schema import WorkflowDef

SIZES = (300, 1200)  # tasks, roughly (lanes of 10 plus a sink)
REPEAT = 5  # the fastest run of each: interference only ever adds time
SCHEDULING = """
scheduling:
  resource_limits: {max_concurrent_tasks: 2}
"""
ACTIONS = """
actions:
  true:
    command: ["true"]
"""


def makefile(definition: WorkflowDef) -> str:
    lines = [".PHONY: all " + " ".join(t.id for t in definition.tasks), "all: sink"]
    for task in definition.tasks:
        lines.append(f"{task.id}: {' '.join(task.dependencies)}")
        lines.append("\t@true")
    return "\n".join(lines) + "\n"


def time_make(definition: WorkflowDef) -> float:
    folder = Path(tempfile.mkdtemp(prefix="l3bench-make-"))
    (folder / "Makefile").write_text(makefile(definition))
    started = time.perf_counter()
    subprocess.run(["make", "-s", "-j2", "-C", str(folder)], check=True)
    return time.perf_counter() - started


async def time_engine(definition: WorkflowDef) -> float:
    return await time_in_runtime(definition, SCHEDULING, ACTIONS)


async def bare_loop(definition: WorkflowDef, spawn: Callable[[], Awaitable[None]]) -> float:
    """graphlib readiness and at most 2 `spawn()` at once, nothing else (no logs, events,
    store): the spawn mechanisms compared without the engine around them."""
    import graphlib

    sorter = graphlib.TopologicalSorter({t.id: t.dependencies for t in definition.tasks})
    sorter.prepare()
    limit = asyncio.Semaphore(2)

    async def one(node: str) -> str:
        async with limit:
            await spawn()
        return node

    started = time.perf_counter()
    running: set[asyncio.Task[str]] = set()
    while sorter.is_active():
        running |= {asyncio.ensure_future(one(n)) for n in sorter.get_ready()}
        done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            sorter.done(task.result())
    return time.perf_counter() - started


async def time_asyncio(definition: WorkflowDef) -> float:
    """asyncio.create_subprocess_exec with its output captured, as l3tui must."""

    async def spawn() -> None:
        proc = await asyncio.create_subprocess_exec(
            "true", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        await proc.communicate()

    return await bare_loop(definition, spawn)


async def time_local_executor(definition: WorkflowDef) -> float:
    """l3tui's LocalExecutor: posix_spawn + pidfd, own session, output captured."""
    from l3tui.engine.executors.base import CommandJob
    from l3tui.engine.executors.local import LocalExecutor

    executor = LocalExecutor(10 << 20, 1.0)
    job = CommandJob(("true",), shutil.which("true") or "/bin/true", dict(os.environ), None, 60.0)

    async def spawn() -> None:
        await executor.start(job, None, lambda lines: None, lambda name, value: None).wait()

    return await bare_loop(definition, spawn)


def slope(times: dict[int, float]) -> float:
    (n1, t1), (n2, t2) = sorted(times.items())
    return (t2 - t1) / (n2 - n1)


def main() -> None:
    if shutil.which("make") is None:
        sys.exit("GNU make is needed for the baseline")
    make_t: dict[int, float] = {}
    eng_t: dict[int, float] = {}
    aio_t: dict[int, float] = {}
    spawn_t: dict[int, float] = {}
    for size in SIZES:
        definition = lanes_workflow(size // 10, 10, "true")
        tasks = len(definition.tasks)
        make_t[tasks] = min(time_make(definition) for _ in range(REPEAT))
        eng_t[tasks] = min(asyncio.run(time_engine(definition)) for _ in range(REPEAT))
        aio_t[tasks] = min(asyncio.run(time_asyncio(definition)) for _ in range(REPEAT))
        spawn_t[tasks] = min(asyncio.run(time_local_executor(definition)) for _ in range(REPEAT))
        print(f"{tasks:5d} tasks: make -j2 {make_t[tasks]:.3f}s   l3tui {eng_t[tasks]:.3f}s   "
              f"bare loop: asyncio subprocess {aio_t[tasks]:.3f}s, "
              f"LocalExecutor {spawn_t[tasks]:.3f}s")
    make_slope, eng_slope = slope(make_t), slope(eng_t)
    aio_slope, spawn_slope = slope(aio_t), slope(spawn_t)
    print(f"per-task slope: make {make_slope * 1e3:.3f} ms, l3tui {eng_slope * 1e3:.3f} ms")
    print(f"spawn mechanisms in a bare loop (output captured): asyncio.create_subprocess_exec "
          f"{aio_slope * 1e3:.3f} ms ({aio_slope / make_slope:.2f}x make), posix_spawn+pidfd "
          f"LocalExecutor {spawn_slope * 1e3:.3f} ms ({spawn_slope / make_slope:.2f}x make)")
    print(f"RESULT ratio={eng_slope / make_slope:.2f} l3tui_ms_per_task={eng_slope * 1e3:.3f} "
          f"make_ms_per_task={make_slope * 1e3:.3f} asyncio_ratio={aio_slope / make_slope:.2f} "
          f"posix_spawn_ratio={spawn_slope / make_slope:.2f}")

if __name__ == "__main__":
    main()
