"""The coordinator in a real `l3tui daemon` process: the inbox, `l3tui submit` through the
socket, cancel by decision, `l3tui plan` against what runs, `l3tui events -f` live, and a
hook that hears `execution.failed`."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import L3TUI, Daemon, descendants_by_marker, live_processes
from tests.coordinator.conftest import (
    ACTIONS,
    SCHEDULING,
    WORKFLOWS,
    drop,
    executions_of,
    poll,
    query,
    results,
)

POOLED = WORKFLOWS.replace("workflows:\n", """workflows:
  pooled:
    name: pooled
    tasks:
      - {id: hold, action: nap, parameters: {seconds: "1061.3"}, resources: {pools: {solo: 1}}}
""", 1)  # fmt: skip


@pytest.fixture
def coord_daemon(make_daemon: Callable[..., Daemon]) -> Callable[..., Daemon]:
    def make(scheduling: str = SCHEDULING, workflows: str = WORKFLOWS) -> Daemon:
        return make_daemon(workflows, ACTIONS, scheduling).start()

    return make


def submit(daemon: Daemon, decision: Any, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([L3TUI, "--state", str(daemon.state), "submit", "-", *extra],
                          input=json.dumps(decision), env=daemon.env, capture_output=True,
                          text=True, timeout=120, check=False)  # fmt: skip


def test_a_good_decision_in_the_inbox_runs_once_with_its_result_line(
    coord_daemon: Callable[..., Daemon],
) -> None:
    daemon = coord_daemon()
    inbox = daemon.state / "inbox"
    drop(inbox, "go.json", {"id": "d-1", "kind": "run_workflow", "workflow": "quick"})
    line = poll(lambda: [r for r in results(daemon.state) if r["decision_id"] == "d-1"])[0]
    assert line["outcome"] == "succeeded"
    poll(lambda: (inbox / "processed" / "go.json").exists())
    drop(inbox, "go-again.json", {"id": "d-1", "kind": "run_workflow", "workflow": "quick"})
    poll(lambda: (inbox / "processed" / "go-again.json").exists())
    assert len(executions_of(daemon.state, "d-1")) == 1
    assert daemon.stop() == 0
    assert len([r for r in results(daemon.state) if r["decision_id"] == "d-1"]) == 1


def test_submit_goes_through_the_socket_and_says_what_happened(
    coord_daemon: Callable[..., Daemon],
) -> None:
    daemon = coord_daemon()
    done = submit(daemon, {"id": "s-1", "kind": "run_workflow", "workflow": "quick"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("s-1: accepted: started quick as ")
    again = submit(daemon, {"id": "s-1", "kind": "run_workflow", "workflow": "quick"},
                   "--json")  # fmt: skip
    outcome = json.loads(again.stdout)
    assert again.returncode == 0 and outcome["status"] == "duplicate"
    bad = submit(daemon, {"id": "s-2", "kind": "run_workflow", "workflow": "nope"})
    assert bad.returncode == 1 and "unknown workflow 'nope'" in bad.stderr
    assert "Traceback" not in bad.stderr
    assert not (daemon.state / "inbox").exists() or not list((daemon.state / "inbox").glob(
        "*.json"))  # through the socket, not the inbox  # fmt: skip


def test_a_reserve_submitted_to_the_daemon_is_listed_by_l3tui_reservations_and_audited(
    coord_daemon: Callable[..., Daemon],
) -> None:
    daemon = coord_daemon(SCHEDULING.replace("max_memory_usage: 100}",
                                             "max_memory_usage: 100, cpu_cores: 4}"))
    done = submit(daemon, {"id": "v-1", "kind": "reserve", "cpu": 2, "start": "1h",
                           "duration": "30m", "reason": "نافذة صيانة", "source": "L2"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("v-1: accepted: reserved r-v-1: 2 cpu from ")
    bad = submit(daemon, {"id": "v-2", "kind": "reserve", "cpu": 3, "start": "70m",
                          "duration": "10m"})  # fmt: skip
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert "together they would hold 5 of 4 cpu" in bad.stderr
    listed = daemon.cli("reservations", "--json")
    [held] = json.loads(listed.stdout)
    assert (held["id"], held["state"], held["cpu"]) == ("r-v-1", "scheduled", 2)
    assert held["reason"] == "نافذة صيانة"
    ended = submit(daemon, {"id": "v-3", "kind": "cancel_reservation", "reservation": "v-1"})
    assert ended.returncode == 0, ended.stderr
    assert daemon.stop() == 0
    audit = query(daemon.state, "SELECT actor, action, outcome FROM audit WHERE action LIKE "
                  "'reservation.%' ORDER BY seq")  # fmt: skip
    assert [(a.split(" (")[0], action, outcome) for a, action, outcome in audit] == [
        ("L2", "reservation.make", "applied"), ("decision", "reservation.cancel", "cancelled")]


def test_cancel_by_decision_kills_the_real_process_tree(
    coord_daemon: Callable[..., Daemon],
) -> None:
    daemon = coord_daemon()
    ran = submit(daemon, {"id": "c-1", "kind": "run_task", "action": "tree",
                          "params": {"seconds": "1071.43"}})  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    pids = poll(lambda: (found := descendants_by_marker("sleep 1071.43")) and len(found) >= 2
                and found)  # fmt: skip
    cancel = submit(daemon, {"id": "c-2", "kind": "cancel", "execution": "c-1",
                             "reason": "superseded"})  # fmt: skip
    assert cancel.returncode == 0, cancel.stderr
    poll(lambda: not live_processes(pids), timeout=30)
    line = poll(lambda: [r for r in results(daemon.state) if r["decision_id"] == "c-1"])[0]
    assert line["outcome"] == "cancelled"


def test_plan_through_the_daemon_says_what_would_wait_and_why(
    coord_daemon: Callable[..., Daemon],
) -> None:
    daemon = coord_daemon(SCHEDULING + "  pools: {solo: 1}\n", POOLED)
    assert submit(daemon, {"id": "p-1", "kind": "run_workflow",
                           "workflow": "pooled"}).returncode == 0  # fmt: skip
    poll(lambda: descendants_by_marker("sleep 1061.3"))
    planned = subprocess.run(
        [L3TUI, "--state", str(daemon.state), "plan", "-", "--json"], env=daemon.env,
        input=json.dumps([{"id": "p-2", "kind": "run_workflow", "workflow": "pooled"},
                          {"id": "p-1", "kind": "run_workflow", "workflow": "pooled"}]),
        capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert planned.returncode == 0, planned.stderr
    first, second = json.loads(planned.stdout)
    [task] = first["executions"][0]["tasks"]
    assert first["status"] == "would act" and task["waits"] == "pool solo 1/1"
    assert second["status"] == "duplicate"
    assert executions_of(daemon.state, "p-2") == []  # a plan acts on nothing


def test_events_follow_lives_on_the_socket_and_resumes_by_sequence(
    coord_daemon: Callable[..., Daemon], tmp_path: Path,
) -> None:
    daemon = coord_daemon()
    out = tmp_path / "events.out"
    with open(out, "wb") as sink:
        follower = subprocess.Popen([L3TUI, "--state", str(daemon.state), "events", "-f",
                                     "--json", "--type", "decision.*", "--type",
                                     "execution.succeeded"], env=daemon.env, stdout=sink,
                                    stderr=subprocess.STDOUT)  # fmt: skip
    try:
        # It follows on the daemon's socket (a client of the daemon's), not by polling.
        poll(lambda: "(via daemon, events)" in daemon.cli("doctor").stdout, timeout=30)
        started = time.monotonic()
        assert submit(daemon, {"id": "e-1", "kind": "run_workflow",
                               "workflow": "quick"}).returncode == 0  # fmt: skip

        def seen() -> list[dict[str, Any]]:
            lines = [json.loads(x) for x in out.read_text().splitlines() if x.startswith("{")]
            return lines if any(e["type"] == "execution.succeeded" for e in lines) else []

        events = poll(seen, timeout=30, interval=0.05)
        latency = time.monotonic() - started
    finally:
        follower.terminate()
        follower.wait(10)
    types = [e["type"] for e in events]
    assert types[:2] == ["decision.received", "decision.acted"], types
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert latency < 20  # woken by the daemon's push, not a slow poll
    # Resuming after the first one gives the rest, and nothing before it.
    rest = daemon.cli("events", "--since", str(seqs[0]), "--type", "decision.*", "--type",
                      "execution.succeeded", "--json")  # fmt: skip
    assert [json.loads(x)["seq"] for x in rest.stdout.splitlines()] == seqs[1:]


def test_a_hook_receives_execution_failed_on_stdin(
    coord_daemon: Callable[..., Daemon], tmp_path: Path,
) -> None:
    heard = tmp_path / "heard.jsonl"
    scheduling = SCHEDULING + f"""
