"""Alerts: metric rules with a hold time, the built-in alerts raised from engine events,
acknowledge / snooze / resolve, and every change on the bus as an event. The last test
fails a real workflow in a real Runtime and finds the alert in its snapshot."""

from __future__ import annotations

import asyncio

from l3tui.config.schema import AlertRule
from l3tui.engine import events as ev
from l3tui.engine.bus import EventBus, Subscription
from l3tui.monitor.alerts import AlertManager
from l3tui.monitor.metrics import MetricsCollector


class Clock:
    def __init__(self, at: float = 1_000.0) -> None:
        self.at = at

    def __call__(self) -> float:
        return self.at


def manager(rules: list[AlertRule] | None = None) -> tuple[AlertManager, EventBus, Clock,
                                                          MetricsCollector, Subscription]:
    clock = Clock()
    bus = EventBus()
    sub = bus.subscribe("test", maxsize=1000)
    metrics = MetricsCollector(history=1000, now=clock)
    alerts = AlertManager(bus, clock, rules or [], metrics)
    bus.add_listener(alerts.on_event)
    return alerts, bus, clock, metrics, sub


def changes(sub: Subscription) -> list[ev.AlertChanged]:
    return [e for e in sub.drain() if isinstance(e, ev.AlertChanged)]


CPU_RULE = AlertRule.model_validate(
    {"id": "cpu_high", "name": "CPU high", "metric": "cpu_usage", "op": ">", "threshold": 90,
     "for": "2m", "severity": "warning"}
)  # fmt: skip


def test_metric_rule_raises_only_after_holding_for_its_duration():
    alerts, _bus, clock, metrics, sub = manager([CPU_RULE])
    for n in range(0, 121, 10):  # 95% for 2 minutes, sampled every 10 s
        clock.at = 1_000.0 + n
        metrics.record("cpu_usage", clock.at, 95.0)
        alerts.evaluate()
        if n < 120:
            assert alerts.active() == [], f"raised after only {n}s"
    [alert] = alerts.active()
    assert alert.state == "raised" and alert.severity == "warning"
    assert "cpu_usage 95 > 90 for 2m" in alert.message
    assert [c.state for c in changes(sub)] == ["raised"]


def test_metric_rule_resets_when_the_condition_breaks_and_resolves_when_it_clears():
    alerts, _bus, clock, metrics, sub = manager([CPU_RULE])
    for n, value in enumerate([95, 95, 50, 95, 95]):  # a dip restarts the hold
        clock.at = 1_000.0 + 60 * n
        metrics.record("cpu_usage", clock.at, value)
        alerts.evaluate()
    assert alerts.active() == []
    clock.at += 60
    metrics.record("cpu_usage", clock.at, 97)
    alerts.evaluate()
    assert [a.state for a in alerts.active()] == ["raised"]
    clock.at += 10
    metrics.record("cpu_usage", clock.at, 40)
    alerts.evaluate()
    assert alerts.active() == []
    states = [c.state for c in changes(sub)]
    assert states == ["raised", "resolved"]
    view = alerts.views()[0]
    assert view.state == "resolved" and "back within" in view.message


def test_failed_execution_raises_and_the_next_success_resolves():
    alerts, bus, clock, _m, sub = manager()
    for state in ("failed", "failed"):
        bus.publish(ev.ExecutionFinished(at=clock(), execution_id=f"e-{state}-{clock.at}",
                                         workflow_id="build", state=state, reason="exit 1",
                                         duration_s=1.0))  # fmt: skip
        clock.at += 1
    [alert] = alerts.active()
    assert alert.rule == "execution_failed" and alert.count == 2
    assert "(2 times)" in alert.message
    bus.publish(ev.ExecutionFinished(at=clock(), execution_id="e-ok", workflow_id="build",
                                     state="succeeded", reason="", duration_s=1.0))  # fmt: skip
    assert alerts.active() == []
    assert [c.state for c in changes(sub)] == ["raised", "raised", "resolved"]


def test_builtin_alerts_for_timeouts_deadlines_crashes_bottlenecks_and_store_errors():
    alerts, bus, clock, _m, _sub = manager()
    at = clock()
    bus.publish(ev.ExecutionCreated(at=at, execution_id="e1", workflow_id="build",
                                    workflow_name="b", definition_hash="h", definition="{}",
                                    params={}, trigger="manual", parent_id=None, priority=5,
                                    tasks=(("compile", "compile"),)))  # fmt: skip
    bus.publish(ev.TaskFinished(at=at, execution_id="e1", task_id="compile", state="timed_out",
                                attempt=1, exit_code=None, duration_s=5, wait_s=0,
                                reason="timeout after 5s"))  # fmt: skip
    bus.publish(ev.DeadlineMissed(at=at, execution_id="e1", task_id=None, deadline=at - 1))
    bus.publish(ev.SystemNotice(at=at, topic="recovery", severity="warning",
                                message="execution e0 was interrupted by a crash"))  # fmt: skip
    bus.publish(ev.SystemNotice(at=at, topic="bottleneck", severity="warning",
                                message="memory: 92% for 10 min"))  # fmt: skip
    bus.publish(ev.SystemNotice(at=at, topic="store", severity="error",
                                message="database is read-only; retrying"))  # fmt: skip
    rules = sorted(a.rule for a in alerts.active())
    assert rules == ["deadline_missed", "execution_interrupted", "resource_bottleneck",
                     "store_write_failing", "task_timed_out"]  # fmt: skip
    store = next(a for a in alerts.active() if a.rule == "store_write_failing")
    assert store.severity == "critical"
    bus.publish(ev.SystemNotice(at=at, topic="store", severity="info", message="writes ok"))
    bus.publish(ev.ExecutionFinished(at=at, execution_id="e1", workflow_id="build",
                                     state="failed", reason="", duration_s=5))  # fmt: skip
    rules = sorted(a.rule for a in alerts.active())
    assert "store_write_failing" not in rules and "deadline_missed" not in rules
    assert "execution_failed" in rules


