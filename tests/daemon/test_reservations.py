"""Reservations against a real daemon: `l3tui reserve` goes through the socket, a run the
daemon accepts waits with the reservation named in its reason (as an attached client sees
it) and starts when the reservation ends; `reservations cancel` goes through the socket too,
and the audit trail says who asked, through the daemon."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time

from l3tui.daemon.client import RemoteRuntime
from tests.conftest import L3TUI
from tests.coordinator.test_reserve import ACTIONS, WORKFLOWS  # the same build and pool

SCHEDULING = """
scheduling:
  pools: {flutter_build: 1}
  resource_limits: {max_concurrent_tasks: 4, max_cpu_usage: 100, max_memory_usage: 100}
  execution: {grace_period: 1s, default_timeout: 60s}
"""


async def reason_seen(daemon, rid: str) -> tuple[str, list[str]]:
    """What an attached client sees: the queued build's reason, and the reservations."""
    remote = RemoteRuntime(daemon.state, actor="test@pts/9", client="test")
    await remote.connect()
    try:
        async with asyncio.timeout(30):
            reason = ""
            while rid not in reason:
                await asyncio.sleep(0.05)
                views = [e for e in remote.snapshot().executions if e.workflow_id == "build"]
                reason = views[0].tasks[0].reason if views else ""
        return reason, [r.id for r in remote.snapshot().reservations]
    finally:
        await remote.close()


def test_reserve_through_the_daemon_holds_a_run_back_until_it_ends(make_daemon):
    daemon = make_daemon(WORKFLOWS, ACTIONS, SCHEDULING).start()
    made = daemon.cli("reserve", "--pool", "flutter_build=1", "--for", "4s", "--reason",
                      "release build", "--json")  # fmt: skip
    assert made.returncode == 0, made.stderr
    answer = json.loads(made.stdout)
    rid = answer["reservation_id"]
    assert answer["via"] == "daemon" and answer["applied"]
    reserved_at = time.time()
    run = subprocess.Popen([L3TUI, "--state", str(daemon.state), "run", "build", "--json"],
                           env=daemon.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)  # fmt: skip
    reason, reservations = asyncio.run(reason_seen(daemon, rid))
    assert reason.startswith(f"pool flutter_build 1/1; reservation {rid} (release build) "
                             "holds 1 slot(s) until ")
    assert reservations == [rid]
    out, err = run.communicate(timeout=60)
    assert run.returncode == 0, err
    started = [json.loads(line) for line in out.splitlines()
               if json.loads(line).get("kind") == "task_started"]  # fmt: skip
    assert started and started[0]["at"] >= reserved_at + 3.5  # not before it ended
    # A second one, cancelled through the daemon by a unique prefix of its id.
    again = json.loads(daemon.cli("reserve", "--pool", "flutter_build", "--for", "1h",
                                  "--json").stdout)["reservation_id"]  # fmt: skip
    gone = daemon.cli("reservations", "cancel", again[:5])
    assert gone.returncode == 0, gone.stderr
    assert f"cancelled reservation {again}" in gone.stdout
    listed = json.loads(daemon.cli("reservations", "--all", "--json").stdout)
    assert {r["id"]: r["state"] for r in listed} == {rid: "ended", again: "cancelled"}
    audit = daemon.cli("audit").stdout
    made_lines = [line for line in audit.splitlines() if "reservation.make" in line]
    assert len(made_lines) == 2 and all("via daemon, reserve" in line for line in made_lines)
    assert "reservation.end" in audit and "reservation.cancel" in audit
