"""The Dask executor against a real cluster: a `dask scheduler` and two `dask worker`
processes (w1 declares `pool_a=1` and `slot=1`, w2 `slot=1`), started once for the module
and killed in teardown. Tasks run through the whole Runtime with the durable store, as
`l3tui run` runs them; nothing of ours is mocked."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.dask_cluster import SH_ACTION, DaskCluster, running_cluster

pytest.importorskip("distributed")  # the `dask` extra; `make install` installs it

ACTIONS = SH_ACTION


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaskCluster]:
    with running_cluster(tmp_path_factory.mktemp("dask"), w1="pool_a=1 slot=1", w2="slot=1") as dask:
        yield dask


def scheduling(address: str, pools: str = "{pool_a: 1, slot: 2}") -> str:
    return f"""
    scheduling:
      resource_limits: {{max_concurrent_tasks: 8, max_cpu_usage: 100, max_memory_usage: 100}}
      pools: {pools}
      execution: {{grace_period: 1s, default_timeout: 60s, log_cap_mb: 1}}
      executor: {{kind: dask, address: "{address}"}}
    """


def placed(state_dir: Path, exec_id: str) -> dict[str, list[str]]:
    """task -> the workers its attempts were placed on, from the store's events."""
    conn = sqlite3.connect(f"file:{state_dir / 'l3tui.db'}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT data FROM events WHERE kind = 'task_placed' AND "
                            "execution_id = ? ORDER BY id", (exec_id,)).fetchall()
    finally:
        conn.close()
    out: dict[str, list[str]] = {}
    for (data,) in rows:
        event = json.loads(data)
        out.setdefault(event["task_id"], []).append(event["worker"])
    return out


async def until(predicate, timeout: float = 30.0, interval: float = 0.05):
    async with asyncio.timeout(timeout):
        while not (result := predicate()):
            await asyncio.sleep(interval)
        return result


async def test_fan_out_runs_on_both_workers_and_is_recorded_as_a_local_run(
    cluster, make_config, runtime_for, state_dir
):
    # Each task takes a `slot`; each worker declares one, and l3tui's pool admits two at a
    # time: two running tasks are always on different workers.
    tasks = "\n".join(
        f"""
          - id: t{i}
            action: sh
            parameters: {{cmd: "echo line-one-{i}; sleep 0.4; echo L3METRIC answer={i}; exit {i % 2}"}}
            resources: {{pools: {{slot: 1}}}}
            retries: 0"""
        for i in range(6)
    )
    config = make_config(f"""
    workflows:
      fan:
        name: fan
        tasks:{tasks}
          - id: sink
            action: sh
            parameters: {{cmd: "echo done"}}
            executor: local
            dependencies: [t0, t1, t2, t3, t4, t5]
            conditions: [{{upstream: all_done}}]
    """, actions=ACTIONS, scheduling=scheduling(cluster.address))
    async with runtime_for(config) as rt:
        result = await rt.run_workflow("fan")
        assert result.applied, result.message
        assert await asyncio.wait_for(rt.wait(result.execution_id), 60) == "failed"
        exec_id = result.execution_id
        view = rt.execution(exec_id)
        clusters = rt.cluster()
    tasks = {t.task_id: t for t in view.tasks}
    for i in range(6):
        task = tasks[f"t{i}"]
        assert task.state == ("succeeded" if i % 2 == 0 else "failed"), task
        assert task.exit_code == i % 2
        assert task.worker in ("w1", "w2")
        assert dict(task.metrics) == {"answer": float(i)}
        log = Path(task.log_path).read_text()
        assert log == f"line-one-{i}\nL3METRIC answer={i}\n"
        assert task.pid is None  # a remote pid is never recorded as one of ours
    assert tasks["sink"].state == "succeeded" and tasks["sink"].worker == ""
    where = placed(state_dir, exec_id)
    assert {w for workers in where.values() for w in workers} == {"w1", "w2"}
    assert "sink" not in where
    conn = sqlite3.connect(f"file:{state_dir / 'l3tui.db'}?mode=ro", uri=True)
    try:
        codes = dict(conn.execute("SELECT task_id, exit_code FROM task_attempts WHERE "
                                  "execution_id = ?", (exec_id,)).fetchall())
        metrics = dict(conn.execute("SELECT task_id, value FROM task_metrics WHERE "
                                    "execution_id = ? AND name = 'answer'", (exec_id,)).fetchall())
    finally:
        conn.close()
    assert codes == {**{f"t{i}": i % 2 for i in range(6)}, "sink": 0}
    assert metrics == {f"t{i}": float(i) for i in range(6)}
    [view] = clusters
    assert view.state == "connected"
    assert {w.name for w in view.workers} == {"w1", "w2"}
    assert dict(next(w for w in view.workers if w.name == "w1").resources) == {
        "pool_a": 1.0, "slot": 1.0}


