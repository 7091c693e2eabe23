"""The audit trail: operator actions and execution starts/finishes recorded with who, when,
what and outcome; a hash chain that `l3tui audit verify` checks, finding an edited or a
deleted entry."""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import subprocess
from pathlib import Path

from l3tui.store import queries
from l3tui.store.audit import AuditEntry, chain, verify
from tests.conftest import L3TUI

WORKFLOWS = """
workflows:
  nap:
    name: nap
    tasks:
      - {id: sleepy, action: nap}
  breaks:
    name: breaks
    tasks:
      - {id: boom, action: fail}
"""
ACTIONS = """
actions:
  nap:
    command: [sleep, "30"]
  fail:
    command: [sh, -c, 'exit 3']
"""
SCHEDULING = """
scheduling:
  resource_limits: {max_concurrent_tasks: 4}
  execution: {grace_period: 1s, default_timeout: 60s}
  recurring_tasks:
    - {id: nightly, cron: "0 3 * * *", workflow: nap}
"""
NOUN_VERB = re.compile(r"[a-z]+\.[a-z_]+")


def cli(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([L3TUI, "--state", str(state), *args], capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)


async def record_some_actions(make_config, runtime_for) -> str:
    config = make_config(WORKFLOWS, actions=ACTIONS, scheduling=SCHEDULING)
    async with runtime_for(config) as rt:
        result = await rt.run_workflow("nap", actor="alice@pts/1 via 10.0.0.7")
        exec_id = result.execution_id
        async with asyncio.timeout(30):
            while rt.engine.executions[exec_id].tasks["sleepy"].state != "running":
                await asyncio.sleep(0.02)
        assert (await rt.pause(exec_id, actor="bob@pts/2")).applied
        assert (await rt.resume(exec_id, actor="bob@pts/2")).applied
        assert (await rt.cancel(exec_id, actor="alice@pts/1 via 10.0.0.7")).applied
        assert not (await rt.pause("no-such-execution", actor="carol@notty")).applied
        assert (await rt.set_schedule_enabled("nightly", False, actor="dave@pts/3")).applied
        assert (await rt.reload_config(actor="erin@pts/4")).applied
        async with asyncio.timeout(30):
            await rt.wait(exec_id)
    return exec_id


def audit_rows(state_dir: Path) -> list[tuple[str, str, str, str]]:
    with sqlite3.connect(state_dir / "l3tui.db") as conn:
        return [(c.entry.actor, c.entry.action, c.entry.target, c.entry.outcome)
                for c in queries.all_audit_entries(conn)]  # fmt: skip


async def test_operator_actions_and_executions_are_audited_with_who_and_outcome(
    make_config, runtime_for, state_dir
):
    exec_id = await record_some_actions(make_config, runtime_for)
    entries = audit_rows(state_dir)
    assert ("alice@pts/1 via 10.0.0.7", "execution.run", exec_id, "applied") in entries
    assert ("bob@pts/2", "execution.pause", exec_id, "applied") in entries
    assert ("bob@pts/2", "execution.resume", exec_id, "applied") in entries
    assert ("alice@pts/1 via 10.0.0.7", "execution.cancel", exec_id, "applied") in entries
    assert ("carol@notty", "execution.pause", "no-such-execution", "refused") in entries
    assert ("test", "execution.start", exec_id, "started") in entries
    assert ("test", "execution.finish", exec_id, "cancelled") in entries
    assert ("dave@pts/3", "schedule.disable", "nightly", "applied") in entries
    assert ("erin@pts/4", "config.reload", "", "applied") in entries
    listing = cli(state_dir, "audit", "--json")
    assert listing.returncode == 0
    assert {e["action"] for e in json.loads(listing.stdout)} >= {
        "execution.run", "execution.pause", "execution.cancel"}
    ok = cli(state_dir, "audit", "verify")
    assert ok.returncode == 0 and "intact" in ok.stdout


async def test_one_operator_action_is_one_audit_entry_named_noun_verb(make_config, runtime_for,
                                                                      state_dir):
    """A schedule toggle was audited twice, as `disable-schedule` (by the operator) and as
    `schedule.disable` (by whoever ran the console); an alert acknowledgement and a manual
    reload were audited twice too. One action, one entry, one naming scheme."""
    config = make_config(WORKFLOWS, actions=ACTIONS, scheduling=SCHEDULING)
    async with runtime_for(config) as rt:
        assert (await rt.set_schedule_enabled("nightly", False, actor="dave")).applied
        assert (await rt.set_schedule_enabled("nightly", True, actor="dave")).applied
        failed = await rt.run_workflow("breaks", actor="dave")
        assert await asyncio.wait_for(rt.wait(failed.execution_id), 30) == "failed"
        [alert] = [a for a in rt.snapshot().alerts if a.rule == "execution_failed"]
        assert (await rt.ack_alert(alert.id, actor="dave")).applied
        assert (await rt.snooze_alert(alert.id, 60, actor="dave")).applied
        assert (await rt.reload_config(actor="dave")).applied
        assert (await rt.pause(failed.execution_id, "boom", actor="dave")).applied is False
    entries = audit_rows(state_dir)
    by_dave = [(action, target, outcome) for actor, action, target, outcome in entries
               if actor == "dave"]  # fmt: skip
    assert by_dave == [
        ("schedule.disable", "nightly", "applied"),
        ("schedule.enable", "nightly", "applied"),
        ("execution.run", failed.execution_id, "applied"),
        ("alert.ack", alert.id, "applied"),
        ("alert.snooze", alert.id, "applied"),
        ("config.reload", "", "applied"),
        ("task.pause", f"{failed.execution_id}/boom", "refused"),
    ]
    others = [e for e in entries if e[0] != "dave"]
    assert {action for _actor, action, _t, _o in others} == {"execution.start",
                                                             "execution.finish"}
    assert all(NOUN_VERB.fullmatch(action) for _actor, action, _t, _o in entries), entries


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
