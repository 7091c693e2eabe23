"""Hostile input and crashes at the coordinator: whatever arrives in the inbox or on the
socket, one bad decision is refused with its reason and never touches another; the same id
acts once even when the daemon is killed with -9 between recording it and acting on it; a
hook that hangs or floods never holds the engine."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from l3tui.daemon.client import RemoteRuntime
from tests.conftest import L3TUI, Daemon, descendants_by_marker, live_processes, write_config
from tests.coordinator.conftest import (
    ACTIONS,
    SCHEDULING,
    WORKFLOWS,
    drop,
    executions_of,
    poll,
    query,
    results,
    until,
)

GOOD = {"kind": "run_workflow", "workflow": "quick"}


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    return write_config(tmp_path / "config", WORKFLOWS, ACTIONS, SCHEDULING)


def rejected_reason(state: Path, name: str) -> str:
    data = json.loads((state / "inbox" / "rejected" / f"{name}.error.json").read_text())
    return str(data["reason"])


async def run_inbox(runtime_for: Callable[..., Any], config_dir: Path, state: Path,
                    hostile: Callable[[Path], None], good_id: str) -> None:  # fmt: skip
    """Put something hostile in the inbox, then a good decision: the good one must run."""
    inbox = state / "inbox"
    async with runtime_for(config_dir, coordinate="all"):
        hostile(inbox)
        drop(inbox, "zz-good.json", {"id": good_id, **GOOD})
        await until(lambda: [r for r in results(state) if r["decision_id"] == good_id])
        await until(lambda: (inbox / "processed" / "zz-good.json").exists())


async def test_a_malformed_file_is_rejected_and_the_next_decision_runs(
    runtime_for: Callable[..., Any], config_dir: Path, state_dir: Path
) -> None:
    def hostile(inbox: Path) -> None:
        drop(inbox, "a.json", b'{"id": "m-1", "kind": "run_workflow", "workflow": "quick",')
        drop(inbox, "b.json", b"[" * 500_000)
        drop(inbox, "c.json", b'{"id": "m-3", "kind": "run_workflow", "workflow": "quick", '
                              b'"id": "m-4"}')  # fmt: skip
        drop(inbox, "d.json", "\udcff".encode("utf-8", "surrogatepass"))

    await run_inbox(runtime_for, config_dir, state_dir, hostile, "m-ok")
    assert rejected_reason(state_dir, "a.json").startswith("not JSON")
    assert rejected_reason(state_dir, "b.json") == "not accepted: JSON nested too deeply"
    assert "appears twice" in rejected_reason(state_dir, "c.json")
    assert rejected_reason(state_dir, "d.json").startswith("not UTF-8")
    assert query(state_dir, "SELECT id FROM decisions") == [("m-ok",)]


async def test_an_oversized_file_is_refused_unread(
    runtime_for: Callable[..., Any], config_dir: Path, state_dir: Path
) -> None:
    def hostile(inbox: Path) -> None:
        drop(inbox, "big.json", b'{"id": "o-1", "kind": "analysis_update", "topic": "t", '
             b'"payload": {"x": "' + b"y" * (2 * 1024 * 1024) + b'"}}')  # fmt: skip
        # 50 GB that is all holes: refused by its size, never read into memory.
        sparse = inbox / ".sparse.tmp"
        with open(sparse, "wb") as fh:
            fh.truncate(50 * 1024**3)
        os.rename(sparse, inbox / "sparse.json")

    await run_inbox(runtime_for, config_dir, state_dir, hostile, "o-ok")
    assert "over the 1,048,576-byte limit" in rejected_reason(state_dir, "big.json")
    assert rejected_reason(state_dir, "sparse.json").startswith("53,687,091,200 bytes")


async def test_an_unknown_kind_is_rejected(
    runtime_for: Callable[..., Any], config_dir: Path, state_dir: Path
) -> None:
    def hostile(inbox: Path) -> None:
        drop(inbox, "k.json", {"id": "k-1", "kind": "rm_rf", "path": "/"})

    await run_inbox(runtime_for, config_dir, state_dir, hostile, "k-ok")
    assert rejected_reason(state_dir, "k.json").startswith("unknown kind 'rm_rf' (one of: ")
    error = json.loads((state_dir / "inbox" / "rejected" / "k.json.error.json").read_text())
    assert error["decision_id"] == "k-1"


async def test_a_reservation_beyond_the_machine_or_with_a_broken_window_is_rejected_unbooked(
    runtime_for: Callable[..., Any], tmp_path: Path, state_dir: Path
) -> None:
    """Each refused with its reason (as `l3tui reserve` words it, in the decision's terms),
    not recorded, nothing booked or audited as booked; the good decision after them runs."""
    config_dir = write_config(tmp_path / "config", WORKFLOWS, ACTIONS, SCHEDULING.replace(
        "max_memory_usage: 100}", "max_memory_usage: 100, cpu_cores: 4, memory_mb: 8192}")
        + "  pools: {flutter_build: 1}\n")  # fmt: skip
    hostile_decisions = {
        "cpu.json": {"cpu": 64, "duration": "1h"},
        "memory.json": {"memory": "1T", "duration": "1h"},
        "pool.json": {"pools": {"flutter_build": 2}, "duration": "1h"},
        "unknown-pool.json": {"pools": {"gpu": 1}, "duration": "1h"},
        "past.json": {"cpu": 1, "start": "2020-01-01T18:00", "duration": "1h"},
        "past-start.json": {"cpu": 1, "start": "2020-01-01T18:00", "until": "2h"},
        "backwards.json": {"cpu": 1, "start": "2h", "until": "1h"},
        "no-end.json": {"cpu": 1, "start": "10m"},
        "both-ends.json": {"cpu": 1, "duration": "1h", "until": "3h"},
        "nothing.json": {"duration": "1h"},
        "garbage.json": {"cpu": 1, "duration": "soon"},
        "negative.json": {"cpu": -2, "duration": "1h"},
        "overflow.json": {"cpu": 1e300, "duration": "1h"},
        "month.json": {"cpu": 1, "duration": "40d"},
    }

    def hostile(inbox: Path) -> None:
        for index, (name, body) in enumerate(hostile_decisions.items()):
            drop(inbox, name, {"id": f"h-{index}", "kind": "reserve", **body})

    await run_inbox(runtime_for, config_dir, state_dir, hostile, "h-ok")
    reasons = {name: rejected_reason(state_dir, name) for name in hostile_decisions}
    assert reasons["cpu.json"] == ("refused: 64 cpu is more than the 4 the scheduler has in "
                                   "all (resource_limits.cpu_cores, or the machine's cores)")
    assert reasons["memory.json"].startswith("refused: 1024.0 GB is more than the 8.0 GB")
    assert reasons["pool.json"] == "refused: pool flutter_build has 1 slot(s), not 2"
    assert reasons["unknown-pool.json"].startswith("refused: there is no pool 'gpu' in "
                                                   "scheduling.pools")  # fmt: skip
    assert reasons["past.json"] == ("refused: it would end at 2020-01-01 19:00, which is in "
                                    "the past")  # fmt: skip
    assert reasons["past-start.json"] == ("refused: it would start at 2020-01-01 18:00, which "
                                          "is in the past (leave out start: it starts when it "
                                          "acts)")  # fmt: skip
    assert reasons["backwards.json"] == ("refused: it must last a while (duration 2h, or until "
                                         "after start)")  # fmt: skip
    for name in ("no-end.json", "both-ends.json"):
        assert reasons[name] == ("decision: give the window's length as `duration` (2h) or its "
                                 "end as `until`, one of them")  # fmt: skip
    assert reasons["nothing.json"] == "decision: it holds nothing: give cpu, memory or pools"
    assert reasons["garbage.json"].startswith("duration: ")
    assert reasons["negative.json"].startswith("cpu: Input should be greater than or equal")
    assert reasons["overflow.json"].startswith("cpu: Input should be less than or equal")
    assert reasons["month.json"].startswith("refused: a reservation lasts at most 31 days")
    assert all("\n" not in reason for reason in reasons.values())
    assert query(state_dir, "SELECT id FROM decisions") == [("h-ok",)]
    assert query(state_dir, "SELECT count(*) FROM reservations") == [(0,)]
    assert query(state_dir, "SELECT count(*) FROM audit WHERE action LIKE 'reservation.%'") \
        == [(0,)]
    rejected = query(state_dir, "SELECT count(*) FROM audit WHERE action = 'decision.receive' "
                     "AND outcome = 'rejected'")  # fmt: skip
    assert rejected == [(len(hostile_decisions),)]


async def test_a_symlink_a_fifo_or_a_directory_in_the_inbox_is_rejected_unread(
    runtime_for: Callable[..., Any], config_dir: Path, state_dir: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"id": "x-1", **GOOD}))
    before = secret.stat()

    def hostile(inbox: Path) -> None:
        inbox.mkdir(parents=True, exist_ok=True)
        os.symlink(secret, inbox / "link.json")
        os.mkfifo(inbox / "fifo.json")  # opened naively, this would block forever
        (inbox / "dir.json").mkdir()

    await run_inbox(runtime_for, config_dir, state_dir, hostile, "x-ok")
    assert rejected_reason(state_dir, "link.json").startswith("a symlink")
    assert rejected_reason(state_dir, "fifo.json") == "a FIFO, not a regular file"
    assert rejected_reason(state_dir, "dir.json") == "a directory, not a regular file"
    assert (state_dir / "inbox" / "rejected" / "link.json").is_symlink()
    assert secret.stat().st_mtime_ns == before.st_mtime_ns and secret.exists()
    assert executions_of(state_dir, "x-1") == []  # the linked decision never ran


def test_a_name_with_a_slash_or_dotdot_through_submit_is_refused(
    make_daemon: Callable[..., Daemon], tmp_path: Path
) -> None:
    evil = [{"id": "../../../escaped", **GOOD}, {"id": "a/b", **GOOD}, {"id": "..", **GOOD}]
    state = tmp_path / "state"
    # No daemon: `submit` would name an inbox file after the id.
    for decision in evil:
        done = subprocess.run([L3TUI, "--state", str(state), "submit", "-"],
                              input=json.dumps(decision), capture_output=True, text=True,
                              timeout=60, check=False)  # fmt: skip
        assert done.returncode == 1 and "is not a decision id" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
    assert not list(tmp_path.rglob("escaped*")) and not list(tmp_path.rglob("*.json"))
    # Through the daemon's socket, bypassing the command's own check.
    daemon = make_daemon(WORKFLOWS, ACTIONS, SCHEDULING).start()

    async def ask() -> list[dict[str, Any]]:
        remote = RemoteRuntime(daemon.state, actor="t@x", client="test", follow=False,
                               reconnect=False)  # fmt: skip
        await remote.connect()
        try:
            out = [await remote.submit(decision) for decision in evil]
            out.append(await remote.submit({"id": "ok-1", **GOOD}))
            return out
        finally:
            await remote.close()

    *refused, accepted = asyncio.run(ask())
    assert [r["status"] for r in refused] == ["rejected"] * 3
    assert all("is not a decision id" in r["message"] for r in refused)
    assert accepted["status"] == "accepted" and accepted["applied"] is True
    assert not list(tmp_path.rglob("escaped*"))
    assert query(daemon.state, "SELECT id FROM decisions") == [("ok-1",)]


@pytest.mark.slow
def test_the_same_id_acts_once_across_kill_9_between_recording_and_acting(
    make_daemon: Callable[..., Daemon],
) -> None:
    daemon = make_daemon(WORKFLOWS, ACTIONS, SCHEDULING).start()
    inbox = daemon.state / "inbox"
    # Recorded at once, acting 6 s after receipt: the daemon dies in between.
    drop(inbox, "later.json", {"id": "r-1", "not_before": "6s", **GOOD})
    poll(lambda: query(daemon.state, "SELECT state FROM decisions WHERE id = 'r-1'")
         == [("received",)], timeout=30)  # fmt: skip
    daemon.kill()
    assert executions_of(daemon.state, "r-1") == []
    daemon.start()  # a new process: the decision acts at its time, once
    poll(lambda: [r for r in results(daemon.state) if r["decision_id"] == "r-1"], timeout=60)
    drop(inbox, "later-again.json", {"id": "r-1", "not_before": "6s", **GOOD})
    poll(lambda: (inbox / "processed" / "later-again.json").exists())
    daemon.kill()
    daemon.start()
    drop(inbox, "later-third.json", {"id": "r-1", "not_before": "6s", **GOOD})
    poll(lambda: (inbox / "processed" / "later-third.json").exists())
    assert len(executions_of(daemon.state, "r-1")) == 1
    assert len([r for r in results(daemon.state) if r["decision_id"] == "r-1"]) == 1


@pytest.mark.slow
def test_a_decision_whose_run_was_killed_with_the_daemon_is_reported_not_rerun(
    make_daemon: Callable[..., Daemon],
) -> None:
    daemon = make_daemon(WORKFLOWS, ACTIONS, SCHEDULING).start()
    drop(daemon.state / "inbox", "nap.json", {"id": "i-1", "kind": "run_workflow",
                                              "workflow": "sleeper"})  # fmt: skip
    pids = poll(lambda: descendants_by_marker("sleep 1041.27"), timeout=30)
    daemon.kill()
    daemon.start()  # recovery: the run is interrupted and its process killed
    poll(lambda: not live_processes(pids), timeout=30)
    line = poll(lambda: [r for r in results(daemon.state) if r["decision_id"] == "i-1"])[0]
    assert line["outcome"] == "interrupted"
    drop(daemon.state / "inbox", "nap-again.json", {"id": "i-1", "kind": "run_workflow",
                                                    "workflow": "sleeper"})  # fmt: skip
    poll(lambda: (daemon.state / "inbox" / "processed" / "nap-again.json").exists())
    assert len(executions_of(daemon.state, "i-1")) == 1
    assert descendants_by_marker("sleep 1041.27") == []


@pytest.mark.slow
def test_a_hook_that_hangs_is_killed_at_its_timeout_and_the_engine_never_waited(
    make_daemon: Callable[..., Daemon], tmp_path: Path
) -> None:
    scheduling = SCHEDULING + """
events:
  sinks:
    - name: stuck
      on: task.succeeded
      command: [sh, -c, "sleep 1091.7 & sleep 1091.7"]
      timeout: 3s
      queue: 2
"""
    daemon = make_daemon(WORKFLOWS, ACTIONS, scheduling).start()
    started = time.monotonic()
    done = subprocess.run([L3TUI, "--state", str(daemon.state), "run", "quick", "--json"],
                          env=daemon.env, capture_output=True, text=True, timeout=120,
                          check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    ran_s = time.monotonic() - started
    hung = poll(lambda: (found := descendants_by_marker("sleep 1091.7")) and len(found) >= 2
                and found, timeout=30)  # fmt: skip
    [(duration,)] = query(daemon.state, "SELECT duration_s FROM executions")
    assert duration < 2.5, f"the engine waited for the hook: {duration:.1f}s"
    assert ran_s < 30
    # Killed at its timeout, with its whole group (the backgrounded sleep too).
    poll(lambda: not live_processes(hung), timeout=20)
    alert = poll(lambda: query(daemon.state, "SELECT message FROM alerts WHERE rule = "
                               "'event_hook_failed'"), timeout=30)  # fmt: skip
    assert "timed out after 3s; killed with its process group" in alert[0][0]
    assert daemon.cli("doctor").returncode == 0


async def test_a_hook_that_floods_drops_what_its_queue_cannot_hold_and_counts_it(
    runtime_for: Callable[..., Any], tmp_path: Path, state_dir: Path
) -> None:
    heard = tmp_path / "heard"
    many = "\n".join(f"      - {{id: n{i}, action: noop}}" for i in range(60))
    workflows = WORKFLOWS.replace(
        "templates:", f"  flood:\n    name: flood\n    tasks:\n{many}\ntemplates:", 1)
    scheduling = SCHEDULING + f"""
events:
  sinks:
    - name: slow
      on: task.succeeded
      command: [sh, -c, 'echo x >> "$0"; sleep 0.2', "{heard}"]
      queue: 5
"""
    config_dir = write_config(tmp_path / "config", workflows, ACTIONS, scheduling)
    async with runtime_for(config_dir, coordinate="all") as rt:
        out = await rt.run_workflow("flood")
        assert await rt.wait(out.execution_id) == "succeeded"  # at once, whatever the hook
        sink = rt.coordinator.sinks.sinks[0]
        await until(lambda: not sink.queue and not sink.busy, timeout=60)
        rt.coordinator.sinks.report_drops()
        await rt.bus.durable()
        ran = len(heard.read_text().splitlines())
        assert sink.runs == ran and sink.dropped_total > 0
        assert ran + sink.dropped_total == 60
    reported = sum(json.loads(data)["dropped"] for (data,) in query(
        state_dir, "SELECT data FROM events WHERE kind = 'sink_dropped'"))  # fmt: skip
    assert reported == 60 - ran
