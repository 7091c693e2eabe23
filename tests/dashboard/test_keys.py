"""The console's keys on real executions: a real Runtime, real processes (psutil checks
their state), the real app driven by Pilot. p freezes the process, r continues it, c plus
confirmation kills the whole tree, n runs a workflow (templates ask for checked params),
a acknowledges an alert and the audit trail has it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import psutil
import pytest

from l3tui.dashboard.app import ConsoleApp
from l3tui.dashboard.screens.confirm import ConfirmScreen
from l3tui.dashboard.screens.run_picker import ParamsScreen, RunPickerScreen
from l3tui.engine import events as ev
from tests.conftest import descendants_by_marker
from tests.dashboard.snapshot_app import screen_text

WORKFLOWS = """
workflows:
  sleeper:
    name: "نائم"
    tasks:
      - {id: nap, name: "قيلولة", action: nap, parameters: {seconds: 1011}}
  tree:
    name: tree
    tasks:
      - {id: spawn, action: tree, parameters: {seconds: 1012}}
      - {id: after, action: nap, parameters: {seconds: 0}, dependencies: [spawn]}
  breaks:
    name: breaks
    tasks:
      - {id: boom, action: fail}
  breaks_too:
    name: breaks too
    tasks:
      - {id: boom, action: fail}
templates:
  greet:
    name: greet
    params:
      count: {type: integer, description: how many}
    tasks:
      - {id: hello, action: nap, parameters: {seconds: "${count}"}}
"""
ACTIONS = """
actions:
  nap: {command: [sleep, "${seconds}"]}
  tree: {command: [sh, -c, 'sleep "$1" & sleep "$1" & wait', sh, "${seconds}"]}
  fail: {command: [sh, -c, 'echo going down; exit 3']}
"""
SCHEDULING = """
scheduling:
  resource_limits: {max_concurrent_tasks: 4}
  execution: {grace_period: 1s, default_timeout: 60s}
