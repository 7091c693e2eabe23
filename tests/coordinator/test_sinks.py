"""Event sinks and the inbox's leftovers, inside a real Runtime: a failing hook is an alert
(raised once, resolved when the hook works again), never a crash; a hook that cannot start
says why; a file claimed by an l3tui that was killed before recording it is taken first at
the next start."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import write_config
from tests.coordinator.conftest import ACTIONS, SCHEDULING, WORKFLOWS, query, results, until


async def test_a_failing_hook_is_an_alert_raised_once_and_resolved_when_it_works_again(
    runtime_for: Callable[..., Any], tmp_path: Path, state_dir: Path
) -> None:
    flag = tmp_path / "failed-once"
    scheduling = SCHEDULING + f"""
events:
  sinks:
    - name: flaky
      on: execution.succeeded
      command: [sh, -c, 'test -e "$0" || {{ touch "$0"; echo no route to chat >&2; exit 3; }}', "{flag}"]
    - name: missing
      on: execution.succeeded
      command: [/nonexistent/l3tui-hook]
"""
    config = write_config(tmp_path / "config", WORKFLOWS, ACTIONS, scheduling)
    async with runtime_for(config, coordinate="all") as rt:
        for _ in range(2):
            started = await rt.run_workflow("quick")
            await rt.wait(started.execution_id)
        sinks = rt.coordinator.sinks.sinks
        await until(lambda: all(s.runs == 2 and not s.busy for s in sinks))
        await rt.bus.durable()
        states = {a.key: (a.state, a.message) for a in rt.alerts._alerts.values()
                  if a.rule == "event_hook_failed"}  # fmt: skip
    assert states["flaky"][0] == "resolved"
    assert "flaky: sh on execution.succeeded: exit 3: no route to chat" in states["flaky"][1]
    assert states["missing"][0] == "raised"
    assert "cannot start /nonexistent/l3tui-hook" in states["missing"][1]
    stored = dict(query(state_dir, "SELECT message, state FROM alerts WHERE rule = "
                        "'event_hook_failed'"))  # fmt: skip
    assert len(stored) == 2  # one alert per sink, however often it failed


async def test_a_file_claimed_before_a_kill_is_taken_first_at_the_next_start(
    runtime_for: Callable[..., Any], tmp_path: Path, state_dir: Path
) -> None:
    config = write_config(tmp_path / "config", WORKFLOWS, ACTIONS, SCHEDULING)
    claimed = state_dir / "inbox" / ".claimed"
    claimed.mkdir(parents=True)
    (claimed / "000001-left.json").write_text(json.dumps({"id": "l-1", "kind": "run_workflow",
                                                          "workflow": "quick"}))
    async with runtime_for(config, coordinate="all"):
        await until(lambda: [r for r in results(state_dir) if r["decision_id"] == "l-1"])
        await until(lambda: (state_dir / "inbox" / "processed" / "left.json").exists())
    assert list(claimed.iterdir()) == []


async def test_a_reloaded_config_replaces_the_sinks(
    runtime_for: Callable[..., Any], tmp_path: Path, state_dir: Path
) -> None:
    config = write_config(tmp_path / "config", WORKFLOWS, ACTIONS, SCHEDULING)
    async with runtime_for(config, coordinate="all") as rt:
        assert rt.coordinator.sinks.sinks == []
        (config / "l3-scheduling.yml").write_text(SCHEDULING + "events:\n  sinks:\n"
                                                  "    - {file: later.jsonl, on: execution.*}\n")
        reloaded = await rt.reload_config()
        assert reloaded.applied, reloaded.message
        started = await rt.run_workflow("quick")
        await rt.wait(started.execution_id)
        path = state_dir / "later.jsonl"
        lines = await until(lambda: path.exists() and path.read_text().splitlines())
    assert json.loads(lines[0])["type"] == "execution.created"