def test_resource_manager_findings_raise_and_clear_bottleneck_alerts():
    alerts, bus, clock, _m, _sub = manager()
    bus.publish(ev.BottleneckChanged(at=clock(), finding="memory_sustained", active=True,
                                     severity="critical", summary="memory over 75% for 10 min",
                                     evidence=("peak 92%", "limit 75%"),
                                     suggestion="add memory or lower max_concurrent_tasks"))  # fmt: skip
    bus.publish(ev.BottleneckChanged(at=clock(), finding="upgrade_memory", active=True,
                                     severity="info", summary="tasks waited 14 min for memory",
                                     evidence=("peak demand 9.2 GB of 8 GB",)))  # fmt: skip
    found = {a.key: a for a in alerts.active()}
    assert found["memory_sustained"].severity == "critical"
    assert "peak 92%" in found["memory_sustained"].message
    assert "add memory" in found["memory_sustained"].message
    assert found["upgrade_memory"].severity == "info"
    bus.publish(ev.BottleneckChanged(at=clock(), finding="memory_sustained", active=False,
                                     severity="critical", summary="cleared", evidence=()))  # fmt: skip
    assert [a.key for a in alerts.active()] == ["upgrade_memory"]


def test_ack_and_snooze_change_state_publish_and_are_audited_as_operator_actions():
    alerts, _bus, clock, _m, sub = manager()
    alert = alerts.raise_alert("store_write_failing", "store", message="disk full",
                               source="store")  # fmt: skip
    result = alerts.snooze(alert.id, 60, actor="alice")
    assert result.applied and alerts.get(alert.id).state == "snoozed"
    clock.at += 61
    alerts.evaluate()
    assert alerts.get(alert.id).state == "raised"  # the snooze ran out
    result = alerts.ack(alert.id, actor="alice")
    assert result.applied and alerts.get(alert.id).state == "acknowledged"
    again = alerts.ack(alert.id, actor="alice")
    assert not again.applied and "acknowledged" in again.message
    events = sub.drain()
    states = [e.state for e in events if isinstance(e, ev.AlertChanged)]
    assert states == ["raised", "snoozed", "raised", "acknowledged"]
    actions = [(e.action, e.applied, e.actor) for e in events if isinstance(e, ev.OperatorAction)]
    assert actions == [("alert.snooze", True, "alice"), ("alert.ack", True, "alice"),
                       ("alert.ack", False, "alice")]  # fmt: skip
    assert not alerts.ack("nope", actor="alice").applied


def test_resolved_alerts_fade_out_of_the_view():
    alerts, _bus, clock, _m, _sub = manager()
    alerts.raise_alert("resource_bottleneck", "cpu", message="cpu", source="bottleneck")
    alerts.resolve("resource_bottleneck", "cpu", "cleared")
    assert [v.state for v in alerts.views()] == ["resolved"]
    clock.at += alerts.fade_s + 1
    alerts.evaluate()
    assert alerts.views() == ()


def test_removing_a_rule_on_reload_resolves_its_alert():
    rule = AlertRule.model_validate({"id": "disk", "metric": "disk_usage", "threshold": 50})
    alerts, _bus, clock, metrics, _sub = manager([rule])
    metrics.record("disk_usage", clock(), 80)
    alerts.evaluate()
    assert len(alerts.active()) == 1
    alerts.set_rules([])
    assert alerts.active() == []
    assert "rule removed" in alerts.views()[0].message


async def test_a_failing_workflow_shows_up_as_an_alert_in_the_runtime_snapshot(make_config,
                                                                                runtime_for):
    config = make_config("""
    workflows:
      breaks:
        name: breaks
        tasks:
          - {id: boom, action: fail}
    """, actions="actions:\n  fail: {command: [sh, -c, 'exit 3']}\n")
    async with runtime_for(config) as rt:
        result = await rt.run_workflow("breaks")
        state = await asyncio.wait_for(rt.wait(result.execution_id), 60)
        assert state == "failed"
        [alert] = [a for a in rt.snapshot().alerts if a.rule == "execution_failed"]
        assert alert.state == "raised" and result.execution_id in alert.message
        acked = await rt.ack_alert(alert.id, actor="tester")
        assert acked.applied
        assert rt.snapshot().alerts[0].state == "acknowledged"


