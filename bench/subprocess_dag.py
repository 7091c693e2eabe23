"""Process spawning through the engine vs GNU make: `true` tasks in a DAG (lanes of 10 into
one sink), parallelism 2. The per-task slope from two sizes (so start-up costs cancel) is
compared with `make -j2` on a generated Makefile of the same DAG. Goal: ratio <= 1.5."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import lanes_workflow, temp_config
from l3tui.config import load_config
from l3tui.config.schema import WorkflowDef

SIZES = (300, 1200)  # tasks, roughly (lanes of 10 plus a sink)
REPEAT = 5  # the fastest run of each: interference only ever adds time
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
    from l3tui.engine.runtime import Runtime

    config = load_config(
        temp_config(
            """
        scheduling:
          resource_limits: {max_concurrent_tasks: 2}
    """,
            ACTIONS,
        )
    )
    state = Path(tempfile.mkdtemp(prefix="l3bench-state-"))
    async with Runtime(config, state, actor="bench") as rt:
        execution = rt.engine.create("bench", definition=definition)
        started = time.perf_counter()
        rt.engine.start(execution)
        result = await rt.wait(execution.id)
        took = time.perf_counter() - started
    assert result == "succeeded", result
    shutil.rmtree(state, ignore_errors=True)
    return took


def slope(times: dict[int, float]) -> float:
    (n1, t1), (n2, t2) = sorted(times.items())
    return (t2 - t1) / (n2 - n1)


def main() -> None:
    if shutil.which("make") is None:
        sys.exit("GNU make is needed for the baseline")
    make_t: dict[int, float] = {}
    eng_t: dict[int, float] = {}
    for size in SIZES:
        definition = lanes_workflow(size // 10, 10, "true")
        tasks = len(definition.tasks)
        make_t[tasks] = min(time_make(definition) for _ in range(REPEAT))
        eng_t[tasks] = min(asyncio.run(time_engine(definition)) for _ in range(REPEAT))
        print(f"{tasks:5d} tasks: make -j2 {make_t[tasks]:.3f}s   l3tui {eng_t[tasks]:.3f}s")
    make_slope, eng_slope = slope(make_t), slope(eng_t)
    print(f"per-task slope: make {make_slope * 1e3:.3f} ms, l3tui {eng_slope * 1e3:.3f} ms")
    print(
        f"RESULT ratio={eng_slope / make_slope:.2f} l3tui_ms_per_task={eng_slope * 1e3:.3f} "
        f"make_ms_per_task={make_slope * 1e3:.3f}"
    )


if __name__ == "__main__":
    main()
