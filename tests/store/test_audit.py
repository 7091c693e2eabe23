"""The audit trail: operator actions and execution starts/finishes recorded with who, when,
what and outcome; a hash chain that `l3tui audit verify` checks, finding an edited or a
deleted entry."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
from pathlib import Path

from l3tui.engine import events as ev
from l3tui.store import queries
from l3tui.store.audit import AuditEntry, chain, verify
from tests.conftest import L3TUI

WORKFLOWS = """
workflows:
  nap:
    name: nap
    tasks:
      - {id: sleepy, action: nap}
"""
ACTIONS = """
actions:
  nap:
    command: [sleep, "30"]
"""


def cli(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([L3TUI, "--state", str(state), *args], capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)


async def record_some_actions(make_config, runtime_for) -> str:
    config = make_config(WORKFLOWS, actions=ACTIONS)
    async with runtime_for(config) as rt:
        result = await rt.run_workflow("nap", actor="alice@pts/1 via 10.0.0.7")
        exec_id = result.execution_id
        async with asyncio.timeout(10):
            while rt.engine.executions[exec_id].tasks["sleepy"].state != "running":
                await asyncio.sleep(0.02)
        assert (await rt.pause(exec_id, actor="bob@pts/2")).applied
        assert (await rt.resume(exec_id, actor="bob@pts/2")).applied
        assert (await rt.cancel(exec_id, actor="alice@pts/1 via 10.0.0.7")).applied
        assert not (await rt.pause("no-such-execution", actor="carol@notty")).applied
        rt.bus.publish(ev.ScheduleChanged(at=1.0, schedule_id="nightly", enabled=False))
        rt.bus.publish(ev.SystemNotice(at=2.0, topic="config", message="reloaded 4 files"))
        async with asyncio.timeout(10):
            await rt.wait(exec_id)
    return exec_id


async def test_operator_actions_and_executions_are_audited_with_who_and_outcome(
    make_config, runtime_for, state_dir
):
    exec_id = await record_some_actions(make_config, runtime_for)
    with sqlite3.connect(state_dir / "l3tui.db") as conn:
        entries = [(c.entry.actor, c.entry.action, c.entry.target, c.entry.outcome)
                   for c in queries.all_audit_entries(conn)]
    assert ("alice@pts/1 via 10.0.0.7", "run", exec_id, "applied") in entries
    assert ("bob@pts/2", "pause", exec_id, "applied") in entries
    assert ("bob@pts/2", "resume", exec_id, "applied") in entries
    assert ("alice@pts/1 via 10.0.0.7", "cancel", exec_id, "applied") in entries
    assert ("carol@notty", "pause", "no-such-execution", "refused") in entries
    assert ("test", "execution.start", exec_id, "started") in entries
    assert ("test", "execution.finish", exec_id, "cancelled") in entries
    assert ("test", "schedule.disable", "nightly", "disabled") in entries
    assert ("test", "config.reload", "", "done") in entries
    listing = cli(state_dir, "audit", "--json")
    assert listing.returncode == 0
    assert {e["action"] for e in json.loads(listing.stdout)} >= {"run", "pause", "cancel"}
    ok = cli(state_dir, "audit", "verify")
    assert ok.returncode == 0 and "intact" in ok.stdout


async def test_audit_verify_finds_an_edited_entry(make_config, runtime_for, state_dir):
    await record_some_actions(make_config, runtime_for)
    with sqlite3.connect(state_dir / "l3tui.db") as conn:
        conn.execute("UPDATE audit SET actor = 'mallory' WHERE seq = 3")
    result = cli(state_dir, "audit", "verify")
    assert result.returncode == 1
    assert "broken at entry 3" in result.stderr and "content does not match" in result.stderr
    report = json.loads(cli(state_dir, "audit", "verify", "--json").stdout)
    assert report["ok"] is False and report["broken_at"] == 3 and report["checked"] == 2


async def test_audit_verify_finds_a_deleted_entry(make_config, runtime_for, state_dir):
    await record_some_actions(make_config, runtime_for)
    with sqlite3.connect(state_dir / "l3tui.db") as conn:
        conn.execute("DELETE FROM audit WHERE seq = 2")
    result = cli(state_dir, "audit", "verify")
    assert result.returncode == 1 and "broken at entry 3" in result.stderr


def test_a_rewritten_chain_from_an_edit_onwards_still_breaks_at_the_edit():
    entries = [AuditEntry(float(i), "u", "run", f"e{i}", "applied", "") for i in range(5)]
    linked = chain(entries, 0, "0" * 64)
    assert verify(linked).ok and verify(linked).checked == 5
    forged = list(linked)
    forged[2] = type(linked[2])(3, AuditEntry(2.0, "mallory", "run", "e2", "applied", ""),
                                linked[2].prev_hash, linked[2].hash)
    result = verify(forged)
    assert (result.ok, result.broken_at) == (False, 3)