# ---------------------------------------------------------------- across processes

TWO_FAILURES = """
workflows:
  breaks:
    name: breaks
    tasks:
      - {id: check, action: check, parameters: {flag: "%s"}}
  also_breaks:
    name: also breaks
    tasks:
      - {id: boom, action: fail}
"""
CHECK_ACTIONS = """
actions:
  check: {command: [sh, -c, '[ ! -e "$1" ]', sh, "${flag}"]}
  fail: {command: [sh, -c, 'exit 3']}
"""


def l3tui_run(config, state, workflow: str) -> str:
    """`l3tui run WORKFLOW --json` in its own process; the execution id."""
    import json
    import subprocess

    from tests.conftest import L3TUI

    out = subprocess.run([L3TUI, "--config", str(config), "--state", str(state), "run",
                          workflow, "--json"], capture_output=True, text=True, timeout=120,
                         stdin=subprocess.DEVNULL)  # fmt: skip
    started = [json.loads(line) for line in out.stdout.splitlines() if "execution_started" in line]
    assert started, out.stderr
    return started[0]["execution_id"]


def stored_alerts(state) -> dict[str, dict]:
    import sqlite3

    with sqlite3.connect(state / "l3tui.db") as conn:
        conn.row_factory = sqlite3.Row
        return {r["id"]: dict(r) for r in conn.execute("SELECT * FROM alerts")}


def stored_alert_messages(state, alert_id: str) -> list[str]:
    """Every change of one alert, in order, from the store's events."""
    import sqlite3

    with sqlite3.connect(state / "l3tui.db") as conn:
        return [m for (m,) in conn.execute(
            "SELECT json_extract(data, '$.message') FROM events WHERE kind = 'alert_changed' "
            "AND json_extract(data, '$.alert_id') = ? ORDER BY id", (alert_id,))]  # fmt: skip


def failing_state(make_config, state_dir, tmp_path):
    flag = tmp_path / "broken"
    flag.touch()
    config = make_config(TWO_FAILURES % flag, actions=CHECK_ACTIONS)
    first = l3tui_run(config, state_dir, "breaks")  # each run its own process, one state dir
    other = l3tui_run(config, state_dir, "also_breaks")
    again = l3tui_run(config, state_dir, "breaks")
    return config, flag, first, other, again


def test_alert_ids_are_unique_across_processes_and_no_alert_overwrites_another(
        make_config, state_dir, tmp_path):
    _config, _flag, first, other, again = failing_state(make_config, state_dir, tmp_path)
    rows = stored_alerts(state_dir)
    assert sorted(rows) == ["execution_failed-1", "execution_failed-2"], rows
    by_source = {r["alert_key"]: r for r in rows.values()}
    breaks, also = by_source["breaks"], by_source["also_breaks"]
    assert (breaks["id"], also["id"]) == ("execution_failed-1", "execution_failed-2")
    assert other in also["message"] and first not in also["message"]
    # the second failure of `breaks` counts on the alert still active from the first run
    assert breaks["count"] == 2 and breaks["state"] == "raised"
    assert first in breaks["first_message"] and again in breaks["message"]
    history = stored_alert_messages(state_dir, breaks["id"])
    assert [first in m for m in history] == [True, False]
    assert [again in m for m in history] == [False, True]


async def test_alerts_still_active_from_an_earlier_run_show_after_a_restart_and_resolve(
        make_config, state_dir, tmp_path, runtime_for):
    config, flag, _first, other, again = failing_state(make_config, state_dir, tmp_path)
    async with runtime_for(config) as rt:
        views = {a.id: a for a in rt.snapshot().alerts}
        assert set(views) == {"execution_failed-1", "execution_failed-2"}
        assert views["execution_failed-1"].state == "raised"
        assert again in views["execution_failed-1"].message
        assert other in views["execution_failed-2"].message
        acked = await rt.ack_alert("execution_failed-2", actor="tester")
        assert acked.applied, acked.message
        flag.unlink()  # `breaks` succeeds now: the restored alert knows what it is about
        result = await rt.run_workflow("breaks")
        assert await asyncio.wait_for(rt.wait(result.execution_id), 60) == "succeeded"
        states = {a.id: a.state for a in rt.snapshot().alerts}
        assert states == {"execution_failed-1": "resolved", "execution_failed-2": "acknowledged"}
        failed = await rt.run_workflow("also_breaks")
        assert await asyncio.wait_for(rt.wait(failed.execution_id), 60) == "failed"
        assert rt.alerts.get("execution_failed-2").count == 2  # the same problem, once more
    rows = stored_alerts(state_dir)
    assert rows["execution_failed-1"]["state"] == "resolved"
    assert rows["execution_failed-2"]["state"] == "acknowledged"
    assert rows["execution_failed-2"]["count"] == 2