async def test_a_resource_routes_tasks_to_the_only_worker_that_declares_it(
    cluster, make_config, runtime_for, state_dir
):
    tasks = "\n".join(
        f"""
          - id: p{i}
            action: sh
            parameters: {{cmd: "echo {i}"}}
            resources: {{pools: {{pool_a: 1}}}}"""
        for i in range(4)
    )
    config = make_config(f"""
    workflows:
      pooled:
        name: pooled
        tasks:{tasks}
    """, actions=ACTIONS, scheduling=scheduling(cluster.address))
    async with runtime_for(config) as rt:
        result = await rt.run_workflow("pooled")
        assert await asyncio.wait_for(rt.wait(result.execution_id), 60) == "succeeded"
    assert placed(state_dir, result.execution_id) == {f"p{i}": ["w1"] for i in range(4)}


async def test_output_is_streamed_while_the_task_runs(cluster, make_config, runtime_for):
    config = make_config("""
    workflows:
      talk:
        name: talk
        tasks:
          - id: t
            action: sh
            parameters: {cmd: "echo first; sleep 1021.31; echo never"}
    """, actions=ACTIONS, scheduling=scheduling(cluster.address))
    async with runtime_for(config) as rt:
        result = await rt.run_workflow("talk")
        run = rt.engine.executions[result.execution_id].tasks["t"]
        await until(lambda: run.log_path and Path(run.log_path).exists()
                    and Path(run.log_path).read_text() == "first\n")
        assert run.state == "running" and run.last_line == "first"
        await until(lambda: run.worker)
        await rt.cancel(result.execution_id)
        assert await asyncio.wait_for(rt.wait(result.execution_id), 30) == "cancelled"


async def test_a_flood_is_capped_on_the_worker_and_counted(cluster, make_config, runtime_for):
    # 8 MB against a 1 MiB cap: the log keeps the head, the notice and the tail, the metric
    # printed after the cap still counts, and only about the cap crossed the network.
    config = make_config("""
    workflows:
      flood:
        name: flood
        tasks:
          - id: f
            action: sh
            parameters: {cmd: "echo head; head -c 8000000 /dev/zero | tr '\\\\0' x | fold -w 99; echo; echo L3METRIC late=7; echo the-end"}
    """, actions=ACTIONS, scheduling=scheduling(cluster.address))
    async with runtime_for(config) as rt:
        result = await rt.run_workflow("flood")
        assert await asyncio.wait_for(rt.wait(result.execution_id), 60) == "succeeded"
        task = rt.execution(result.execution_id).tasks[0]
    log = Path(task.log_path).read_bytes()
    assert log.startswith(b"head\n")
    assert b"[l3tui: log capped at 1.0 MiB" in log
    assert log.endswith(b"L3METRIC late=7\nthe-end\n")
    assert len(log) < 1.1 * 2**20
    assert dict(task.metrics) == {"late": 7.0}
    assert task.last_line == "the-end"


