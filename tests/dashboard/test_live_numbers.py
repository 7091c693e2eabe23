"""Live numbers follow the machine on a dashboard whose `refresh_interval` is 30 s (the
seed's main): the top bar, the sparklines and the chart legend show the same reading
within a couple of seconds of it changing, alert ages move on with no event, the cancel
and quit dialogs follow what runs while they are open, and paused tasks are not counted
as running. Real Runtime and processes; the resource readings come from a fake sampler
so the test decides what the machine "measures"."""

from __future__ import annotations

import re
from typing import Any

import pytest

from l3tui.dashboard.app import ConsoleApp
from l3tui.dashboard.screens.confirm import ConfirmScreen
from l3tui.dashboard.widgets.alerts import AlertsPane
from l3tui.dashboard.widgets.metrics_chart import MetricsChart
from l3tui.dashboard.widgets.resource_sparklines import ResourceSparklines
from l3tui.dashboard.widgets.top_bar import TopBar
from l3tui.engine.resources.sampler import Reading
from tests.dashboard.snapshot_app import screen_text
from tests.dashboard.test_keys import running_pid, select_execution, until

WORKFLOWS = """
workflows:
  pair:
    name: pair
    tasks:
      - {id: one, action: nap, parameters: {seconds: 1032}}
      - {id: two, action: nap, parameters: {seconds: 1033}}
  breaks:
    name: breaks
    tasks:
      - {id: boom, action: fail}
templates:
  gated:
    name: gated
    params:
      file: {type: string, required: true}
    tasks:
      - {id: gate, action: gate, parameters: {file: "${file}"}}
      - {id: after_gate, action: nap, parameters: {seconds: 0}, dependencies: [gate]}
      - {id: long, action: nap, parameters: {seconds: 1031}}
  gated_only:
    name: gated only
    params:
      file: {type: string, required: true}
    tasks:
      - {id: gate, action: gate, parameters: {file: "${file}"}}
"""
ACTIONS = """
actions:
  nap: {command: [sleep, "${seconds}"]}
  gate: {command: [sh, -c, 'while [ ! -e "$1" ]; do sleep 0.05; done', sh, "${file}"]}
  fail: {command: [sh, -c, 'exit 3']}
"""
SLOW_DASHBOARD = """
dashboards:
  main:
    name: main
    refresh_interval: 30000
    widgets:
      - {type: metrics_chart, title: chart, metrics: [cpu_usage, memory_usage]}
      - {type: resource_sparklines, title: now, metrics: [cpu_usage, memory_usage]}
      - {type: alerts, title: alerts}
      - {type: workflow_status, title: tree}
"""


class FakeSampler:
    """Readings chosen by the test (as in tests/engine/scheduling/test_scheduler.py)."""

    def __init__(self, cpu: float) -> None:
        self.values: dict[str, Any] = {
            "cpu_usage": cpu, "memory_usage": 30.0, "per_core": [cpu] * 4, "cpu_count": 4,
            "memory_used": 0, "memory_total": 16 << 30, "disk_usage": 40.0,
            "swap_usage": 0.0, "swap_in": 0.0, "swap_out": 0.0, "load_avg": 0.5,
        }  # fmt: skip

    def capacity(self) -> tuple[float, int]:
        return 4.0, 16_000

    def sample(self, groups: Any) -> Reading:
        return Reading(dict(self.values), {})


@pytest.fixture
def slow_config(make_config, tmp_path):
    config = make_config(WORKFLOWS, actions=ACTIONS, dashboard=SLOW_DASHBOARD)
    (config / "l3-scheduling.yml").write_text(
        "scheduling:\n"
        "  resource_limits: {max_concurrent_tasks: 4, max_cpu_usage: 100}\n"
        "  execution: {grace_period: 1s, default_timeout: 60s}\n"
        "  sampler: {interval: 250ms}\n", encoding="utf-8")  # fmt: skip
    return config


def console(rt: Any) -> ConsoleApp:
    return ConsoleApp(rt, theme="l3-dark", bidi=False, ssh=False, actor="tester")


def readings(app: ConsoleApp) -> tuple[str, str, str]:
    """(top bar, the sparkline's cpu value, the chart legend) as drawn."""
    status = app.query_one(TopBar)._status_text
    spark = app.query_one(ResourceSparklines)
    cpu = next((line for line in spark.lines if line[1] == "cpu_usage"), None)
    legend = str(app.query_one(MetricsChart).query_one(".chart--legend").render())
    return status, f"{cpu[3]:.0f}%" if cpu and cpu[3] is not None else "—", legend


async def test_top_bar_sparklines_and_legend_follow_one_reading_on_a_30s_dashboard(
    slow_config, runtime_for
):
    sampler = FakeSampler(cpu=97.0)
    async with runtime_for(slow_config, sampler=sampler) as rt:
        app = console(rt)
        async with app.run_test(size=(120, 40)):
            await until(lambda: readings(app)[1] == "97%" and "cpu 97%" in readings(app)[0])
            sampler.values["cpu_usage"] = 69.0
            # well within the 30 s refresh_interval: live figures follow every second
            await until(lambda: readings(app)[1] == "69%", timeout=6)
            await until(lambda: "cpu 69%" in readings(app)[0], timeout=3)
            await until(lambda: "cpu 69%" in readings(app)[2], timeout=3)


