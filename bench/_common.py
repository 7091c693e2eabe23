"""Shared bench helpers: a throwaway config directory and a Runtime on a temp state dir."""

from __future__ import annotations

import tempfile
import textwrap
from pathlib import Path

from l3tui.config.schema import TaskDef, WorkflowDef


def temp_config(scheduling: str = "", actions: str = "actions: {}\n") -> Path:
    root = Path(tempfile.mkdtemp(prefix="l3bench-config-"))
    (root / "l3-workflows.yml").write_text(
        "workflows:\n  placeholder:\n    name: p\n    tasks: [{id: a, action: noop}]\n"
    )
    (root / "l3-scheduling.yml").write_text(textwrap.dedent(scheduling) or "scheduling: {}\n")
    (root / "l3-actions.yml").write_text(textwrap.dedent(actions))
    return root


def lanes_workflow(lanes: int, length: int, action: str) -> WorkflowDef:
    """`lanes` chains of `length` tasks each, all feeding one sink task."""
    tasks = []
    ends = []
    for lane in range(lanes):
        previous: list[str] = []
        for step in range(length):
            task_id = f"l{lane}_{step}"
            tasks.append(TaskDef(id=task_id, action=action, dependencies=previous))
            previous = [task_id]
        ends.extend(previous)
    tasks.append(TaskDef(id="sink", action=action, dependencies=ends))
    return WorkflowDef(name=f"{lanes}x{length}", tasks=tasks)


async def time_in_runtime(definition: WorkflowDef, scheduling: str, actions: str = "actions: {}\n"
                          ) -> float:  # fmt: skip
    """Seconds to run `definition` to success through a whole Runtime (durable store,
    sampler, alerts) on a fresh state dir; start-up and shutdown are not counted."""
    import shutil
    import time

    from l3tui.config import load_config
    from l3tui.runtime import Runtime

    config = load_config(temp_config(scheduling, actions))
    state = Path(tempfile.mkdtemp(prefix="l3bench-state-"))
    async with Runtime(config, state, actor="bench") as rt:
        execution = rt.engine.create("bench", definition=definition)
        started = time.perf_counter()
        rt.engine.start(execution)
        result = await rt.wait(execution.id)
        took = time.perf_counter() - started
    shutil.rmtree(state, ignore_errors=True)
    assert result == "succeeded", result
    return took


def load_average() -> str:
    """The 1/5/15-minute load averages, to print beside every figure (a shared machine)."""
    import os

    return "/".join(f"{x:.2f}" for x in os.getloadavg())
