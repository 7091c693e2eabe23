"""Config that would run away (issue 10, items 15-16): a loop of `after:` triggers is named
by `validate` and refused by the runtime if it gets in anyway; a config file with too many
values is refused as soon as the limit is passed, in little time and memory."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from l3tui.config import ConfigError, load_config, yamldiag, yamlpos
from l3tui.config.schema import Trigger
from l3tui.runtime import Runtime

L3TUI = Path(sys.executable).parent / "l3tui"
MB = 2**20

LOOP = """
workflows:
  compile:
    name: compile
    triggers: [{after: publish}]
    tasks: [{id: a, action: noop}]
  publish:
    name: publish
    triggers: [{after: compile, on: any}]
    tasks: [{id: b, action: noop}]
"""

CHAIN = """
workflows:
  compile:
    name: compile
    tasks: [{id: a, action: noop}]
  publish:
    name: publish
    triggers: [{after: compile}]
    tasks: [{id: b, action: noop}]
"""


def run_validate(config: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "L3TUI_CONFIG"}
    return subprocess.run([str(L3TUI), "validate", "--config", str(config)],
                          capture_output=True, text=True, timeout=120, env=env)  # fmt: skip


def test_validate_names_a_loop_of_after_triggers(make_config) -> None:
    """Item 15: before, this loop passed `validate` and ran without end in the console."""
    proc = run_validate(make_config(LOOP))
    assert proc.returncode == 1, proc.stdout
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "loop" in line]
    assert len(lines) == 1, proc.stderr
    assert lines[0].endswith(
        "l3-workflows.yml:5:24: workflows.compile.triggers[0].after: `after:` triggers form a "
        "loop: compile -> publish -> compile (each one's end starts the next), which would "
        "run forever; remove one of these triggers"
    ), lines[0]


async def test_runtime_refuses_a_trigger_loop_that_gets_past_validation(
    make_config, state_dir: Path
) -> None:
    """Item 15, second line of defence: a loop that reached the Runtime anyway (here put
    into a loaded config by hand, as a reload bug could) runs each workflow of the chain
    once, then stops with an alert naming the loop."""
    config = load_config(make_config(CHAIN))
    compile_wf = config.workflows.workflows["compile"]
    config.workflows.workflows["compile"] = compile_wf.model_copy(
        update={"triggers": [Trigger(after="publish")]}
    )
    async with Runtime(config, state_dir, actor="test") as rt:
        first = await rt.run_workflow("compile")
        assert first.applied, first.message
        async with asyncio.timeout(30):
            while not [a for a in rt.alerts.active() if a.rule == "trigger_loop"]:
                assert len(rt.engine.executions) < 50, "the trigger loop was not stopped"
                await asyncio.sleep(0.01)
        for _ in range(20):  # nothing more starts once the loop is refused
            await asyncio.sleep(0.02)
        executions = list(rt.engine.executions.values())
        assert [e.workflow_id for e in executions] == ["compile", "publish"]
        for execution in executions:
            assert await asyncio.wait_for(rt.wait(execution.id), 10) == "succeeded"
        (alert,) = [a for a in rt.alerts.active() if a.rule == "trigger_loop"]
        assert alert.severity == "error"
        assert "compile -> publish -> compile" in alert.message, alert.message


def write_many_values(config: Path) -> int:
    """A 4.9 MB workflows file (under the 5 MB limit) of ~437,000 values: one workflow with
    ~146,000 tiny tasks. Returns the line of the value that passes the 250,000 limit."""
    header = "workflows:\n  big:\n    name: big\n    tasks:\n"
    task = "      - {{id: t{0}, action: noop}}\n"
    lines, size, index = [header], len(header), 0
    while size < 4.9 * MB:
        lines.append(task.format(index))
        size += len(lines[-1])
        index += 1
    (config / "l3-workflows.yml").write_text("".join(lines), encoding="utf-8")
    # Values: the document, workflows, big, its name, the task list, then 3 per task.
    over = yamldiag.MAX_EXPANDED_NODES + 1 - 5
    return 4 + (over + 2) // 3


def test_a_file_with_too_many_values_stops_at_the_limit(tmp_path: Path) -> None:
    """Item 16: before, a 4.9 MB file of 437,000 values was read whole (28-44 s, ~600 MB)
    and only then refused; now reading stops at the value over the limit."""
    config = tmp_path / "config"
    config.mkdir()
    line = write_many_values(config)
    assert 4.8 * MB < (config / "l3-workflows.yml").stat().st_size < 5 * MB
    started = time.monotonic()
    proc = subprocess.Popen([str(L3TUI), "validate", "--config", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    peak = 0
    watched = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            peak = max(peak, watched.memory_info().rss)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.01)
    out, err = proc.communicate(timeout=120)
    took = time.monotonic() - started
    print(f"\nvalidate of a 4.9 MB file over the value limit: {took:.2f} s, "
          f"peak RSS {peak / MB:.0f} MB")  # fmt: skip
    assert proc.returncode == 1, out
    assert "Traceback" not in err
    first = err.splitlines()[0]
    assert first.startswith(f"{config}/l3-workflows.yml:{line}:"), first
    assert "file has more than 250,000 values, the most a config file may hold" in first
    assert peak < 150 * MB, f"peak RSS {peak / MB:.0f} MB"


def test_the_pure_python_reader_counts_as_it_composes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Item 16 without libyaml: the composer itself stops at the limit (here lowered to
    1,000), naming the value where it stopped; fewer values load as before."""
    monkeypatch.setattr(yaml, "__with_libyaml__", False)
    monkeypatch.setattr(yamldiag, "MAX_EXPANDED_NODES", 1_000)
    monkeypatch.setattr(yamlpos, "MAX_EXPANDED_NODES", 1_000)
    config = tmp_path / "config"
    config.mkdir()
    lines = [f"      - {{id: t{i}, action: noop}}\n" for i in range(400)]
    tasks = "".join(lines)
    (config / "l3-workflows.yml").write_text(
        f"workflows:\n  big:\n    name: big\n    tasks:\n{tasks}", encoding="utf-8"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    (issue,) = caught.value.issues
    assert (issue.line, issue.key) == (4 + (1_001 - 5 + 2) // 3, "action")
    assert "more than 1,000 values" in issue.message
    (config / "l3-workflows.yml").write_text(
        f"workflows:\n  big:\n    name: big\n    tasks:\n{''.join(lines[:200])}",
        encoding="utf-8",
    )
    assert len(load_config(config).workflows.workflows["big"].tasks) == 200

