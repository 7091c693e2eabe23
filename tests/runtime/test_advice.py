"""Upgrade advice that lasts: a real wait for a pool (a task held back by another's real
process) becomes a suggestion with its evidence, kept in the store; after a restart it is
still there (in the console's snapshot and in `l3tui advise`), not raised a second time,
and it is resolved once the last day no longer holds its evidence."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from l3tui.config import load_config
from l3tui.engine import events as ev
from l3tui.engine.resources import bottlenecks
from l3tui.runtime import Runtime
from l3tui.store.database import connect_readonly, db_path
from tests.conftest import L3TUI

WORKFLOWS = """
workflows:
  build:
    name: build
    tasks:
      - {id: compile, action: nap, resources: {pools: {flutter_build: 1}}}
"""
ACTIONS = """
actions:
  nap: {command: [sleep, "2.0713"]}
"""
SCHEDULING = """
scheduling:
  pools: {flutter_build: 1}
  sampler: {interval: 50ms}
  resource_limits: {max_cpu_usage: 100, max_memory_usage: 100}
  execution: {grace_period: 1s, default_timeout: 60s}
"""
KIND = "upgrade_pool_flutter_build"


def upgrade_events(events: list[ev.Event]) -> list[ev.BottleneckChanged]:
    return [e for e in events if isinstance(e, ev.BottleneckChanged) and e.finding == KIND]


def stored(state: Path) -> list[tuple[str, str, int]]:
    conn = connect_readonly(db_path(state))
    try:
        return [tuple(r) for r in conn.execute("SELECT kind, state, times FROM findings")]
    finally:
        conn.close()


@pytest.mark.slow
async def test_upgrade_advice_survives_a_restart_and_resolves_when_its_evidence_stops(
        make_config, state_dir, monkeypatch):  # fmt: skip
    monkeypatch.setattr(bottlenecks, "MIN_EVIDENCE_WAIT_S", 1.0)  # a 2 s wait is evidence
    config = make_config(WORKFLOWS, actions=ACTIONS, scheduling=SCHEDULING)
    async with Runtime(load_config(config), state_dir, actor="test") as rt:
        sub = rt.subscribe("advice")
        first = await rt.run_workflow("build")
        second = await rt.run_workflow("build")  # waits ~2 s for the pool
        async with asyncio.timeout(60):
            for run in (first, second):
                assert await rt.wait(run.execution_id or "") == "succeeded"
            raised: list[ev.BottleneckChanged] = []
            while not raised:  # suggestions are made once a minute's worth of samples
                await asyncio.sleep(0.05)
                raised += upgrade_events(sub.drain())
        assert raised[0].active and raised[0].suggestion == (
            "raise pools.flutter_build to 2 if the resource allows")
        assert raised[0].evidence[0].startswith("tasks waited 2 s for pool flutter_build")
    assert stored(state_dir) == [(KIND, "active", 1)]
    advise = await asyncio.to_thread(subprocess.run, [L3TUI, "--state", str(state_dir),
                                                      "advise"], capture_output=True,
                                     text=True, timeout=60, check=False)  # fmt: skip
    assert "! pool flutter_build (1 slot(s)) is a bottleneck (since " in advise.stdout
    assert "evidence   tasks waited 2 s for pool flutter_build" in advise.stdout
    assert "tasks waited 2 s for pool flutter_build" in advise.stdout.split("by cause")[1]

    async with Runtime(load_config(config), state_dir, actor="test") as rt:
        sub = rt.subscribe("advice")
        advice = [a for a in rt.snapshot().advice if a.kind == "upgrade"]
        assert [(a.subject, a.suggestion) for a in advice] == [
            ("pool flutter_build", "raise pools.flutter_build to 2 if the resource allows")]
        async with asyncio.timeout(30):
            while rt.resources.samples < 62:  # the first minute's suggestion pass is done
                await asyncio.sleep(0.05)
        assert upgrade_events(sub.drain()) == []  # the same evidence: not raised again
        assert KIND in rt.resources.suggested
        rt.resources.suggest(rt.clock.time() + 25 * 3600)  # a day later: no waits in it
        [resolved] = upgrade_events(sub.drain())
        assert not resolved.active
        assert [a for a in rt.snapshot().advice if a.kind == "upgrade"] == []
    assert stored(state_dir) == [(KIND, "resolved", 1)]
