"""The console at 80x24: the footer shows the keys that matter most, `?` and `q` always,
none cut in the middle (it used to end at "/ Fil" with neither shown), also after a
resize; the help screen can be scrolled to its last line."""

from __future__ import annotations

import pytest

from l3tui.dashboard import keymap
from l3tui.dashboard.screens.help import HelpScreen
from tests.dashboard.snapshot_app import screen_text
from tests.dashboard.test_keys import (
    ACTIONS,
    SCHEDULING,
    WORKFLOWS,
    console,
    running_pid,
    select_execution,
    until,
)


@pytest.fixture
def console_config(make_config):
    return make_config(WORKFLOWS, actions=ACTIONS, scheduling=SCHEDULING)


def footer(app) -> str:
    return screen_text(app).splitlines()[-1]


def assert_whole_keys(line: str) -> None:
    """Every key in the footer is shown whole: its description is not cut."""
    assert line.rstrip().endswith("palette"), line
    for key in keymap.KEYS:
        stem = key.description[:4]
        for start in [i for i in range(len(line)) if line.startswith(stem, i)]:
            assert any(line.startswith(k.description, start) for k in keymap.KEYS
                       if k.description.startswith(stem)), (key.description, line)  # fmt: skip


async def test_footer_at_80_columns_keeps_help_quit_and_the_execution_keys(console_config,
                                                                         runtime_for):
    async with runtime_for(console_config) as rt:
        app = console(rt)
        async with app.run_test(size=(80, 24)) as pilot:
            result = await rt.run_workflow("sleeper")
            await running_pid(rt, result.execution_id, "nap")
            await select_execution(app, result.execution_id)
            await until(lambda: "Pause" in footer(app))
            await pilot.pause()
            line = footer(app)
            for shown in ("? Help", "q Quit", "p Pause", "c Cancel", "n Run"):
                assert shown in line, line
            assert_whole_keys(line)


async def test_footer_recomputes_what_fits_after_a_resize(console_config, runtime_for):
    async with runtime_for(console_config) as rt:
        app = console(rt)
        async with app.run_test(size=(120, 40)) as pilot:
            await until(lambda: "Freeze" in footer(app))
            await pilot.resize_terminal(80, 24)
            await until(lambda: "? Help" in footer(app) and "q Quit" in footer(app))
            assert_whole_keys(footer(app))
            await pilot.resize_terminal(140, 40)
            await until(lambda: "Freeze" in footer(app) and "q Quit" in footer(app))


async def test_help_screen_at_80x24_scrolls_to_its_last_line(console_config, runtime_for):
    async with runtime_for(console_config) as rt:
        app = console(rt)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("question_mark")
            await until(lambda: isinstance(app.screen, HelpScreen))
            await pilot.pause()
            assert "Pause" in screen_text(app)
            await pilot.press("end")
            await until(lambda: "L3TUI_KEYMAP" in screen_text(app), timeout=5)
            await pilot.press("home")
            await until(lambda: "Pause" in screen_text(app), timeout=5)
            await pilot.press("escape")
            await until(lambda: not isinstance(app.screen, HelpScreen))


MANY_PARAMS = WORKFLOWS + """
  wide_form:
    name: wide form
    params:
      target: {type: string, required: true, description: where the copy goes}
      source: {type: string, default: /var/lib/db, description: what is copied}
      keep: {type: integer, default: 7, description: how many copies are kept}
      verify: {type: boolean, default: true, description: check the copy afterwards}
    tasks:
      - {id: copy, action: nap, parameters: {seconds: 0}}
"""


async def test_a_template_form_at_80x24_keeps_its_run_button_on_screen(make_config, runtime_for):
    """Four params at 80x24: the form scrolls; Back and Run stay on screen (they used to
    fall below the bottom edge, so the form could only be sent with enter)."""
    from textual.widgets import Button

    from l3tui.dashboard.screens.run_picker import ParamsScreen

    config = make_config(MANY_PARAMS, actions=ACTIONS, scheduling=SCHEDULING)
    async with runtime_for(config) as rt:
        app = console(rt)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("n", *"wide_form", "enter")
            form = await until(lambda: isinstance(app.screen, ParamsScreen) and app.screen)
            await pilot.pause()
            run = form.query_one("#run", Button)
            await until(lambda: run.region.height > 0)
            screen = app.screen.region
            assert screen.contains_region(run.region), (run.region, screen)
            assert "Run" in screen_text(app)
            await pilot.press(*"/tmp/x")
            await pilot.click(run)
            created = await until(lambda: list(rt.engine.executions.values()))
            assert created[0].workflow_id == "wide_form"
