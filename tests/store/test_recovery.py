"""Crash recovery with real processes: `l3tui run` is killed with SIGKILL at chosen points
(before the first task, during a task, between a success and its dependant's start; the
50-kill loop at points read from the run's output is tests/faults/test_durability.py); the next start marks the execution interrupted, kills every process the old
instance left, keeps every committed event, and `l3tui resume` runs only what had not
succeeded."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import L3TUI, descendants_by_marker, live_processes, write_config

# Each task appends its id to ran.txt, so a test can tell which tasks ran in which
# execution. A task whose flag file exists finishes at once; otherwise it sleeps (with a
# grandchild, so a whole process group must be killed).
ACTIONS = """
actions:
  step:
    command: [sh, -c, 'echo "$L3_EXECUTION_ID $2" >> "$1/ran.txt"; echo "step $2"', sh, "${dir}", "${name}"]
  slow:
    command: [sh, -c, 'echo "$L3_EXECUTION_ID $2" >> "$1/ran.txt"; if [ -e "$1/go" ]; then exit 0; fi; sleep "$3" & sleep "$3" & wait', sh, "${dir}", "${name}", "${seconds}"]
  do_nothing:
    command: ["true"]
"""

SCHEDULING = """
scheduling:
  resource_limits: {max_concurrent_tasks: 1}
  execution: {grace_period: 1s, default_timeout: 10m}