async def test_alert_ages_move_on_without_any_event(slow_config, runtime_for):
    async with runtime_for(slow_config) as rt:
        app = console(rt)
        async with app.run_test(size=(120, 40)):
            result = await rt.run_workflow("breaks")
            await rt.wait(result.execution_id)
            pane = app.query_one(AlertsPane)
            await until(lambda: pane.alerts and pane.alerts[0].state == "raised")
            first_at = pane.at
            # nothing happens in the engine from now on; the age must still advance
            await until(lambda: pane.at >= first_at + 2, timeout=6)
            age = int(pane.at - pane.alerts[0].raised_at)
            await until(lambda: any(f" {age}s " in line or f" {age + 1}s " in line
                                    for line in screen_text(app).splitlines()
                                    if "Execution failed" in line), timeout=3)  # fmt: skip


async def test_cancel_dialog_follows_tasks_that_finish_while_it_is_open(
    slow_config, runtime_for, tmp_path
):
    gate = tmp_path / "open-the-gate"
    async with runtime_for(slow_config) as rt:
        app = console(rt)
        async with app.run_test(size=(120, 40)) as pilot:
            result = await rt.run_workflow("gated", {"file": str(gate)})
            await running_pid(rt, result.execution_id, "gate")
            await running_pid(rt, result.execution_id, "long")
            await select_execution(app, result.execution_id)
            await pilot.press("c")
            await until(lambda: isinstance(app.screen, ConfirmScreen))
            text = screen_text(app)
            assert "after_gate" in text and "will not run" in text and "gate" in text
            gate.touch()
            view = await until(lambda: (v := rt.execution(result.execution_id))
                               and v.counts().get("succeeded") == 2 and v)  # fmt: skip
            assert view.state == "running"  # `long` still runs
            await until(lambda: "after_gate" not in screen_text(app), timeout=5)
            text = screen_text(app)
            assert isinstance(app.screen, ConfirmScreen)
            assert "will not run" not in text and "long" in text
            await pilot.press("n")


async def test_quit_dialog_follows_executions_that_end_while_it_is_open(
    slow_config, runtime_for, tmp_path
):
    gate = tmp_path / "open-the-gate"
    async with runtime_for(slow_config) as rt:
        app = console(rt)
        async with app.run_test(size=(120, 40)) as pilot:
            result = await rt.run_workflow("gated_only", {"file": str(gate)})
            await running_pid(rt, result.execution_id, "gate")
            await until(lambda: app.snapshot and app.snapshot.executions)
            await pilot.press("q")
            await until(lambda: isinstance(app.screen, ConfirmScreen))
            assert "quitting cancels them" in screen_text(app)
            gate.touch()
            assert await rt.wait(result.execution_id) == "succeeded"
            await until(lambda: "quitting cancels them" not in screen_text(app), timeout=5)
            assert "nothing runs" in screen_text(app).lower()
            await pilot.press("n")


async def test_paused_tasks_are_not_counted_as_running(slow_config, runtime_for):
    async with runtime_for(slow_config) as rt:
        app = console(rt)
        async with app.run_test(size=(120, 40)) as pilot:
            result = await rt.run_workflow("pair")
            for task in ("one", "two"):
                await running_pid(rt, result.execution_id, task)
            await until(lambda: "▶ 2 running" in app.query_one(TopBar)._status_text)
            await select_execution(app, result.execution_id)
            await pilot.press("p")
            await until(lambda: all(t.state == "paused"
                                    for t in rt.execution(result.execution_id).tasks))  # fmt: skip
            await until(lambda: "‖ 2 paused" in app.query_one(TopBar)._status_text, timeout=5)
            assert "▶ 0 running" in app.query_one(TopBar)._status_text


async def test_the_screen_shows_each_new_reading_when_only_its_digits_change(
    slow_config, runtime_for
):
    """The panes repaint only the lines that moved and the top bar keeps its width when a
    figure loses a digit (no layout of the whole screen): what is drawn must still be the
    new reading, never the line drawn before it."""
    sampler = FakeSampler(cpu=100.0)

    def drawn() -> list[str]:
        return screen_text(app).splitlines()

    def shows(cpu: str) -> bool:
        lines = drawn()
        spark = [line for line in lines[1:] if " cpu " in line and "mem" not in line]
        return (f"cpu {cpu}" in lines[0] and bool(spark)
                and all(line.rstrip(" │┃").endswith(f" {cpu}") for line in spark))  # fmt: skip

    async with runtime_for(slow_config, sampler=sampler) as rt:
        app = console(rt)
        async with app.run_test(size=(120, 40)):
            await until(lambda: shows("100%"))
            sampler.values["cpu_usage"] = 9.0
            await until(lambda: shows("9%"), timeout=6)
            assert not any("100%" in line for line in drawn())
            sampler.values["cpu_usage"] = 10.0
            await until(lambda: shows("10%"), timeout=6)
            assert "cpu 9%" not in drawn()[0]


async def test_a_chart_of_figures_that_are_all_zero_starts_its_axis_at_zero(
    make_config, runtime_for
):
    """An idle machine's counts (tasks/min, queue, running) are all zero: the chart's axis
    reads from 0 up, never "-1.00 tasks/min" (plotext centres a flat line on its value)."""
    dashboard = SLOW_DASHBOARD.replace("30000", "1000")
    config = make_config(WORKFLOWS, actions=ACTIONS, dashboard=dashboard)
    sampler = FakeSampler(cpu=0.0)
    sampler.values["memory_usage"] = 0.0
    axis = re.compile(r"(-?\d+\.\d+)┤")

    def labels() -> list[float]:
        return [float(m) for m in axis.findall(screen_text(app))]

    async with runtime_for(config, sampler=sampler) as rt:
        app = console(rt)
        async with app.run_test(size=(120, 40)):
            await until(lambda: len(labels()) >= 3)
            assert min(labels()) == 0.0, labels()
            sampler.values["cpu_usage"] = 40.0
            await until(lambda: max(labels()) >= 40.0, timeout=10)
            assert min(labels()) == 0.0, labels()