"""


async def until(predicate: Callable[[], Any], timeout: float = 30.0) -> Any:
    async with asyncio.timeout(timeout):
        while not (result := predicate()):
            await asyncio.sleep(0.02)
        return result


def status(pid: int) -> str:
    try:
        return psutil.Process(pid).status()
    except psutil.NoSuchProcess:
        return "gone"


@pytest.fixture
def console_config(make_config):
    return make_config(WORKFLOWS, actions=ACTIONS, scheduling=SCHEDULING)


def console(rt: Any) -> ConsoleApp:
    return ConsoleApp(rt, theme="l3-dark", bidi=True, ssh=False, actor="tester")


async def select_execution(app: ConsoleApp, exec_id: str) -> None:
    """Focus the workflow tree, whose first row is the newest execution."""
    await until(lambda: app.snapshot and any(e.id == exec_id for e in app.snapshot.executions))
    app.query_one("WorkflowStatus").focus()
    await until(lambda: app.selection == (exec_id, None))


async def running_pid(rt: Any, exec_id: str, task_id: str) -> int:
    def pid() -> int | None:
        view = rt.execution(exec_id)
        task = next(t for t in view.tasks if t.task_id == task_id)
        return task.pid if task.state == "running" else None

    return await until(pid)


async def test_p_stops_the_real_process_and_r_continues_it(console_config, runtime_for):
    async with runtime_for(console_config) as rt:
        app = console(rt)
        async with app.run_test(size=(120, 40)) as pilot:
            result = await rt.run_workflow("sleeper")
            pid = await running_pid(rt, result.execution_id, "nap")
            await select_execution(app, result.execution_id)
            await pilot.press("p")
            await until(lambda: status(pid) == psutil.STATUS_STOPPED)
            await until(lambda: rt.execution(result.execution_id).state == "paused")
            # The console shows it paused once the store has it: then p is dimmed, r applies.
            await until(lambda: app.check_action("pause", ()) is None)
            assert app.check_action("resume", ()) is True
            await pilot.press("r")
            await until(lambda: status(pid) in (psutil.STATUS_SLEEPING, psutil.STATUS_RUNNING))
            assert rt.execution(result.execution_id).state == "running"
            messages = [n.message for n in app._notifications]
            assert any("paused" in m for m in messages) and any("resumed" in m for m in messages)


async def test_p_on_a_task_row_pauses_only_that_task(console_config, runtime_for):
    async with runtime_for(console_config) as rt:
        app = console(rt)
        async with app.run_test(size=(120, 40)) as pilot:
            result = await rt.run_workflow("sleeper")
            pid = await running_pid(rt, result.execution_id, "nap")
            await until(lambda: app.snapshot.running)
            assert app.focused is app.query_one("TaskQueue")  # focused on start
            # A refresh never picks a row by itself: the new execution stays selected...
            assert app.selection == (result.execution_id, None)
            await pilot.press("down")  # ...until the user picks the task's row.
            await until(lambda: app.selection == (result.execution_id, "nap"))
            await pilot.press("p")
            await until(lambda: status(pid) == psutil.STATUS_STOPPED)
            view = rt.execution(result.execution_id)
            assert view.state == "running" and view.tasks[0].state == "paused"


async def test_c_then_confirm_kills_the_whole_process_tree(console_config, runtime_for):
    async with runtime_for(console_config) as rt:
        app = console(rt)
        async with app.run_test(size=(120, 40)) as pilot:
            result = await rt.run_workflow("tree")
            pid = await running_pid(rt, result.execution_id, "spawn")
            grandchildren = await until(lambda: (found := descendants_by_marker("sleep 1012"))
                                        and len(found) == 2 and found)  # fmt: skip
            await select_execution(app, result.execution_id)
            await pilot.press("c")
            await until(lambda: isinstance(app.screen, ConfirmScreen))
            text = screen_text(app)
            assert f"process {pid} and its process group: SIGTERM" in text
            assert "spawn" in text and "after" in text and "will not run" in text
            assert all(status(p) != "gone" for p in grandchildren)  # nothing dies before yes
            await pilot.press("y")
            state = await asyncio.wait_for(rt.wait(result.execution_id), 60)
            assert state == "cancelled"
            await until(lambda: all(status(p) in ("gone", psutil.STATUS_ZOMBIE)
                                    for p in [pid, *grandchildren]))  # fmt: skip


async def test_c_then_no_keeps_everything_running(console_config, runtime_for):
    async with runtime_for(console_config) as rt:
        app = console(rt)
        async with app.run_test(size=(120, 40)) as pilot:
            result = await rt.run_workflow("sleeper")
            pid = await running_pid(rt, result.execution_id, "nap")
            await select_execution(app, result.execution_id)
            await pilot.press("c")
            await until(lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.press("escape")
            await until(lambda: not isinstance(app.screen, ConfirmScreen))
            await asyncio.sleep(0.2)
            assert status(pid) != "gone"
            assert rt.execution(result.execution_id).state == "running"


async def test_n_runs_the_picked_workflow(console_config, runtime_for):
    async with runtime_for(console_config) as rt:
        sub = rt.subscribe("test")
        app = console(rt)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press("n")
            await until(lambda: isinstance(app.screen, RunPickerScreen))
            await pilot.press(*"sleeper", "enter")
            created = await until(lambda: [e for e in rt.engine.active()
                                           if e.workflow_id == "sleeper"])  # fmt: skip
            exec_id = created[0].id
            await until(lambda: app.selection and app.selection[0] == exec_id)
            await until(lambda: "started sleeper" in " ".join(
                n.message for n in app._notifications))  # fmt: skip
            actions = [e for e in sub.drain() if isinstance(e, ev.OperatorAction)]
            assert [(a.action, a.actor, a.applied) for a in actions] == [("execution.run", "tester", True)]


async def test_keys_after_n_act_on_the_new_execution_not_on_a_refreshed_row(
    console_config, runtime_for
):
    """The focused queue fills with the new execution's tasks; a refresh must not make one
    of them the target: p pauses the execution the user just started."""
    async with runtime_for(console_config) as rt:
        app = console(rt)
        async with app.run_test(size=(120, 40)) as pilot:
            assert app.focused is app.query_one("TaskQueue")
            await pilot.press("n")
            await until(lambda: isinstance(app.screen, RunPickerScreen))
            await pilot.press(*"sleeper", "enter")
            exec_id = (await until(lambda: [e.id for e in rt.engine.active()]))[0]
            pid = await running_pid(rt, exec_id, "nap")
            await until(lambda: app.query_one("TaskQueue").row_total == 1)
            await pilot.pause()
            assert app.selection == (exec_id, None)
            await pilot.press("p")
            await until(lambda: rt.execution(exec_id).state == "paused")
            await until(lambda: status(pid) == psutil.STATUS_STOPPED)


async def test_template_params_are_checked_before_anything_runs(console_config, runtime_for):
    async with runtime_for(console_config) as rt:
        app = console(rt)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press("n")
            await until(lambda: isinstance(app.screen, RunPickerScreen))
            await pilot.press(*"greet", "enter")
            await until(lambda: isinstance(app.screen, ParamsScreen))
            await pilot.press(*"abc", "enter")
            # bounded wait for the redraw (one pause was not always enough under load)
            await until(lambda: "expected a whole number" in screen_text(app))
            assert isinstance(app.screen, ParamsScreen)
            assert "expected a whole number" in screen_text(app)
            assert rt.engine.active() == []
            await pilot.press("backspace", "backspace", "backspace", "0", "enter")
            created = await until(lambda: list(rt.engine.executions.values()))
            assert created[0].workflow_id == "greet" and created[0].params == {"count": 0}


async def test_a_acknowledges_the_alert_and_the_audit_has_it(console_config, runtime_for):
    from l3tui.store import queries

    async with runtime_for(console_config) as rt:
        sub = rt.subscribe("test")
        app = console(rt)
        async with app.run_test(size=(120, 40)) as pilot:
            result = await rt.run_workflow("breaks")
            assert await asyncio.wait_for(rt.wait(result.execution_id), 60) == "failed"
            await until(lambda: any(a.state == "raised" for a in app.snapshot.alerts))
            await until(lambda: app.check_action("ack_alert", ()) is True)
            await pilot.press("a")
            await until(lambda: rt.snapshot().alerts[0].state == "acknowledged")
            events = sub.drain()
            assert any(isinstance(e, ev.AlertChanged) and e.state == "acknowledged"
                       for e in events)  # fmt: skip
            acks = [e for e in events
                    if isinstance(e, ev.OperatorAction) and e.action == "alert.ack"]  # fmt: skip
            assert [(a.actor, a.applied) for a in acks] == [("tester", True)]
            await rt.store.flush()
            audit = await rt.store.read(queries.all_audit_entries)
            assert [(row.entry.action, row.entry.actor, row.entry.target) for row in audit
                    if row.entry.action.startswith("alert.")] == [("alert.ack", "tester",
                                                                   acks[0].target)]  # fmt: skip
            await until(lambda: app.check_action("ack_alert", ()) is None)  # none left to ack


async def test_q_with_running_executions_asks_first(console_config, runtime_for):
    async with runtime_for(console_config) as rt:
        app = console(rt)
        async with app.run_test(size=(120, 40)) as pilot:
            result = await rt.run_workflow("sleeper")
            pid = await running_pid(rt, result.execution_id, "nap")
            await pilot.press("q")
            await until(lambda: isinstance(app.screen, ConfirmScreen))
            assert "quitting cancels them" in screen_text(app)
            await pilot.press("n")
            await until(lambda: not isinstance(app.screen, ConfirmScreen))
            assert app.is_running and status(pid) != "gone"
            await pilot.press("q", "y")
            await until(lambda: not app.is_running)
        await rt.close()
        assert status(pid) in ("gone", psutil.STATUS_ZOMBIE)


def recorded_running(state) -> bool:
    import sqlite3
    from contextlib import closing

    with closing(sqlite3.connect(f"file:{state}/l3tui.db?mode=ro", uri=True, timeout=5)) as db:
        row = db.execute("SELECT count(*) FROM task_runs "
                         "WHERE state = 'running' AND pgid IS NOT NULL").fetchone()  # fmt: skip
    return bool(row[0])


def crash_a_run(config, state) -> None:
    """`l3tui run sleeper`, killed with SIGKILL once its task runs (the task is left behind)."""
    import os
    import selectors
    import signal
    import subprocess
    import time

    from tests.conftest import L3TUI

    crashed = subprocess.Popen(
        [L3TUI, "run", "sleeper", "--config", str(config), "--state", str(state)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    seen = b""
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(crashed.stdout, selectors.EVENT_READ)
            deadline = time.monotonic() + 20
            while b"started attempt" not in seen:
                assert selector.select(max(deadline - time.monotonic(), 0)), f"no start: {seen}"
                chunk = os.read(crashed.stdout.fileno(), 65536)  # raw: no buffered lines left
                assert chunk, f"l3tui run ended before its task started: {seen}"
                seen += chunk
        while not recorded_running(state):  # what recovery works from: the store's record
            assert time.monotonic() < deadline, "the running task was never committed"
            time.sleep(0.05)
        os.kill(crashed.pid, signal.SIGKILL)
    finally:
        crashed.wait(timeout=30)
        crashed.stdout.close()


async def test_R_resumes_an_execution_interrupted_by_a_crash(console_config, state_dir,
                                                             runtime_for):
    await asyncio.to_thread(crash_a_run, console_config, state_dir)
    async with runtime_for(console_config) as rt:
        app = console(rt)
        async with app.run_test(size=(120, 40)) as pilot:
            [old] = [e for e in app.snapshot.executions if e.state == "interrupted"]
            assert any(a.rule == "execution_interrupted" for a in app.snapshot.alerts)
            await select_execution(app, old.id)
            assert app.check_action("resume_interrupted", ()) is True
            await pilot.press("R")
            resumed = await until(lambda: [e for e in rt.engine.active() if e.parent_id == old.id])
            assert resumed[0].workflow_id == "sleeper"
            await running_pid(rt, resumed[0].id, "nap")
            # selected once the resume returns (its task may run before: a busy machine)
            await until(lambda: app.selection == (resumed[0].id, None))
            app.refresh_now(full=False)  # ... and a refresh does not move it back
            await pilot.pause()
            assert app.selection == (resumed[0].id, None)


async def test_a_chart_on_a_slow_dashboard_draws_once_samples_exist(console_config, runtime_for):
    """The seed's main dashboard refreshes every 30 s; its resource chart must not say
    "waiting for samples" until the next full refresh when the sampler has had its first
    reading. Here the dashboard refreshes once an hour, so the generous bound below can only
    be met by the redraw that follows the first sample, however busy the machine is."""
    from tests.conftest import BUNDLED

    seed = (BUNDLED / "l3-dashboard.yml").read_text(encoding="utf-8")
    assert "refresh_interval: 30000" in seed
    (console_config / "l3-dashboard.yml").write_text(
        seed.replace("refresh_interval: 30000", "refresh_interval: 3600000", 1), encoding="utf-8")
    async with runtime_for(console_config) as rt:
        assert rt.dashboards().dashboards["main"].refresh_interval == 3_600_000
        app = console(rt)
        async with app.run_test(size=(120, 40)) as pilot:
            chart = app.query_one("MetricsChart")
            await until(lambda: rt.metric_series("cpu_usage", 600), timeout=60)  # a sample
            await until(lambda: not chart.awaiting_data(), timeout=60)
            await pilot.pause()
            assert "waiting for samples" not in screen_text(app)


def notes(app: ConsoleApp) -> list[str]:
    return [n.message for n in app._notifications]


async def test_a_and_z_act_on_the_highlighted_alert_or_say_why_not(console_config, runtime_for):
    """Two failed executions raise two alerts. `a` with no alert highlighted acts on
    neither and says so; on a highlighted one it acknowledges that one; pressed again it
    says the alert is already acknowledged (it used to do nothing, silently); `z` snoozes
    the highlighted alert."""
    async with runtime_for(console_config) as rt:
        app = console(rt)
        async with app.run_test(size=(120, 40)) as pilot:
            for workflow in ("breaks", "breaks_too"):
                result = await rt.run_workflow(workflow)
                assert await asyncio.wait_for(rt.wait(result.execution_id), 10) == "failed"
            await until(lambda: sum(a.state == "raised" for a in app.snapshot.alerts) == 2)
            await pilot.press("a")
            await until(lambda: any("highlight" in m for m in notes(app)))
            assert [a.state for a in rt.snapshot().alerts] == ["raised", "raised"]

            pane = app.query_one("AlertsPane")
            pane.focus()
            await pilot.press("down")
            await until(lambda: pane.cursor == 1 and not pane.cursor_lost)
            chosen = pane.alerts[1].id
            await pilot.press("a")
            await until(lambda: {a.id: a.state for a in rt.snapshot().alerts}[chosen]
                        == "acknowledged")  # fmt: skip
            other = next(a for a in rt.snapshot().alerts if a.id != chosen)
            assert other.state == "raised"
            await until(lambda: pane.alerts[pane.cursor].id == chosen
                        and pane.alerts[pane.cursor].state == "acknowledged")  # fmt: skip
            before = len(notes(app))
            await pilot.press("a")
            await until(lambda: any("already acknowledged" in m for m in notes(app)[before:]))
            await pilot.press("z")
            await until(lambda: {a.id: a.state for a in rt.snapshot().alerts}[chosen]
                        == "snoozed")  # fmt: skip
            assert next(a for a in rt.snapshot().alerts if a.id != chosen).state == "raised"