events:
  sinks:
    - name: pager
      on: execution.failed
      command: [sh, -c, 'cat >> "$0"; echo >> "$0"', "{heard}"]
      timeout: 10s
    - file: all-events.jsonl
      on: ["execution.*", "decision.*"]
"""
    daemon = coord_daemon(scheduling)
    assert submit(daemon, {"id": "h-1", "kind": "run_workflow",
                           "workflow": "failing"}).returncode == 0  # started; it fails later
    event = json.loads(poll(lambda: heard.exists() and heard.read_text().strip()))
    assert event["type"] == "execution.failed" and event["kind"] == "execution_finished"
    assert event["workflow_id"] == "failing" and event["reason"] == "not succeeded: bad"
    [execution_id] = executions_of(daemon.state, "h-1")
    assert event["execution_id"] == execution_id
    everything = daemon.state / "all-events.jsonl"
    types = poll(lambda: everything.exists() and [json.loads(x)["type"] for x in
                                                  everything.read_text().splitlines()])
    assert {"decision.received", "execution.created", "execution.failed"} <= set(types)
    assert oct(os.stat(everything).st_mode & 0o777) == "0o600"
    assert query(daemon.state, "SELECT count(*) FROM alerts WHERE rule = 'event_hook_failed'") \
        == [(0,)]