"""


def workflows(work: Path, marker: int) -> str:
    return f"""
    workflows:
      crashy:
        name: "انهيار"
        tasks:
          - id: first
            action: step
            priority: high
            parameters: {{dir: "{work}", name: first}}
          - id: long
            action: slow
            priority: medium
            parameters: {{dir: "{work}", name: long, seconds: {marker}}}
          - id: after_first
            action: step
            priority: low
            dependencies: [first]
            parameters: {{dir: "{work}", name: after_first}}
          - id: last
            action: step
            dependencies: [after_first, long]
            parameters: {{dir: "{work}", name: last}}
      gated:
        name: gated
        tasks:
          - id: gate
            action: step
            not_before: "2099-01-01T00:00:00+00:00"
            parameters: {{dir: "{work}", name: gate}}
      noop:
        name: noop
        tasks:
          - {{id: nothing, action: do_nothing}}
    """


@pytest.fixture
def env(tmp_path: Path) -> dict[str, Path | int]:
    marker = random.randint(40_000, 49_999)  # a sleep duration no other test uses
    work = tmp_path / "work"
    work.mkdir()
    config = write_config(tmp_path / "config", workflows(work, marker), actions=ACTIONS,
                          scheduling=SCHEDULING)
    return {"config": config, "state": tmp_path / "state", "work": work, "marker": marker}


def l3(env: dict, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([L3TUI, *args, "--config", str(env["config"]), "--state",
                           str(env["state"])], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def start_run(env: dict, workflow: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([L3TUI, "run", workflow, "--config", str(env["config"]), "--state",
                             str(env["state"])], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def query(env: dict, sql: str, params: tuple = ()) -> list[tuple]:
    path = Path(env["state"]) / "l3tui.db"
    if not path.exists():
        return []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute(sql, params).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):  # still being created
            return []
        raise
    finally:
        conn.close()


def wait_until(predicate, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def task_states(env: dict, exec_id: str) -> dict[str, str]:
    return dict(query(env, "SELECT task_id, state FROM task_runs WHERE execution_id = ?",
                      (exec_id,)))


def only_execution(env: dict, workflow: str) -> str | None:
    rows = query(env, "SELECT id FROM executions WHERE workflow_id = ? ORDER BY created_at",
                 (workflow,))
    return rows[-1][0] if rows else None


def committed_events(env: dict) -> list[tuple]:
    return query(env, "SELECT id, at, kind, execution_id, data FROM events ORDER BY id")


def kill9(proc: subprocess.Popen[bytes]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def ran(env: dict, exec_id: str) -> list[str]:
    path = Path(env["work"]) / "ran.txt"
    lines = path.read_text().splitlines() if path.exists() else []
    return [line.split()[1] for line in lines if line.split()[0] == exec_id]


def restart_and_check(env: dict, exec_id: str, before: list[tuple], pids: list[int]) -> None:
    """Start l3tui again (a trivial run) and check what recovery must guarantee."""
    result = l3(env, "run", "noop")
    assert result.returncode == 0, result.stderr
    state, reason = query(env, "SELECT state, reason FROM executions WHERE id = ?",
                          (exec_id,))[0]
    assert state == "interrupted"
    assert "stopped while this ran" in reason
    states = task_states(env, exec_id)
    assert not {"running", "queued", "waiting", "pending", "paused"} & set(states.values())
    marker = f"sleep {env['marker']}"
    assert descendants_by_marker(marker) == []
    assert live_processes(pids) == []
    after = set(committed_events(env))
    missing = [row for row in before if row not in after]
    assert missing == [], f"{len(missing)} committed events lost"
    notices = query(env, "SELECT data FROM events WHERE kind = 'system_notice' AND data LIKE "
                         "'%\"recovery\"%'")
    assert any(exec_id in n[0] for n in notices)


def recorded_pids(env: dict, exec_id: str) -> list[int]:
    return [r[0] for r in query(env, "SELECT pid FROM task_attempts WHERE execution_id = ? AND "
                                     "pid IS NOT NULL", (exec_id,))]


def test_kill_before_first_task_leaves_an_interrupted_execution(env):
    proc = start_run(env, "gated")
    try:
        exec_id = wait_until(lambda: only_execution(env, "gated"), what="execution row")
        wait_until(lambda: task_states(env, exec_id).get("gate") == "queued", what="queued")
        before = committed_events(env)
    finally:
        kill9(proc)
    restart_and_check(env, exec_id, before, [])
    assert task_states(env, exec_id) == {"gate": "interrupted"}
    assert ran(env, exec_id) == []


def test_kill_during_a_task_kills_its_process_group_and_resume_reruns_it(env):
    proc = start_run(env, "crashy")
    marker = f"sleep {env['marker']}"
    try:
        exec_id = wait_until(lambda: only_execution(env, "crashy"), what="execution row")
        wait_until(lambda: len(descendants_by_marker(marker)) == 2, what="grandchildren")
        wait_until(lambda: recorded_pids(env, exec_id), what="recorded pid")
        grandchildren = descendants_by_marker(marker)
        pids = recorded_pids(env, exec_id) + grandchildren
        before = committed_events(env)
    finally:
        kill9(proc)
    assert len(live_processes(grandchildren)) == 2  # orphaned, still running
    restart_and_check(env, exec_id, before, pids)
    states = task_states(env, exec_id)
    assert states["first"] == "succeeded"
    assert states["long"] == "interrupted"

    (Path(env["work"]) / "go").touch()
    result = l3(env, "resume", exec_id[:-1])  # a unique prefix
    assert result.returncode == 0, result.stderr
    child = query(env, "SELECT id, state FROM executions WHERE parent_id = ?", (exec_id,))
    assert len(child) == 1 and child[0][1] == "succeeded"
    new_id = child[0][0]
    assert "first" not in ran(env, new_id)
    assert sorted(ran(env, new_id)) == sorted(t for t, s in states.items() if s != "succeeded")
    carried = query(env, "SELECT state, reason FROM task_runs WHERE execution_id = ? AND "
                         "task_id = 'first'", (new_id,))[0]
    assert carried == ("succeeded", f"carried over from {exec_id}")


def test_kill_between_a_success_and_its_dependants_start(env):
    proc = start_run(env, "crashy")
    try:
        exec_id = wait_until(lambda: only_execution(env, "crashy"), what="execution row")

        def gap() -> bool:
            s = task_states(env, exec_id)
            return (s.get("first") == "succeeded" and s.get("after_first") == "queued"
                    and s.get("long") == "running")

        wait_until(gap, what="first succeeded, after_first queued")
        pids = recorded_pids(env, exec_id)
        before = committed_events(env)
    finally:
        kill9(proc)
    restart_and_check(env, exec_id, before, pids)
    states = task_states(env, exec_id)
    assert states == {"first": "succeeded", "long": "interrupted",
                      "after_first": "interrupted", "last": "interrupted"}
    (Path(env["work"]) / "go").touch()
    result = l3(env, "resume", exec_id)
    assert result.returncode == 0, result.stderr
    new_id = query(env, "SELECT id FROM executions WHERE parent_id = ?", (exec_id,))[0][0]
    assert sorted(ran(env, new_id)) == ["after_first", "last", "long"]
    assert ran(env, exec_id) == ["first", "long"]


def test_recovery_never_signals_a_reused_pid(env):
    """The recorded pid now belongs to another program (started later, so its start time
    differs, and without our environment): recovery must leave it alone."""
    proc = start_run(env, "crashy")
    marker = f"sleep {env['marker']}"
    try:
        exec_id = wait_until(lambda: only_execution(env, "crashy"), what="execution row")
        wait_until(lambda: len(descendants_by_marker(marker)) == 2, what="grandchildren")
        wait_until(lambda: recorded_pids(env, exec_id), what="recorded pid")
    finally:
        kill9(proc)
    for pid in descendants_by_marker(marker):  # the old tree is gone, as after a reboot
        os.kill(pid, signal.SIGKILL)
    # A reused pid belongs to a process started much later (the pid space had to wrap
    # around); start times are compared with a 50 ms tolerance.
    time.sleep(0.3)
    stranger = subprocess.Popen(["sleep", "3600"], start_new_session=True,
                                env={"PATH": os.environ["PATH"]})
    try:
        db = Path(env["state"]) / "l3tui.db"
        conn = sqlite3.connect(db)
        with conn:
            conn.execute("UPDATE task_attempts SET pid = ?, pgid = ? WHERE execution_id = ? "
                         "AND finished_at IS NULL", (stranger.pid, stranger.pid, exec_id))
        conn.close()
        result = l3(env, "run", "noop")
        assert result.returncode == 0, result.stderr
        assert stranger.poll() is None, "recovery killed a process that was not ours"
        assert query(env, "SELECT state FROM executions WHERE id = ?", (exec_id,)) == [
            ("interrupted",)
        ]
    finally:
        stranger.kill()
        stranger.wait()


def test_processes_left_before_anything_was_committed_are_found(env, tmp_path):
    """Killed between spawning a task and committing it, a previous instance leaves a
    process no table knows of; its environment still names this state dir's runs."""
    runs = Path(env["state"]) / "runs"
    marker = str(env["marker"] + 7)
    base = {"PATH": os.environ["PATH"], "L3_EXECUTION_ID": "260101-000000-dead"}
    orphan = subprocess.Popen(["sleep", marker], start_new_session=True,
                              env={**base, "L3_EXECUTION_DIR": str(runs / "260101-000000-dead")})
    elsewhere = subprocess.Popen(["sleep", marker], start_new_session=True,
                                 env={**base, "L3_EXECUTION_DIR": str(tmp_path / "other" / "runs" / "x")})
    try:
        result = l3(env, "run", "noop")
        assert result.returncode == 0, result.stderr
        assert "terminated 1 leftover task process" in result.stderr
        assert orphan.wait(timeout=5) is not None  # ours: ended
        assert elsewhere.poll() is None  # another state dir's: untouched
    finally:
        for proc in (orphan, elsewhere):
            proc.kill()
            proc.wait()
