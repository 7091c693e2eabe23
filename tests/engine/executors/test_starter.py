"""How a task's command is started (starter.py): the memfd helper or /bin/sh joins the task's
cgroup and enters its directory before the command runs, and an ended task's cgroup is
reused only empty. Real processes through the real LocalExecutor, in the containment mode
this machine has (`auto`: task cgroups where l3tui's cgroup is delegated) and in the forced
`subreaper` mode, where no cgroup is joined."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from l3tui.engine.executors import starter
from l3tui.engine.executors.base import CommandJob, ProcessResult
from l3tui.engine.executors.local import LocalExecutor
from tests.conftest import live_processes

MODES = ["auto", "subreaper"]
PROBE = ('echo "argv0=$0"; pwd; sed -n "s/^0:://p" /proc/self/cgroup; '
         "cat /proc/self/personality; exec ls -l /proc/self/fd/")  # fmt: skip


async def run(ex: LocalExecutor, job: CommandJob) -> tuple[ProcessResult, list[str]]:
    lines: list[str] = []
    proc = ex.start(job, None, lines.extend, lambda name, value: None)
    return await proc.wait(), lines


def sh(script: str, cwd: str | None = None) -> CommandJob:
    return CommandJob(("sh", "-c", script), "/bin/sh", dict(os.environ), cwd, 30.0)


async def check_started_right(mode: str, tmp_path: Path, argv0: str) -> None:
    ex = LocalExecutor(1 << 20, 1.0)
    try:
        result, lines = await run(ex, sh(PROBE, cwd=str(tmp_path)))
        print(ex.mode, lines)
        assert result.exit_code == 0, lines
        assert lines[0] == f"argv0={argv0}"
        assert lines[1] == str(tmp_path)
        if ex.mode == "cgroup":
            assert lines[2].startswith(ex.containment.home.rel + "/task-"), lines
        else:
            assert "/l3tui-" not in lines[2]
        assert int(lines[3], 16) == 0, "a personality (READ_IMPLIES_EXEC?) leaked into the task"
        assert not [line for line in lines[4:] if "memfd:" in line], "the helper's fd leaked"
    finally:
        await ex.close()


@pytest.mark.parametrize("mode", MODES)
async def test_the_helper_joins_the_cgroup_and_enters_the_directory(mode, tmp_path, monkeypatch):
    monkeypatch.setenv("L3TUI_CONTAINMENT", mode)
    if starter.helper_path() is None:
        pytest.skip("no helper on this machine (not x86-64, or no memfd): /bin/sh is used")
    await check_started_right(mode, tmp_path, argv0="sh")


@pytest.mark.parametrize("mode", MODES)
async def test_without_the_helper_sh_does_the_same(mode, tmp_path, monkeypatch):
    monkeypatch.setenv("L3TUI_CONTAINMENT", mode)
    monkeypatch.setattr(starter, "_helper_tried", True)
    monkeypatch.setattr(starter, "_helper", None)
    await check_started_right(mode, tmp_path, argv0="/bin/sh")


@pytest.mark.parametrize("helper", [True, False])
async def test_a_missing_program_or_directory_is_said_in_the_log(helper, tmp_path, monkeypatch):
    if not helper:
        monkeypatch.setattr(starter, "_helper_tried", True)
        monkeypatch.setattr(starter, "_helper", None)
    ex = LocalExecutor(1 << 20, 1.0)
    try:
        gone = CommandJob(("gone",), str(tmp_path / "gone"), dict(os.environ), str(tmp_path), 30.0)
        result, lines = await run(ex, gone)
        assert result.exit_code == 127, lines
        assert lines and ("cannot be executed" in lines[-1] or "not found" in lines[-1]), lines
        result, lines = await run(ex, sh("exit 0", cwd=str(tmp_path / "nowhere")))
        assert result.exit_code in (2, 126), lines  # dash's `cd` failure exits 2 with -e off
        assert lines and ("working directory" in lines[-1] or "cd" in lines[-1]), lines
    finally:
        await ex.close()


async def test_a_reused_cgroup_holds_nothing_of_its_previous_task(tmp_path, monkeypatch):
    """Task A leaves a process that ignores SIGTERM (`setsid`, so not in its group); it is
    killed with A's cgroup, and only then is the cgroup handed to task B, which finds
    itself alone in it."""
    monkeypatch.setenv("L3TUI_CONTAINMENT", "auto")
    ex = LocalExecutor(1 << 20, 0.3)
    try:
        leave = ("trap '' TERM; setsid sh -c 'trap \"\" TERM; echo $$; exec sleep 1021.71' "
                 "</dev/null & sleep 0.2")  # fmt: skip
        _, lines = await run(ex, sh(leave, cwd=str(tmp_path)))
        if ex.mode != "cgroup":
            pytest.skip(f"no task cgroups on this machine ({ex.containment.describe()})")
        escapee = int(lines[0])
        assert not live_processes([escapee]), "the escapee outlived its task"
        assert ex.containment.home is not None
        free = list(ex.containment.home._free)
        assert len(free) == 1, "the emptied cgroup was not kept for reuse"
        result, lines = await run(ex, sh(f"exec cat {free[0].procs_file}"))
        assert result.exit_code == 0
        assert len(lines) == 1, f"task B shares its cgroup with {lines}"
    finally:
        await ex.close()  # what is left is killed by the sweep fixture (environment kept)


async def test_a_cgroup_whose_task_turned_its_knobs_is_not_reused(monkeypatch):
    """A task lowers a limit in its own cgroup (it may: the cgroup is its user's); the next
    task must not inherit it: the cgroup is removed, not kept."""
    monkeypatch.setenv("L3TUI_CONTAINMENT", "auto")
    ex = LocalExecutor(1 << 20, 0.3)
    try:
        await run(ex, sh("exit 0"))
        if ex.mode != "cgroup":
            pytest.skip(f"no task cgroups on this machine ({ex.containment.describe()})")
        assert ex.containment.home is not None
        (cgroup,) = ex.containment.home._free
        result, lines = await run(ex, sh(f"echo 0 > {cgroup.path}/cgroup.max.depth"))
        assert result.exit_code == 0, lines
        assert cgroup not in ex.containment.home._free
        assert not cgroup.path.exists(), "the cgroup was neither kept nor removed"
        home = ex.containment.home
        mount = str(home.path)[: -len(home.rel)]
        result, lines = await run(ex, sh(
            f'exec cat "{mount}$(sed -n "s/^0:://p" /proc/self/cgroup)/cgroup.max.depth"'))
        assert lines == ["max"], lines
    finally:
        await ex.close()


async def test_the_helper_fd_closed_and_reused_by_another_file(tmp_path, monkeypatch):
    """Something in the process closes the helper's fd and the number goes to another file
    (an executable script here): tasks still run their own command, never that file."""
    monkeypatch.setenv("L3TUI_CONTAINMENT", "subreaper")
    path = starter.helper_path()
    if path is None:
        pytest.skip("no helper on this machine (not x86-64, or no memfd): /bin/sh is used")
    fd = int(path.rsplit("/", 1)[1])
    intruder = tmp_path / "intruder"
    intruder.write_text("#!/bin/sh\necho intruder\n")
    intruder.chmod(0o700)
    other = os.open(intruder, os.O_RDONLY)
    os.dup2(other, fd)
    os.close(other)
    ex = LocalExecutor(1 << 20, 1.0)
    try:
        result, lines = await run(ex, sh("echo mine", cwd=str(tmp_path)))
        assert (result.exit_code, lines) == (0, ["mine"])
        assert starter.helper_path() != path
    finally:
        await ex.close()
        os.close(fd)


@pytest.mark.parametrize("mode", MODES)
async def test_an_orphan_that_ended_during_its_task_is_reaped(mode, monkeypatch):
    """A task's grandchild outlives its parent (so it re-parents to l3tui, the subreaper)
    and ends before the task: a zombie child of l3tui that nobody waits for. The sweep
    after the task (in cgroup mode it reads only l3tui's own children) reaps it."""
    monkeypatch.setenv("L3TUI_CONTAINMENT", mode)
    ex = LocalExecutor(1 << 20, 1.0)
    try:
        result, lines = await run(ex, sh("(sleep 0.05 >/dev/null & echo $!); sleep 0.5"))
        assert result.exit_code == 0, lines
        pid = int(lines[0])
        async with asyncio.timeout(30):
            while os.path.exists(f"/proc/{pid}"):  # a zombie still has its /proc entry
                await asyncio.sleep(0.05)
        print(ex.containment.describe(), "swept", ex.containment.orphans.swept)
    finally:
        await ex.close()


@pytest.mark.parametrize("mode", MODES)
async def test_tasks_at_once_each_get_all_their_output_and_their_own_exit(mode, monkeypatch):
    """The tasks' pipes and exit pidfds share one epoll set the loop watches: tasks running at
    once, each printing more than its pipe holds, each get every line of theirs and their own
    exit status; closing the executor closes the set."""
    monkeypatch.setenv("L3TUI_CONTAINMENT", mode)
    ex = LocalExecutor(64 << 20, 1.0)
    try:
        jobs = [sh(f"seq 1 150000 | sed 's/^/{i}:/'; exit {i}") for i in range(6)]
        results = await asyncio.gather(*(run(ex, job) for job in jobs))
        for i, (result, lines) in enumerate(results):
            assert result.exit_code == i
            assert len(lines) == 150000, (i, len(lines))
            assert (lines[0], lines[-1]) == (f"{i}:1", f"{i}:150000")
        watch = ex._watch
        assert watch is not None and not watch.callbacks  # every fd of theirs removed
    finally:
        await ex.close()
    assert watch.epoll.closed
