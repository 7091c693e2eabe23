"""Hostile cases of the Dask executor, against real `dask scheduler` / `dask worker`
processes: a worker killed mid-task, cancel of a running remote tree, the scheduler killed
and started again, two identical commands. A module cluster (w1 declares `solo=1`, w2
nothing) serves the first ones; the scheduler test has a cluster of its own."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.conftest import live_processes
from tests.dask_cluster import SH_ACTION, DaskCluster, running_cluster

pytest.importorskip("distributed")

ACTIONS = SH_ACTION


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaskCluster]:
    with running_cluster(tmp_path_factory.mktemp("dask-faults"), w1="solo=1", w2="") as dask:
        yield dask


def scheduling(address: str) -> str:
    return f"""
    scheduling:
      resource_limits: {{max_concurrent_tasks: 8, max_cpu_usage: 100, max_memory_usage: 100}}
      pools: {{solo: 2}}
      execution: {{grace_period: 1s, default_timeout: 60s}}
      executor: {{kind: dask, address: "{address}"}}
    """


def attempts(state_dir: Path, exec_id: str) -> list[tuple[str, int, str, str]]:
    conn = sqlite3.connect(f"file:{state_dir / 'l3tui.db'}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT task_id, attempt, state, error FROM task_attempts WHERE "
                            "execution_id = ? ORDER BY task_id, attempt", (exec_id,)).fetchall()
    finally:
        conn.close()


def placements(state_dir: Path, exec_id: str) -> list[dict]:
    conn = sqlite3.connect(f"file:{state_dir / 'l3tui.db'}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT data FROM events WHERE kind = 'task_placed' AND "
                            "execution_id = ? ORDER BY id", (exec_id,)).fetchall()
    finally:
        conn.close()
    return [json.loads(data) for (data,) in rows]


async def until(predicate, timeout: float = 30.0, interval: float = 0.05):
    async with asyncio.timeout(timeout):
        while not (result := predicate()):
            await asyncio.sleep(interval)
        return result


async def test_cancel_kills_the_remote_tree_and_frees_the_workers_slot(
    cluster, make_config, runtime_for
):
    # `solo` exists once in the cluster (on w1): until the cancelled attempt's runner has
    # ended its tree and returned, the next task needing it cannot start. A Future.cancel()
    # alone would leave the tree running and the slot taken.
    config = make_config("""
    workflows:
      hog:
        name: hog
        tasks:
          - id: hog
            action: sh
            parameters: {cmd: "sleep 1021.51 & setsid sleep 1021.52 & sleep 1021.53; wait"}
            resources: {pools: {solo: 1}}
      next:
        name: next
        tasks:
          - id: next
            action: sh
            parameters: {cmd: "echo got the slot"}
            resources: {pools: {solo: 1}}
    """, actions=ACTIONS, scheduling=scheduling(cluster.address))
    async with runtime_for(config) as rt:
        hog = await rt.run_workflow("hog")
        tree = await until(lambda: len(found := [p for m in ("1021.51", "1021.52", "1021.53")
                                                 for p in cluster.pids(f"sleep {m}", "sleep")]) == 3
                           and found)  # fmt: skip
        worker = psutil.Process(cluster.pid("w1"))
        assert {p.pid for p in worker.children(recursive=True)} >= set(tree)  # on w1
        assert (await rt.cancel(hog.execution_id)).applied
        assert await asyncio.wait_for(rt.wait(hog.execution_id), 30) == "cancelled"
        await until(lambda: live_processes(tree) == [], timeout=15)
        follow = await rt.run_workflow("next")
        assert await asyncio.wait_for(rt.wait(follow.execution_id), 30) == "succeeded"
        task = rt.execution(follow.execution_id).tasks[0]
        assert task.worker == "w1" and task.last_line == "got the slot"


async def test_a_timeout_kills_the_remote_tree(cluster, make_config, runtime_for):
    config = make_config("""
    workflows:
      slow:
        name: slow
        tasks:
          - id: slow
            action: sh
            parameters: {cmd: "sleep 1021.54 & sleep 1021.55; wait"}
            timeout: 1s
    """, actions=ACTIONS, scheduling=scheduling(cluster.address))
    async with runtime_for(config) as rt:
        result = await rt.run_workflow("slow")

        def both():
            found = cluster.pids("sleep 1021.54", "sleep") + cluster.pids("sleep 1021.55", "sleep")
            return found if len(found) == 2 else None

        tree = await until(both)
        assert await asyncio.wait_for(rt.wait(result.execution_id), 30) == "failed"
        assert rt.execution(result.execution_id).tasks[0].state == "timed_out"
        await until(lambda: live_processes(tree) == [], timeout=15)


async def test_two_identical_commands_both_run(cluster, make_config, runtime_for, tmp_path):
    # Dask would run identical pure calls once; every attempt is its own key.
    out = tmp_path / "ran.txt"
    config = make_config(f"""
    workflows:
      twice:
        name: twice
        tasks:
          - {{id: a, action: sh, parameters: {{cmd: "echo ran >> {out}"}}}}
          - {{id: b, action: sh, parameters: {{cmd: "echo ran >> {out}"}}}}
    """, actions=ACTIONS, scheduling=scheduling(cluster.address))
    async with runtime_for(config) as rt:
        first = await rt.run_workflow("twice")
        second = await rt.run_workflow("twice")
        for result in (first, second):
            assert await asyncio.wait_for(rt.wait(result.execution_id), 30) == "succeeded"
    assert out.read_text() == "ran\n" * 4


@pytest.mark.slow
async def test_a_worker_killed_mid_task_loses_the_attempt_which_is_retried_elsewhere(
    cluster, make_config, runtime_for, state_dir
):
    config = make_config("""
    workflows:
      victim:
        name: victim
        tasks:
          - id: v
            action: sh
            parameters: {cmd: 'if [ "$L3_ATTEMPT" = 1 ]; then sleep 1021.56; fi; echo survived'}
            retries: 2
            retry_delay: 200
    """, actions=ACTIONS, scheduling=scheduling(cluster.address))
    try:
        async with runtime_for(config) as rt:
            result = await rt.run_workflow("victim")
            exec_id = result.execution_id
            run = rt.engine.executions[exec_id].tasks["v"]
            sleeper = await until(lambda: cluster.pids("sleep 1021.56", "sleep"))
            name = await until(lambda: run.worker)
            cluster.kill(name)
            assert await asyncio.wait_for(rt.wait(exec_id), 60) == "succeeded"
            task = rt.execution(exec_id).tasks[0]
            assert task.attempt == 2 and task.last_line == "survived"
            assert task.worker != name
        rows = attempts(state_dir, exec_id)
        assert rows[0][:3] == ("v", 1, "interrupted")
        assert "lost with its worker" in rows[0][3], rows[0]
        assert rows[1][:3] == ("v", 2, "succeeded")
        assert [p["worker"] for p in placements(state_dir, exec_id)] == [name, task.worker]
        # The worker's reaper ended the task it left behind.
        await until(lambda: live_processes(sleeper) == [], timeout=15)
    finally:
        cluster.start_worker(name, "solo=1" if name == "w1" else "")
        cluster.wait_workers(name)


@pytest.mark.slow
async def test_the_scheduler_killed_loses_attempts_alerts_and_reconnects_when_back(
    tmp_path, make_config, runtime_for, state_dir
):
    dask = DaskCluster(tmp_path / "dask")
    try:
        dask.start_scheduler()
        dask.start_worker("w1")
        dask.wait_workers("w1")
        config = make_config("""
        workflows:
          long:
            name: long
            tasks:
              - id: l
                action: sh
                parameters: {cmd: 'if [ "$L3_ATTEMPT" = 1 ]; then sleep 1021.57; fi; echo back'}
                retries: 6
                retry_delay: 2000
                retry_backoff: 1
        """, actions=ACTIONS, scheduling=scheduling(dask.address))
        async with runtime_for(config) as rt:
            result = await rt.run_workflow("long")
            exec_id = result.execution_id
            run = rt.engine.executions[exec_id].tasks["l"]
            sleeper = await until(lambda: dask.pids("sleep 1021.57", "sleep"))
            await until(lambda: run.worker)
            dask.kill("scheduler")

            def lost_alert():
                return [a for a in rt.snapshot().alerts
                        if a.rule == "dask_scheduler_lost" and a.state == "raised"]

            await until(lost_alert)
            await until(lambda: run.attempt >= 2 or run.state == "retrying")
            # The worker lost its scheduler and closed: its runner ended the tree first.
            await until(lambda: live_processes(sleeper) == [], timeout=30)
            [view] = rt.cluster()
            assert view.state in ("lost", "connecting"), view
            dask.start_scheduler()
            dask.start_worker("w2")
            dask.wait_workers("w2")
            assert await asyncio.wait_for(rt.wait(exec_id), 90) == "succeeded"
            await until(lambda: rt.cluster()[0].state == "connected")
            assert not lost_alert()
            assert [a.state for a in rt.snapshot().alerts
                    if a.rule == "dask_scheduler_lost"] in ([], ["resolved"])
        rows = attempts(state_dir, exec_id)
        assert rows[0][2] == "interrupted" and "scheduler" in rows[0][3], rows
        assert rows[-1][2] == "succeeded"
    finally:
        dask.stop()


def test_sigkill_of_the_cluster_leaves_nothing(tmp_path):
    """The fixture's own promise: stop() ends every process it started."""
    dask = DaskCluster(tmp_path / "dask")
    dask.start_scheduler()
    pid = dask.pid("scheduler")
    dask.stop()
    assert live_processes([pid]) == []


@pytest.mark.slow
async def test_kill_9_of_l3tui_ends_its_remote_tasks(cluster, make_config, tmp_path):
    # Nobody is left to set the cancellation Event: the scheduler drops the dead client's
    # keys, the runner sees its key cancelled on the worker and ends the tree.
    import subprocess
    import sys

    config = make_config("""
    workflows:
      orphan:
        name: orphan
        tasks:
          - {id: o, action: sh, parameters: {cmd: "sleep 1021.58 & sleep 1021.59; wait"}}
    """, actions=ACTIONS, scheduling=scheduling(cluster.address))
    l3tui = str(Path(sys.executable).with_name("l3tui"))
    argv = [l3tui, "run", "orphan", "--config", str(config), "--state",
            str(tmp_path / "run-state")]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL,  # noqa: ASYNC220 (runs on)
                            stderr=subprocess.DEVNULL)
    try:
        def both():
            found = cluster.pids("sleep 1021.58", "sleep") + cluster.pids("sleep 1021.59", "sleep")
            return found if len(found) == 2 else None

        tree = await until(both, timeout=60)
        proc.kill()
        proc.wait()
        await until(lambda: live_processes(tree) == [], timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
