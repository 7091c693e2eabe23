"""The console's panes on a real Runtime: a long queue scrolls and filters, the log view
follows a task's real output without its escape sequences, freezing stops redraws while
the engine runs on, a schedule toggles with s, and a config edit rebuilds the dashboards
while the console runs."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from l3tui.dashboard.app import ConsoleApp
from l3tui.dashboard.views import Pane
from l3tui.dashboard.widgets.log_view import LogView
from l3tui.dashboard.widgets.task_queue import TaskQueue
from tests.dashboard.snapshot_app import screen_text
from tests.dashboard.test_keys import until

MANY = 300
ACTIONS = """
actions:
  nap: {command: [sleep, "${seconds}"]}
  chatty: {command: [python3, -u, -c, "${script}"]}
"""
SCHEDULING = """
scheduling:
  resource_limits: {max_concurrent_tasks: 1}
  execution: {grace_period: 1s, default_timeout: 60s}
  recurring_tasks:
    - {id: nightly, name: "ليلي", cron: "0 3 * * *", workflow: wide, timezone: Asia/Riyadh}
"""
CHATTY = (
    "import time, sys\\n"
    "print('\\\\x1b]0;pwned\\\\x07\\\\x1b[31mred\\\\x1b[0m line one')\\n"
    "print('second line with a needle')\\n"
    "sys.stdout.flush()\\n"
    "time.sleep(1000)"
)


def workflows() -> str:
    tasks = "\n".join(
        f"      - {{id: t{n:03d}, action: nap, parameters: {{seconds: 1000}}}}" for n in range(MANY)
    )
    return f"""
workflows:
  wide:
    name: wide
    tasks:
{tasks}
  chatty:
    name: chatty
    tasks:
      - {{id: talk, action: chatty, parameters: {{script: "{CHATTY}"}}}}
"""


DASHBOARD = """
dashboards:
  ops:
    name: ops
    widgets:
      - {type: task_queue, title: the queue}
      - {type: log_view, title: output}
      - {type: schedules, title: schedules}
"""


@pytest.fixture
def panes_config(make_config):
    """The module's config: its workflows, actions, scheduling and dashboard."""
    return make_config(workflows(), actions=ACTIONS, scheduling=SCHEDULING, dashboard=DASHBOARD)


def console(rt) -> ConsoleApp:
    return ConsoleApp(rt, theme="l3-dark", bidi=False, ssh=False, actor="tester")


async def test_a_long_queue_scrolls_to_its_end_and_filters(panes_config, runtime_for):
    async with runtime_for(panes_config) as rt:
        app = console(rt)
        async with app.run_test(size=(120, 40)) as pilot:
            await rt.run_workflow("wide")
            queue = app.query_one(TaskQueue)
            await until(lambda: queue.row_total == MANY)  # 1 running + 299 queued
            queue.focus()
            await pilot.press("end")
            await pilot.pause()
            assert "t299" in screen_text(app) or "t2" in screen_text(app)
            last = queue.item(queue.cursor)
            assert last is not None and last.state == "queued"
            await pilot.press("slash", *"t29[0-9]", "enter")
            await until(lambda: queue.row_total == 10)
            shown = [queue.item(i).task_id for i in range(queue.row_total)]
            assert shown == [f"t{n}" for n in range(290, 300)]
            assert "/t29[0-9]/" in app.query_one(Pane).border_subtitle
            await pilot.press("escape")
            await until(lambda: queue.row_total == MANY)


async def test_a_filtered_queue_follows_the_queue_as_it_grows(panes_config, runtime_for):
    """A filter re-reads a moving queue at a bounded pace (a read of 100,000 entries takes
    half a second): the rows it shows still catch up with what was queued since."""
    async with runtime_for(panes_config) as rt:
        app = console(rt)
        async with app.run_test(size=(120, 40)) as pilot:
            await rt.run_workflow("wide")
            queue = app.query_one(TaskQueue)
            await until(lambda: queue.row_total == MANY)
            queue.focus()
            await pilot.press("slash", *"t29[0-9]", "enter")
            await until(lambda: queue.row_total == 10)
            await rt.run_workflow("wide")  # ten more rows match, nobody touches the filter
            await until(lambda: queue.row_total == 20)
            assert "/t29[0-9]/ 20" in app.query_one(Pane).border_subtitle


