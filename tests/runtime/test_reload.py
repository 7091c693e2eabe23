"""Live configuration on a real Runtime: editing a file applies new workflows, alert rules
and dashboards without a restart; a broken edit changes nothing and says why; a running
execution keeps the definition it started with; ctrl+r's reload is audited."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from l3tui.config import load_config
from l3tui.engine import events as ev
from l3tui.engine.bus import Subscription
from l3tui.runtime.reload import describe_changes

ACTIONS = "actions:\n  nap: {command: [sleep, '${seconds}']}\n"

ONE = """
workflows:
  first:
    name: first
    tasks:
      - {id: a, action: nap, parameters: {seconds: 0}}
"""

TWO = ONE + """
  second:
    name: second
    tasks:
      - {id: b, action: nap, parameters: {seconds: 0}}
"""

DASHBOARD = """
dashboards:
  main:
    name: main
    widgets:
      - {type: task_queue, title: queue}
alerts:
  - {id: disk, metric: disk_usage, threshold: 99}
"""


def rewrite(path: Path, text: str) -> None:
    """Write and move the mtime forward, as an editor saving a second later would."""
    path.write_text(text, encoding="utf-8")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))


async def next_notice(sub: Subscription, timeout: float = 30.0) -> ev.SystemNotice:
    async with asyncio.timeout(timeout):
        while True:
            for event in await sub.get_batch():
                if isinstance(event, ev.SystemNotice) and event.topic == "config":
                    return event


async def test_editing_a_file_adds_a_workflow_without_restart(make_config, runtime_for):
    config = make_config(ONE, actions=ACTIONS, dashboard=DASHBOARD)
    async with runtime_for(config, watch_config=True) as rt:
        rt.reloader.interval_s = 0.05
        sub = rt.subscribe("test")
        assert not (await rt.run_workflow("second")).applied
        rewrite(config / "l3-workflows.yml", TWO)
        notice = await next_notice(sub)
        assert notice.severity == "info" and "workflows +second" in notice.message
        result = await rt.run_workflow("second")
        assert result.applied, result.message
        assert await asyncio.wait_for(rt.wait(result.execution_id), 60) == "succeeded"


async def test_a_broken_edit_changes_nothing_and_names_the_error(make_config, runtime_for):
    config = make_config(ONE, actions=ACTIONS, dashboard=DASHBOARD)
    async with runtime_for(config, watch_config=True) as rt:
        rt.reloader.interval_s = 0.05
        sub = rt.subscribe("test")
        before = rt.config
        rewrite(config / "l3-workflows.yml", ONE + "      - {id: a, action: nap, oops: 1}\n")
        notice = await next_notice(sub)
        assert notice.severity == "error"
        assert "l3-workflows.yml:" in notice.message and "oops" in notice.message
        assert rt.config is before
        assert (await rt.run_workflow("first")).applied


async def test_reload_applies_alert_rules_and_dashboards(make_config, runtime_for):
    config = make_config(ONE, actions=ACTIONS, dashboard=DASHBOARD)
    async with runtime_for(config) as rt:
        assert [r.id for r in rt.alerts.rules] == ["disk"]
        rewrite(config / "l3-dashboard.yml", DASHBOARD.replace("id: disk", "id: disk_full")
                .replace("title: queue", "title: the queue"))  # fmt: skip
        result = await rt.reload_config(actor="alice")
        assert result.applied
        assert "alert rules +disk_full -disk" in result.message
        assert "dashboards ~main" in result.message
        assert [r.id for r in rt.alerts.rules] == ["disk_full"]
        assert rt.dashboards().dashboards["main"].widgets[0].title == "the queue"


async def test_manual_reload_is_audited_and_unchanged_config_says_so(make_config, runtime_for):
    config = make_config(ONE, actions=ACTIONS)
    async with runtime_for(config) as rt:
        sub = rt.subscribe("test")
        result = await rt.reload_config(actor="alice")
        assert result.applied and result.message == "config unchanged"
        [action] = [e for e in sub.drain() if isinstance(e, ev.OperatorAction)]
        assert (action.action, action.actor, action.applied) == ("config.reload", "alice", True)


async def test_a_running_execution_keeps_the_definition_it_started_with(make_config,
                                                                        runtime_for):
    slow = ONE.replace("seconds: 0", "seconds: 1")
    config = make_config(slow, actions=ACTIONS)
    async with runtime_for(config) as rt:
        result = await rt.run_workflow("first")
        started_hash = rt.execution(result.execution_id).definition_hash
        rewrite(config / "l3-workflows.yml", slow.replace("id: a,", "id: renamed,"))
        assert (await rt.reload_config()).applied
        view = rt.execution(result.execution_id)
        assert view.definition_hash == started_hash
        assert [t.task_id for t in view.tasks] == ["a"]
        assert await asyncio.wait_for(rt.wait(result.execution_id), 60) == "succeeded"
        again = await rt.run_workflow("first")
        assert [t.task_id for t in rt.execution(again.execution_id).tasks] == ["renamed"]
        await asyncio.wait_for(rt.wait(again.execution_id), 60)


def test_describe_changes_names_what_moved(make_config):
    old = load_config(make_config(ONE, actions=ACTIONS))
    new = load_config(make_config(TWO, actions=ACTIONS))
    assert describe_changes(old, new) == "workflows +second"
    assert describe_changes(old, old) == "no effective change"
