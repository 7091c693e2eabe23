"""The command palette (ctrl+p) holds l3tui's own commands next to Textual's: run a workflow
by name, pause / resume / cancel the selection, switch dashboard, pick a theme, reload the
config. Real Runtime, real processes, the real palette driven by keys."""

from __future__ import annotations

from textual.command import CommandList, CommandPalette

from l3tui.dashboard.app import ConsoleApp
from l3tui.dashboard.screens.confirm import ConfirmScreen
from tests.dashboard.test_keys import (
    ACTIONS,
    SCHEDULING,
    WORKFLOWS,
    running_pid,
    select_execution,
    status,
    until,
)

DASHBOARDS = """
dashboards:
  ops:
    name: ops
    widgets:
      - {type: workflow_status, title: tree}
      - {type: task_queue, title: queue}
  second:
    name: second
    widgets:
      - {type: alerts, title: only alerts}
  wall:
    name: wall
    permissions: {read_only: true}
    widgets:
      - {type: workflow_status, title: wall tree}
"""


def console(rt) -> ConsoleApp:
    return ConsoleApp(rt, theme="l3-dark", bidi=False, ssh=False, actor="tester")


def hits(palette: CommandPalette) -> list[str]:
    commands = palette.query_one(CommandList)
    return [str(commands.get_option_at_index(i).prompt) for i in range(commands.option_count)]


async def pick(app: ConsoleApp, pilot, query: str, wanted: str) -> None:
    """Open the palette, type `query`, wait until the one hit is `wanted`, press enter."""
    await pilot.press("ctrl+p")
    palette = await until(lambda: isinstance(app.screen, CommandPalette) and app.screen)
    await pilot.press(*query)
    await until(lambda: len(shown := hits(palette)) == 1 and wanted in shown[0])
    await pilot.press("enter")
    await until(lambda: not isinstance(app.screen, CommandPalette))


async def test_palette_runs_a_workflow_by_name(make_config, runtime_for):
    config = make_config(WORKFLOWS, actions=ACTIONS, scheduling=SCHEDULING, dashboard=DASHBOARDS)
    async with runtime_for(config) as rt:
        app = console(rt)
        async with app.run_test(size=(120, 40)) as pilot:
            await pick(app, pilot, "run sleeper", "Run workflow sleeper")
            created = await until(lambda: list(rt.engine.executions.values()))
            assert created[0].workflow_id == "sleeper"
            await until(lambda: app.selection == (created[0].id, None))


async def test_palette_pauses_resumes_and_cancels_the_selection(make_config, runtime_for):
    config = make_config(WORKFLOWS, actions=ACTIONS, scheduling=SCHEDULING, dashboard=DASHBOARDS)
    async with runtime_for(config) as rt:
        app = console(rt)
        async with app.run_test(size=(120, 40)) as pilot:
            result = await rt.run_workflow("sleeper")
            pid = await running_pid(rt, result.execution_id, "nap")
            await select_execution(app, result.execution_id)
            await pick(app, pilot, "pause sel", "Pause")
            await until(lambda: status(pid) == "stopped")
            await until(lambda: app.snapshot.executions[0].state == "paused")
            await pick(app, pilot, "resume sel", "Resume")
            await until(lambda: status(pid) in ("sleeping", "running"))
            await until(lambda: app.snapshot.executions[0].state == "running")
            await pick(app, pilot, "cancel sel", "Cancel")
            await until(lambda: isinstance(app.screen, ConfirmScreen))  # it still asks first
            await pilot.press("y")
            assert await rt.wait(result.execution_id) == "cancelled"


async def test_palette_switches_dashboard_theme_and_reloads(make_config, runtime_for):
    config = make_config(WORKFLOWS, actions=ACTIONS, scheduling=SCHEDULING, dashboard=DASHBOARDS)
    async with runtime_for(config) as rt:
        app = console(rt)
        async with app.run_test(size=(120, 40)) as pilot:
            await pick(app, pilot, "dashboard second", "second")
            await until(lambda: app.current_dash == 1)
            await pick(app, pilot, "theme l3-light", "l3-light")
            await until(lambda: app.theme == "l3-light")
            await pick(app, pilot, "reload config", "Reload")
            await until(lambda: any("config" in n.message for n in app._notifications))


async def test_palette_leaves_out_commands_a_read_only_dashboard_refuses(make_config,
                                                                        runtime_for):
    config = make_config(WORKFLOWS, actions=ACTIONS, scheduling=SCHEDULING, dashboard=DASHBOARDS)
    async with runtime_for(config) as rt:
        app = console(rt)
        async with app.run_test(size=(120, 40)) as pilot:
            result = await rt.run_workflow("sleeper")
            await running_pid(rt, result.execution_id, "nap")
            await pilot.press("3")
            await until(lambda: app.current_dash == 2)
            await select_execution(app, result.execution_id)
            await pilot.press("ctrl+p")
            palette = await until(lambda: isinstance(app.screen, CommandPalette) and app.screen)
            await pilot.press(*"dashboard ops")
            await until(lambda: len(hits(palette)) == 1)  # the palette answers...
            for _ in range(len("dashboard ops")):
                await pilot.press("backspace")
            await pilot.press(*"pause sel")
            await pilot.pause(0.5)
            assert not any("Pause" in hit for hit in hits(palette))  # ...but offers no pause
            await pilot.press("escape")
            assert rt.execution(result.execution_id).state == "running"