async def test_log_view_follows_real_output_without_escape_sequences(panes_config, runtime_for):
    async with runtime_for(panes_config) as rt:
        app = console(rt)
        async with app.run_test(size=(120, 40)) as pilot:
            result = await rt.run_workflow("chatty")
            log = app.query_one(LogView)
            await until(lambda: len(log.buffer.lines) >= 2)
            assert log.key == (result.execution_id, "talk")
            lines = list(log.buffer.lines)
            assert lines[0] == "red line one"
            assert all("\x1b" not in line and "\x07" not in line for line in lines)
            await pilot.pause()
            assert "red line one" in screen_text(app) and "pwned" not in screen_text(app)
            log.focus()
            await pilot.press("slash", *"needle", "enter")
            await until(lambda: len(log.matches) == 1)
            assert "needle" in screen_text(app) and "red line one" not in screen_text(app)


TWO_DASHBOARDS = """
dashboards:
  logs:
    name: logs
    widgets:
      - {type: log_view, title: output}
  queue:
    name: queue
    widgets:
      - {type: task_queue, title: the queue}
"""


async def test_a_log_view_on_a_dashboard_not_shown_reads_nothing_until_shown(make_config,
                                                                              runtime_for):
    """A log view following a live task re-reads its file every second while shown; on a
    dashboard behind the current one it starts no read (nobody sees it), and shown again
    it follows the task as before."""
    config = make_config(workflows(), actions=ACTIONS, scheduling=SCHEDULING,
                         dashboard=TWO_DASHBOARDS)  # fmt: skip
    async with runtime_for(config) as rt:
        app = console(rt)
        async with app.run_test(size=(120, 40)) as pilot:
            await rt.run_workflow("chatty")
            log = app.query_one(LogView)
            await until(lambda: len(log.buffer.lines) >= 2)
            assert log.live and log.log_path is not None  # it re-reads each second
            await pilot.press("2")
            await until(lambda: app.current_dash == 1 and not log._reading)
            log.poke()  # what its timer and the task's output do
            assert not log._reading
            await pilot.press("1")
            await until(lambda: "needle" in screen_text(app))


QUEUE_THEN_LOGS = """
dashboards:
  queue:
    name: queue
    widgets:
      - {type: task_queue, title: the queue}
  logs:
    name: logs
    widgets:
      - {type: workflow_status, title: runs}
      - {type: log_view, title: output}
"""


async def test_a_dashboard_built_when_first_shown_is_complete_and_keeps_the_freeze(
    make_config, runtime_for
):
    """Only the first dashboard is built before the first paint; another is built when it
    is first shown: with its panes filled from the current state, and frozen if the display
    is."""
    config = make_config(workflows(), actions=ACTIONS, scheduling=SCHEDULING,
                         dashboard=QUEUE_THEN_LOGS)  # fmt: skip
    async with runtime_for(config) as rt:
        app = console(rt)
        async with app.run_test(size=(120, 40)) as pilot:
            assert not app.query(LogView)  # the second dashboard is not built yet
            await rt.run_workflow("wide")
            await until(lambda: app.query_one(TaskQueue).row_total == MANY)
            await pilot.press("f")
            await pilot.press("2")
            await until(lambda: app.current_dash == 1)
            assert app.query_one(LogView).frozen
            await pilot.press("f")
            await until(lambda: "wide" in screen_text(app) and "t000" in screen_text(app))


async def test_freeze_stops_redraws_while_the_engine_keeps_running(panes_config, runtime_for):
    async with runtime_for(panes_config) as rt:
        app = console(rt)
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.press("f")
            assert app.frozen and "FROZEN" in screen_text(app)
            frozen_at = app.snapshot
            result = await rt.run_workflow("wide")
            await until(lambda: rt.execution(result.execution_id).state == "running")
            await asyncio.sleep(1.5)  # more than the 1 s state redraw period
            assert app.snapshot is frozen_at
            assert app.query_one(TaskQueue).row_total == 0
            await pilot.press("f")
            await until(lambda: app.query_one(TaskQueue).row_total == MANY)
            assert "FROZEN" not in screen_text(app)


async def test_s_toggles_the_selected_schedule(panes_config, runtime_for):
    async with runtime_for(panes_config) as rt:
        app = console(rt)
        async with app.run_test(size=(120, 40)) as pilot:
            app.query_one("SchedulesPane").focus()
            await until(lambda: app.selected_schedule == ("nightly", True))
            await pilot.press("s")
            await until(lambda: not rt.snapshot().schedules[0].enabled)
            await until(lambda: app.selected_schedule == ("nightly", False))
            await pilot.press("s")
            await until(lambda: rt.snapshot().schedules[0].enabled)


