"""The engine with real processes: cancel, timeout, pause/resume, Ctrl-C of `l3tui run`,
output floods, literal parameters. No part of ours is mocked."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import L3TUI, descendants_by_marker, group_members, live_processes

TREE_ACTIONS = """
actions:
  tree:
    command: [sh, -c, 'echo started; sleep "$1" & sleep "$1" & wait', sh, "${seconds}"]
  sleep:
    command: [sleep, "${seconds}"]
  flood:
    command: [sh, -c, 'head -c "$1" /dev/zero | tr "\\0" "x" | fold -w 99; echo; echo "L3METRIC flood_done=1"; echo last-line', sh, "${bytes}"]
  echo_args:
    command: [python3, -c, 'import sys, json; print(json.dumps(sys.argv[1:]))', "${a}", "${b}", "${c}", "${d}"]
"""


def tree_workflow(seconds: int, timeout: str = "60s", extra: str = "") -> str:
    return f"""
    workflows:
      tree:
        name: tree
        tasks:
          - id: spawn
            action: tree
            parameters: {{seconds: {seconds}}}
            timeout: {timeout}
            {extra}
          - id: after
            action: sleep
            parameters: {{seconds: 0}}
            dependencies: [spawn]
    """


EXIT_SLACK_S = 5.0
"""How long after its grace period `l3tui run` may take to exit (SIGKILL delivery, the
store's last commit, interpreter teardown) on a loaded machine: the bound only has to tell
"killed after the grace period" from "waited for the task's 1,000 s sleep"."""


async def wait_for(predicate, timeout: float = 30.0, interval: float = 0.02):
    async with asyncio.timeout(timeout):
        while not (result := predicate()):
            await asyncio.sleep(interval)
        return result


async def started_tree(rt, marker: str) -> tuple[str, int]:
    result = await rt.run_workflow("tree")
    assert result.applied, result.message
    exec_id = result.execution_id
    run = rt.engine.executions[exec_id].tasks["spawn"]
    await wait_for(lambda: len(descendants_by_marker(f"sleep {marker}")) == 2)
    return exec_id, run.pgid


async def test_cancel_kills_grandchildren(make_config, runtime_for):
    config = make_config(tree_workflow(1001), actions=TREE_ACTIONS)
    async with runtime_for(config) as rt:
        exec_id, pgid = await started_tree(rt, "1001")
        grandchildren = descendants_by_marker("sleep 1001")
        result = await rt.cancel(exec_id)
        assert result.applied
        state = await asyncio.wait_for(rt.wait(exec_id), 60)
        assert state == "cancelled"
        assert live_processes(grandchildren) == []
        assert group_members(pgid) == []
        view = rt.execution(exec_id)
        states = {t.task_id: t.state for t in view.tasks}
        assert states == {"spawn": "cancelled", "after": "cancelled"}


async def test_timeout_kills_grandchildren_and_marks_timed_out(make_config, runtime_for):
    config = make_config(tree_workflow(1002, timeout="700ms"), actions=TREE_ACTIONS)
    async with runtime_for(config) as rt:
        started = time.monotonic()
        exec_id, pgid = await started_tree(rt, "1002")
        grandchildren = descendants_by_marker("sleep 1002")
        state = await asyncio.wait_for(rt.wait(exec_id), 60)
        assert state == "failed"
        assert 0.6 < time.monotonic() - started < 0.7 + EXIT_SLACK_S + 15  # not the 1002 s
        view = rt.execution(exec_id)
        spawn = next(t for t in view.tasks if t.task_id == "spawn")
        after = next(t for t in view.tasks if t.task_id == "after")
        assert spawn.state == "timed_out"
        assert "timed out after 0.7s" in spawn.reason
        assert after.state == "skipped"
        assert live_processes(grandchildren) == []
        assert group_members(pgid) == []


GATE_WAIT = "import os, sys, time\\nwhile not os.path.exists(sys.argv[1]): time.sleep(0.05)"
GATED_ACTIONS = f"""
actions:
  gated_tree:
    command: [sh, -c, '"$0" -c "$1" "$2" & "$0" -c "$1" "$2" & wait', "{sys.executable}",
              "{GATE_WAIT}", "${{gate}}"]
"""


@pytest.mark.slow
async def test_pause_stops_the_group_and_its_timeout_does_not_tick(make_config, runtime_for,
                                                                   tmp_path):
    """The task's two children wait for a file rather than for a time, so however slowly the
    test gets to look at them they are still there; the pause then lasts until the task's
    active time plus the paused wall time is well past its timeout."""
    gate = tmp_path / "gate"
    timeout_s = 5.0
    config = make_config(
        f"""
        workflows:
          slow:
            name: slow
            tasks:
              - id: work
                action: gated_tree
                parameters: {{gate: "{gate}"}}
                timeout: {int(timeout_s * 1000)}ms
        """,
        actions=GATED_ACTIONS,
    )
    async with runtime_for(config) as rt:
        result = await rt.run_workflow("slow")
        exec_id = result.execution_id
        run = rt.engine.executions[exec_id].tasks["work"]
        await wait_for(lambda: run.state == "running" and run.pgid
                       and len(group_members(run.pgid)) == 3)  # fmt: skip # sh + two waiters
        members = group_members(run.pgid)
        assert (await rt.pause(exec_id)).applied
        assert rt.execution(exec_id).state == "paused"
        await wait_for(
            lambda: all(psutil.Process(pid).status() == psutil.STATUS_STOPPED for pid in members)
        )

        def shown_elapsed() -> float:
            view = next(t for t in rt.execution(exec_id).tasks if t.task_id == "work")
            return view.elapsed(time.time())

        frozen_at = shown_elapsed()
        assert frozen_at < timeout_s, "the machine is too slow for this test's timeout"
        # Wall time passes beyond the timeout while paused: it must not fire.
        await asyncio.sleep(timeout_s - frozen_at + 1.0)
        assert run.state == "paused"
        assert shown_elapsed() == frozen_at  # paused time is not run time
        assert all(psutil.Process(pid).status() == psutil.STATUS_STOPPED for pid in members)
        assert (await rt.resume(exec_id)).applied
        gate.touch()
        state = await asyncio.wait_for(rt.wait(exec_id), 60)
        assert state == "succeeded", rt.execution(exec_id)
        assert run.active_s < timeout_s


async def test_pause_twice_and_resume_running_are_refused(make_config, runtime_for):
    config = make_config(tree_workflow(1003), actions=TREE_ACTIONS)
    async with runtime_for(config) as rt:
        exec_id, _ = await started_tree(rt, "1003")
        assert not (await rt.resume(exec_id)).applied
        assert (await rt.pause(exec_id)).applied
        second = await rt.pause(exec_id)
        assert not second.applied and "paused" in second.message
        await rt.cancel(exec_id)
        assert await asyncio.wait_for(rt.wait(exec_id), 60) == "cancelled"


async def test_pause_and_cancel_a_single_task(make_config, runtime_for):
    config = make_config(tree_workflow(1004), actions=TREE_ACTIONS)
    async with runtime_for(config) as rt:
        exec_id, pgid = await started_tree(rt, "1004")
        assert (await rt.pause(exec_id, "spawn")).applied
        members = group_members(pgid)
        await wait_for(
            lambda: all(psutil.Process(p).status() == psutil.STATUS_STOPPED for p in members)
        )
        assert rt.execution(exec_id).state == "running"  # only the task is paused
        result = await rt.cancel(exec_id, "spawn")
        assert result.applied
        state = await asyncio.wait_for(rt.wait(exec_id), 60)
        assert state == "failed"
        tasks = {t.task_id: t.state for t in rt.execution(exec_id).tasks}
        assert tasks == {"spawn": "cancelled", "after": "skipped"}
        assert group_members(pgid) == []


def test_ctrl_c_of_l3tui_run_kills_the_tree_within_grace(make_config, tmp_path):
    config = make_config(tree_workflow(1005), actions=TREE_ACTIONS)
    proc = subprocess.Popen(
        [L3TUI, "run", "tree", "--config", str(config), "--state", str(tmp_path / "st")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 15
        while len(descendants_by_marker("sleep 1005")) < 2:
            assert time.monotonic() < deadline, "tasks never started"
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.05)
        grandchildren = descendants_by_marker("sleep 1005")
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert took < 1.0 + EXIT_SLACK_S, f"returned {took:.2f}s after Ctrl-C (grace 1s)"
    assert "cancelling" in err
    assert "Traceback" not in err
    assert live_processes(grandchildren) == []


def test_sigterm_resistant_task_is_killed_after_grace(make_config, tmp_path):
    actions = """
    actions:
      stubborn:
        command: [sh, -c, 'trap "" TERM; sleep 1006 & wait; wait']
    """
    config = make_config(
        "workflows:\n  stub:\n    name: s\n    tasks:\n      - {id: t, action: stubborn}\n",
        actions=actions,
    )
    proc = subprocess.Popen(
        [L3TUI, "run", "stub", "--config", str(config), "--state", str(tmp_path / "st")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 15
    while not descendants_by_marker("sleep 1006"):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    victims = descendants_by_marker("sleep 1006")
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    took = time.monotonic() - sent
    assert proc.returncode == 130
    assert 0.9 < took < 1.0 + EXIT_SLACK_S  # grace is 1s: SIGTERM ignored, SIGKILL after it
    assert live_processes(victims) == []


async def test_parameters_with_shell_metacharacters_stay_literal(make_config, runtime_for):
    config = make_config(
        """
        workflows:
          args:
            name: args
            tasks:
              - id: show
                action: echo_args
                parameters:
                  a: "two words"
                  b: "it's \\"quoted\\""
                  c: "$(touch /tmp/l3tui-pwned) `id`"
                  d: "; rm -rf ~ ; echo"
        """,
        actions=TREE_ACTIONS,
    )
    async with runtime_for(config) as rt:
        sub = rt.subscribe("test")
        result = await rt.run_workflow("args")
        assert await asyncio.wait_for(rt.wait(result.execution_id), 60) == "succeeded"
        lines = [line for e in sub.drain() if e.kind == "task_output" for line in e.lines]
    import json

    assert json.loads(lines[0]) == [
        "two words",
        'it\'s "quoted"',
        "$(touch /tmp/l3tui-pwned) `id`",
        "; rm -rf ~ ; echo",
    ]
    assert not Path("/tmp/l3tui-pwned").exists()


@pytest.mark.slow
async def test_one_gigabyte_of_output_stays_within_the_log_cap(make_config, runtime_for):
    scheduling = """
    scheduling:
      execution: {log_cap_mb: 2, grace_period: 1s}
    """
    config = make_config(
        """
        workflows:
          flood:
            name: flood
            tasks:
              - {id: spew, action: flood, parameters: {bytes: 1073741824}, timeout: 120s}
        """,
        actions=TREE_ACTIONS,
        scheduling=scheduling,
    )
    me = psutil.Process()
    async with runtime_for(config) as rt:
        sub = rt.subscribe("test", maxsize=2)
        rss_before = me.memory_info().rss
        peak = rss_before
        result = await rt.run_workflow("flood")
        exec_id = result.execution_id
        waiter = asyncio.ensure_future(rt.wait(exec_id))
        while not waiter.done():
            peak = max(peak, me.memory_info().rss)
            await asyncio.sleep(0.05)
        assert waiter.result() == "succeeded"
        run = rt.engine.executions[exec_id].tasks["spew"]
        log = Path(run.log_path)
        size = log.stat().st_size
        assert size <= 2 * 1024 * 1024 + 1024
        tail = log.read_bytes()[-40_000:]
        assert b"[l3tui: log capped at 2.0 MiB" in tail
        assert tail.rstrip().endswith(b"last-line")  # the end of a flood is kept
        assert run.metrics.get("flood_done") == 1.0  # metrics past the cap still count
        assert run.last_line == "last-line"
        assert sub.dropped > 0  # a slow subscriber lost events, the engine did not wait
    assert peak - rss_before < 64 * 1024 * 1024, f"RSS grew {(peak - rss_before) / 2**20:.0f} MiB"


async def test_rlimits_reach_the_process(make_config, runtime_for):
    actions = """
    actions:
      limits:
        command: [sh, -c, 'ulimit -n; ulimit -t']
    """
    config = make_config(
        """
        workflows:
          lim:
            name: lim
            tasks:
              - id: show
                action: limits
                rlimits: {open_files: 77, cpu_seconds: 9}
        """,
        actions=actions,
    )
    async with runtime_for(config) as rt:
        sub = rt.subscribe("test")
        result = await rt.run_workflow("lim")
        assert await asyncio.wait_for(rt.wait(result.execution_id), 60) == "succeeded"
        lines = [line for e in sub.drain() if e.kind == "task_output" for line in e.lines]
    assert lines[:2] == ["77", "9"]


async def test_command_not_found_names_the_binding(make_config, runtime_for):
    actions = """
    actions:
      run_flutter_tests:
        command: [flutter-does-not-exist, test]
    """
    config = make_config(
        """
        workflows:
          t:
            name: t
            tasks: [{id: tests, action: run_flutter_tests, retries: 2}]
        """,
        actions=actions,
    )
    async with runtime_for(config) as rt:
        result = await rt.run_workflow("t")
        assert await asyncio.wait_for(rt.wait(result.execution_id), 60) == "failed"
        task = rt.execution(result.execution_id).tasks[0]
    assert task.reason == (
        "command not found: flutter-does-not-exist (bound in l3-actions.yml: run_flutter_tests)"
    )
    assert task.attempt == 1  # a missing program does not appear on retry


async def test_escape_sequences_never_reach_output_events(make_config, runtime_for):
    actions = r"""
    actions:
      evil:
        command: [printf, '\033]0;pwned\007\033[2J\033[31mred\033[0m plain\r\nprogress 10%%\rprogress 100%%\n']
    """
    config = make_config(
        "workflows:\n  e:\n    name: e\n    tasks: [{id: x, action: evil}]\n", actions=actions
    )
    async with runtime_for(config) as rt:
        sub = rt.subscribe("test")
        result = await rt.run_workflow("e")
        assert await asyncio.wait_for(rt.wait(result.execution_id), 60) == "succeeded"
        lines = [line for e in sub.drain() if e.kind == "task_output" for line in e.lines]
    assert lines == ["red plain", "progress 100%"]


def test_engine_modules_never_import_textual():
    code = (
        "import sys\n"
        "import l3tui.commands.run, l3tui.commands.validate, l3tui.runtime\n"
        "import l3tui.engine.actions.builtins\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('textual', 'textual_plotext')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=os.getcwd())


async def test_a_silent_task_leaves_no_log_file_and_a_talkative_one_does(make_config, runtime_for):
    actions = """
    actions:
      quiet: {command: ["true"]}
      loud: {command: [echo, hello]}
    """
    config = make_config(
        "workflows:\n  w:\n    name: w\n    tasks:\n      - {id: q, action: quiet}\n"
        "      - {id: l, action: loud}\n",
        actions=actions,
    )
    async with runtime_for(config) as rt:
        result = await rt.run_workflow("w")
        assert await asyncio.wait_for(rt.wait(result.execution_id), 60) == "succeeded"
        tasks = {t.task_id: t for t in rt.execution(result.execution_id).tasks}
    assert not Path(tasks["q"].log_path).exists()
    assert Path(tasks["l"].log_path).read_text() == "hello\n"


async def test_an_ended_process_attempt_is_freed_without_the_cyclic_gc(make_config, runtime_for):
    """What an attempt held (its process, output capture, containment, futures, Task) goes
    when it ends, by reference counting: a cycle through it (its timeout's callback held the
    attempt that held the timeout) left ~37 objects per task for the cyclic GC, whose
    collections then cost ~17 us per task of a run."""
    import gc
    import weakref

    config = make_config(tree_workflow(0), actions=TREE_ACTIONS)
    gc.collect()
    gc.disable()
    try:
        async with runtime_for(config) as rt:
            executor = rt.engine.attempts.executor
            start = executor.start
            started: list[weakref.ref[object]] = []

            def spy(*args: object, **kwargs: object) -> object:
                proc = start(*args, **kwargs)
                started.append(weakref.ref(proc))
                return proc

            executor.start = spy  # type: ignore[method-assign]
            result = await rt.run_workflow("tree")
            assert await asyncio.wait_for(rt.wait(result.execution_id), 60) == "succeeded"
            await asyncio.sleep(0)  # the attempts' Tasks finish their last step
            assert len(started) == 2
            assert [ref() for ref in started] == [None, None]
    finally:
        gc.enable()