async def test_pause_stops_the_group_on_the_worker_and_resume_continues_it(
    cluster, make_config, runtime_for
):
    config = make_config("""
    workflows:
      nap:
        name: nap
        tasks:
          - id: n
            action: sh
            parameters: {cmd: "sleep 1021.33; echo woke"}
    """, actions=ACTIONS, scheduling=scheduling(cluster.address))
    async with runtime_for(config) as rt:
        result = await rt.run_workflow("nap")
        exec_id = result.execution_id
        [sleeper] = await until(lambda: cluster.pids("sleep 1021.33", "sleep"))
        run = rt.engine.executions[exec_id].tasks["n"]
        await until(lambda: run.worker)
        assert (await rt.pause(exec_id, "n")).applied
        proc = psutil.Process(sleeper)
        await until(lambda: proc.status() == psutil.STATUS_STOPPED)
        assert run.state == "paused"
        assert (await rt.resume(exec_id, "n")).applied
        await until(lambda: proc.status() != psutil.STATUS_STOPPED)
        await rt.cancel(exec_id)
        assert await asyncio.wait_for(rt.wait(exec_id), 30) == "cancelled"


async def test_a_console_attached_to_a_daemon_sees_the_cluster_and_the_worker(
    cluster, make_daemon
):
    from l3tui.daemon.client import RemoteRuntime

    daemon = make_daemon(workflows="""
    workflows:
      pooled:
        name: pooled
        tasks:
          - {id: p, action: sh, parameters: {cmd: "sleep 1021.34"}, resources: {pools: {pool_a: 1}}}
    """, actions=ACTIONS, scheduling=scheduling(cluster.address)).start()
    remote = RemoteRuntime(daemon.state, actor="tester@pts/9")
    await remote.connect(within_s=30)
    try:
        # The daemon connects to its default cluster as it starts: the pane has it at once.
        views = await until(lambda: [v for v in remote.cluster() if v.state == "connected"])
        assert {w.name for w in views[0].workers} == {"w1", "w2"}
        result = await remote.run_workflow("pooled")
        assert result.applied, result.message

        def worker_of_p():
            view = remote.execution(result.execution_id)
            return view is not None and view.tasks[0].worker

        assert await until(worker_of_p) == "w1"
        assert await until(lambda: [q.worker for q in remote.snapshot().running]) == ["w1"]
        running = await until(lambda: [w.running for v in remote.cluster() for w in v.workers
                                       if w.name == "w1" and w.running])
        assert running == [(f"{result.execution_id}/p/1",)]
        assert (await remote.cancel(result.execution_id)).applied
    finally:
        await remote.close()


async def test_the_console_shows_the_cluster_pane_and_the_worker_of_a_task(
    cluster, make_config, runtime_for
):
    from l3tui.dashboard.app import ConsoleApp
    from tests.dashboard.snapshot_app import screen_text

    config = make_config("""
    workflows:
      pooled:
        name: pooled
        tasks:
          - {id: p, action: sh, parameters: {cmd: "sleep 1021.35"}, resources: {pools: {pool_a: 1}}}
    """, actions=ACTIONS, scheduling=scheduling(cluster.address), dashboard="""
    dashboards:
      main:
        name: main
        layout: grid
        columns: 1
        widgets:
          - {type: cluster, title: cluster}
          - {type: task_queue, title: queue}
    """)
    async with runtime_for(config) as rt:
        app = ConsoleApp(rt, theme="l3-dark", bidi=True, ssh=False, actor="tester")
        async with app.run_test(size=(140, 40)) as pilot:
            await until(lambda: "connected" in screen_text(app) and "pool_a=1" in screen_text(app))
            result = await rt.run_workflow("pooled")
            key = f"{result.execution_id}/p/1"

            def shown():
                text = screen_text(app)
                return text if "on w1" in text and key in text else None

            text = await until(shown)
            assert "slot=1" in text and "w2" in text
            await rt.cancel(result.execution_id)
            await pilot.pause()
        assert await asyncio.wait_for(rt.wait(result.execution_id), 30) == "cancelled"