async def test_editing_the_dashboard_file_rebuilds_the_console(make_config, runtime_for):
    config = make_config(workflows(), actions=ACTIONS, scheduling=SCHEDULING,
                         dashboard=DASHBOARD)  # fmt: skip
    async with runtime_for(config, watch_config=True) as rt:
        rt.reloader.interval_s = 0.05
        app = console(rt)
        async with app.run_test(size=(120, 40)) as pilot:
            assert "the queue" in screen_text(app)
            path = Path(config) / "l3-dashboard.yml"
            path.write_text(DASHBOARD.replace("the queue", "renamed queue") + """
  second:
    name: second
    widgets:
      - {type: alerts, title: only alerts}
""", encoding="utf-8")  # fmt: skip
            stat = path.stat()
            os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))
            await until(lambda: "renamed queue" in screen_text(app))
            await until(lambda: any("config reloaded" in n.message for n in app._notifications))
            await pilot.press("2")
            await until(lambda: "only alerts" in screen_text(app))


async def test_a_broken_config_edit_shows_the_error_and_keeps_the_console(panes_config,
                                                                          runtime_for):
    async with runtime_for(panes_config) as rt:
        app = console(rt)
        async with app.run_test(size=(120, 40)) as pilot:
            path = Path(panes_config) / "l3-dashboard.yml"
            path.write_text(DASHBOARD.replace("task_queue", "task_queu"), encoding="utf-8")
            await pilot.press("ctrl+r")
            await until(lambda: any("config not applied" in n.message
                                    for n in app._notifications))  # fmt: skip
            message = next(n.message for n in app._notifications if "not applied" in n.message)
            assert "l3-dashboard.yml:" in message and "task_queu" in message
            assert "the queue" in screen_text(app)


async def test_a_read_only_dashboard_refuses_write_keys_with_a_notification(make_config,
                                                                             runtime_for):
    """`permissions: {read_only: true}`: p, c, n and s (it used to disable a schedule) do
    nothing but say why; their keys are dimmed in the footer, not hidden."""
    read_only = DASHBOARD.replace("    name: ops\n",
                                  "    name: ops\n    permissions: {read_only: true}\n")
    config = make_config(workflows(), actions=ACTIONS, scheduling=SCHEDULING, dashboard=read_only)
    async with runtime_for(config) as rt:
        app = console(rt)
        async with app.run_test(size=(160, 40)) as pilot:
            result = await rt.run_workflow("wide")
            await until(lambda: app.selection is not None)
            for action in ("pause", "cancel", "run_workflow", "toggle_schedule"):
                assert app.check_action(action, ()) is None, action  # dimmed
            app.query_one("SchedulesPane").focus()
            await until(lambda: app.selected_schedule == ("nightly", True))
            await pilot.press("s")
            await until(lambda: any("read-only" in n.message for n in app._notifications))
            assert rt.snapshot().schedules[0].enabled
            refusals = len(app._notifications)
            await pilot.press("c", "n", "p")
            await until(lambda: len(app._notifications) >= refusals + 3)
            assert all("read-only" in n.message for n in list(app._notifications)[refusals:])
            assert app.screen is app.screen_stack[0]  # no dialog opened
            assert rt.execution(result.execution_id).state == "running"
            footer = screen_text(app).splitlines()[-1]
            assert "s Schedule on/off" in footer and "c Cancel" in footer  # shown, dimmed


async def test_keys_remapped_by_id_work_and_show(panes_config, runtime_for):
    async with runtime_for(panes_config) as rt:
        app = ConsoleApp(rt, theme="l3-dark", ssh=False, keymap_overrides={"freeze": "f9"})
        async with app.run_test(size=(160, 40)) as pilot:
            await pilot.press("f")
            assert not app.frozen
            await pilot.press("f9")
            assert app.frozen
            assert "f9 Freeze" in screen_text(app).splitlines()[-1]  # the footer shows it


async def test_a_refresh_timer_firing_during_shutdown_draws_nothing(panes_config, runtime_for):
    """Textual's timers still fire while the app takes its widgets down; on a loaded machine
    the full-refresh timer did, and the exit raised NoMatches for the top bar."""
    async with runtime_for(panes_config) as rt:
        app = console(rt)
        async with app.run_test(size=(120, 40)):
            await until(lambda: app.snapshot is not None)
        drawn = app.snapshot
        app.refresh_now(full=True)  # what the timer does, once the widgets are gone
        assert app.snapshot is drawn
