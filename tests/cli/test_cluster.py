"""`l3tui cluster local|ssh` as a user runs it: a real scheduler and workers as processes
of their own, their address printed, a workflow run on them, Ctrl-C stopping every one."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.conftest import L3TUI, live_processes

pytest.importorskip("distributed")


def address_from(proc: subprocess.Popen[str]) -> tuple[str, list[str]]:
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("scheduler "):
            return line.split()[1], lines
    raise AssertionError(f"no address printed: {lines}")


@pytest.mark.slow
async def test_cluster_local_starts_workers_with_resources_and_ctrl_c_stops_them(
    tmp_path, make_config, runtime_for, state_dir
):
    cluster_state = tmp_path / "cluster-state"
    argv = [L3TUI, "cluster", "local", "--state", str(cluster_state), "--port", "0",
            "--workers", "2", "--resources", "builder=1"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE,  # noqa: ASYNC220 (it runs on)
                            stderr=subprocess.PIPE, text=True)
    try:
        address, _ = await asyncio.to_thread(address_from, proc)
        info = json.loads((cluster_state / "cluster" / "cluster.json").read_text())
        assert info["address"] == address and set(info["pids"]) == {
            "scheduler", "worker-1", "worker-2"}
        config = make_config("""
        workflows:
          build:
            name: build
            tasks:
              - {id: b, action: sh, parameters: {cmd: "echo built"}, resources: {pools: {builder: 1}}}
        """, actions="""
        actions:
          sh: {command: [/bin/sh, -c, "${cmd}"]}
        """, scheduling=f"""
        scheduling:
          pools: {{builder: 1}}
          resource_limits: {{max_cpu_usage: 100, max_memory_usage: 100}}
          executor: {{kind: dask, address: "{address}"}}
        """)
        async with runtime_for(config) as rt:
            result = await rt.run_workflow("build")  # the workers are in when it printed
            assert await asyncio.wait_for(rt.wait(result.execution_id), 60) == "succeeded"
            task = rt.execution(result.execution_id).tasks[0]
        assert task.worker in ("local-1", "local-2") and task.last_line == "built"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        assert live_processes(list(info["pids"].values())) == []
        for name in ("scheduler", "worker-1", "worker-2"):
            log = cluster_state / "cluster" / f"{name}.log"
            assert log.stat().st_mode & 0o077 == 0, name
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cluster_ssh_to_a_host_that_refuses_says_so_in_one_line(tmp_path):
    # Port 1 refuses at once on any machine (nothing listens there).
    env = {**os.environ, "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "5s"}
    result = subprocess.run([L3TUI, "cluster", "ssh", "ssh://127.0.0.1:1", "--state",
                             str(tmp_path)], capture_output=True, text=True, timeout=60,
                            env=env, check=False)
    assert result.returncode in (1, 2), result
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("l3tui: "), result.stderr


def test_cluster_without_dask_names_the_extra(tmp_path):
    # A python that cannot import `distributed` (a blocker module first on the path).
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "distributed.py").write_text("raise ImportError('no dask here')\n")
    env = {**os.environ, "PYTHONPATH": str(blocker)}
    result = subprocess.run([L3TUI, "cluster", "local", "--state", str(tmp_path / "s")],
                            capture_output=True, text=True, timeout=60, env=env, check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == ("l3tui: l3tui cluster needs the `dask` extra: pip install "
                                     "'l3tui[dask]'")


def test_validate_without_dask_names_the_extra(tmp_path, monkeypatch):
    from l3tui.config import ConfigError, crossref, load_config
    from tests.conftest import write_config

    config = write_config(tmp_path / "config", """
    workflows:
      w:
        name: w
        executor: {kind: dask, address: "tcp://127.0.0.1:8786"}
        tasks:
          - {id: t, action: noop}
    """)
    load_config(config)  # valid with the extra installed
    monkeypatch.setattr(crossref, "dask_installed", lambda: False)
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    [issue] = caught.value.issues
    assert str(issue).startswith(f"{config / 'l3-workflows.yml'}:5:")
    assert "needs the `dask` extra, which is not installed: pip install 'l3tui[dask]'" in str(
        issue)


def test_validate_accepts_a_dask_executor_with_an_address(tmp_path):
    from tests.conftest import write_config

    config = write_config(tmp_path / "config", """
    workflows:
      w:
        name: w
        tasks:
          - {id: t, action: noop, executor: dask}
          - {id: here, action: noop, executor: local}
    """, scheduling="""
    scheduling:
      executor: {kind: dask, address: "tcp://build-01:8786"}
    """)
    result = subprocess.run([L3TUI, "validate", "--config", str(config)], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    bad = write_config(tmp_path / "bad", """
    workflows:
      w:
        name: w
        tasks:
          - {id: t, action: noop, executor: {kind: dask, address: "build-01"}}
    """)
    result = subprocess.run([L3TUI, "validate", "--config", str(bad)], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert "must look like tcp://HOST:PORT" in result.stderr, result.stderr
    assert Path(bad).exists()
